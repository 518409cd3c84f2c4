// The sann kind (sann paper): one network for every species, energies from MEAD descriptors and
// forces from a decoupled "dummy energy".
//
// Descriptor of centre h with bond weights w_k (paper eqs. 1-6, 10-11): for each exponent n and
// l = 0..l_max the power spectrum P_nl = 4 pi / (2l + 1) sum_m |c_nlm|^2 of
// c_nlm = sum_k w_k Y_lm(r_hat_hk) exp(-n r_hk^2) f_c(r_hk), then for each xi the radial function
// sum_k w_k exp(-xi r_hk^2) f_c(r_hk), with f_c = (cos(pi r / r_c) + 1) / 2. Real spherical
// harmonics give the same P (the sum over m is invariant under the unitary change of basis).
//   * energy: MEAD weights w_hk = exp(mu_hk / m_h), mu_hk the pair's reduced mass, m_h the
//     centre's mass (eq. 10-11): E_h = e0[s_h] + e_scale NN(z_E(h));
//   * forces (eq. 12): the same network on the unit-weight descriptor d' (the dummy energy E'_h),
//     its gradient weighted by w_beta of the centre's element (the element's Clementi-Raimondi
//     effective nuclear charge over the sum of all species'): F = -sum_h w_beta[s_h] dE'_h/dr.
// The forces are therefore not the gradient of the reported energy (they are for one species,
// where standardising d and d' separately makes z_E = z_F); MD with them does not conserve energy.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "geometry.hpp"
#include "mlp.hpp"
#include "modelfile.hpp"
#include "parallel.hpp"
#include "quadratic_form.hpp"
#include "soap.hpp"

namespace clusterforce {

struct SannDescriptor {
  /// Scratch of SannDescriptor::centre; every entry it reads is set by reset or by centre itself.
  struct Buffers {
    int l_max = -1;
    soap_detail::SolidHarmonics harmonics{0};
    std::vector<double> y, gy, g, dg, r, u, c, sgrad;
    std::vector<char> inside;
    void reset(int lm, int n, int nn, int n_lm) {
      if (lm != l_max) {
        harmonics = soap_detail::SolidHarmonics(lm);
        l_max = lm;
      }
      const std::size_t k = static_cast<std::size_t>(n);
      y.resize(k * n_lm);
      gy.resize(k * 3 * n_lm);
      g.resize(k * nn);
      dg.resize(k * nn);
      r.resize(k);
      u.resize(3 * k);
      c.assign(static_cast<std::size_t>(nn) * n_lm, 0.0);
      sgrad.resize(3 * static_cast<std::size_t>(n_lm));
      inside.assign(k, 0);
    }
  };

  double r_cut = 8.0;             // Angstrom
  std::vector<double> exponents;  // n of eq. 1, 1/Angstrom^2
  int l_max = 9;
  std::vector<double> xi;  // eq. 6, 1/Angstrom^2

  int size() const { return static_cast<int>(exponents.size()) * (l_max + 1) + static_cast<int>(xi.size()); }

  void validate() const {
    if (!(r_cut > 0.0 && std::isfinite(r_cut))) throw std::invalid_argument("sann: r_cut must be positive");
    if (l_max < 0 || l_max > 20) throw std::invalid_argument("sann: l_max must be in [0, 20]");
    if (exponents.empty()) throw std::invalid_argument("sann: at least one power-spectrum exponent is needed");
  }

  /// Descriptor d (size()) of a centre whose neighbours sit at rel (n x 3) with bond weights w;
  /// grad (size() x n x 3, optional) = d d / d rel_j.
  void centre(const double* rel, const double* w, int n, double* d, double* grad) const {
    const int nn = static_cast<int>(exponents.size()), n_lm = (l_max + 1) * (l_max + 1), dim = size();
    std::fill(d, d + dim, 0.0);
    if (grad) std::fill(grad, grad + static_cast<std::size_t>(dim) * n * 3, 0.0);
    // Buffers of this thread, reused from call to call: allocating them per centre (some ~100 kB)
    // made the threads contend in malloc and fault in fresh pages, which kept 2 threads from
    // halving the time (benchmarks/parallel_predict.py).
    thread_local Buffers b;
    b.reset(l_max, n, nn, n_lm);
    soap_detail::SolidHarmonics& harmonics = b.harmonics;
    std::vector<double>&y = b.y, &gy = b.gy, &g = b.g, &dg = b.dg, &r = b.r, &u = b.u, &c = b.c, &sgrad = b.sgrad;
    std::vector<char>& inside = b.inside;
    const double kPi = 3.14159265358979323846;
    for (int k = 0; k < n; ++k) {
      const double* x = rel + 3 * k;
      const double r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
      if (r2 >= r_cut * r_cut) continue;
      if (r2 == 0.0) throw std::invalid_argument("sann: neighbour " + std::to_string(k) + " sits on the centre");
      inside[k] = 1;
      r[k] = std::sqrt(r2);
      for (int a = 0; a < 3; ++a) u[3 * k + a] = x[a] / r[k];
      const double fc = 0.5 * (std::cos(kPi * r[k] / r_cut) + 1.0),
                   dfc = -0.5 * kPi / r_cut * std::sin(kPi * r[k] / r_cut);
      harmonics.evaluate(u[3 * k], u[3 * k + 1], u[3 * k + 2], y.data() + k * n_lm, sgrad.data());
      // Y(rel / r): d/d rel = (grad S(u) - l Y u) / r, S homogeneous of degree l.
      for (int l = 0; l <= l_max; ++l)
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm)
          for (int a = 0; a < 3; ++a)
            gy[(static_cast<std::size_t>(k) * 3 + a) * n_lm + lm] =
                (sgrad[a * n_lm + lm] - l * y[k * n_lm + lm] * u[3 * k + a]) / r[k];
      for (int e = 0; e < nn; ++e) {
        const double ex = std::exp(-exponents[e] * r2);
        g[k * nn + e] = ex * fc;
        dg[k * nn + e] = ex * (dfc - 2.0 * exponents[e] * r[k] * fc);
        for (int lm = 0; lm < n_lm; ++lm) c[e * n_lm + lm] += w[k] * g[k * nn + e] * y[k * n_lm + lm];
      }
      for (std::size_t t = 0; t < xi.size(); ++t) {
        const double ex = std::exp(-xi[t] * r2);
        d[nn * (l_max + 1) + t] += w[k] * ex * fc;
        if (grad)
          for (int a = 0; a < 3; ++a)
            grad[((static_cast<std::size_t>(nn * (l_max + 1) + t)) * n + k) * 3 + a] +=
                w[k] * ex * (dfc - 2.0 * xi[t] * r[k] * fc) * u[3 * k + a];
      }
    }
    for (int e = 0; e < nn; ++e) {
      for (int l = 0; l <= l_max; ++l) {
        const double f = 4.0 * kPi / (2.0 * l + 1.0);
        const int idx = e * (l_max + 1) + l;
        for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) d[idx] += f * c[e * n_lm + lm] * c[e * n_lm + lm];
        if (!grad) continue;
        for (int k = 0; k < n; ++k) {
          if (!inside[k]) continue;
          for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) {
            const double coef = 2.0 * f * c[e * n_lm + lm] * w[k];
            for (int a = 0; a < 3; ++a)
              grad[(static_cast<std::size_t>(idx) * n + k) * 3 + a] +=
                  coef * (dg[k * nn + e] * u[3 * k + a] * y[k * n_lm + lm] +
                          g[k * nn + e] * gy[(static_cast<std::size_t>(k) * 3 + a) * n_lm + lm]);
          }
        }
      }
    }
  }
};

/// MEAD bond weights exp(mu_hk / m_h) = exp(m_k / (m_h + m_k)) of a centre of species cs whose
/// neighbours have species sp (masses in species order).
inline std::vector<double> mead_weights(const double* masses, int cs, const int* sp, int n) {
  std::vector<double> w(n);
  for (int k = 0; k < n; ++k) w[k] = std::exp(masses[sp[k]] / (masses[cs] + masses[sp[k]]));
  return w;
}

/// Descriptors of every atom of a structure, as training needs them: energy (n x D, MEAD bond
/// weights exp(mu_hk / m_h), masses in species order), force (n x D, unit weights) and
/// force_gradient (n x D x n x 3, d force descriptor / d positions, 1/Angstrom; zeroed here).
inline void structure_descriptors(const SannDescriptor& desc, const double* masses, const Geometry& g, double* energy,
                                  double* force, double* force_gradient) {
  const int n = g.n, dim = desc.size();
  const CentreNeighbors nl = centre_neighbors(g, desc.r_cut);
  std::fill(force_gradient, force_gradient + static_cast<std::size_t>(n) * dim * n * 3, 0.0);
  parallel_for(n, [&](int64_t i) {
    const int64_t o = nl.offsets[i];
    const int nn = nl.count(static_cast<int>(i));
    const double* rel = nl.rel.data() + 3 * o;
    const int* sp = nl.species.data() + o;
    const std::vector<double> w = mead_weights(masses, g.species[i], sp, nn), ones(nn, 1.0);
    desc.centre(rel, w.data(), nn, energy + static_cast<std::size_t>(i) * dim, nullptr);
    std::vector<double> grad(static_cast<std::size_t>(dim) * nn * 3, 0.0);
    desc.centre(rel, ones.data(), nn, force + static_cast<std::size_t>(i) * dim, grad.data());
    // Row i of force_gradient belongs to this centre alone: no two threads write one entry.
    for (int k = 0; k < dim; ++k) {
      double* row = force_gradient + (static_cast<std::size_t>(i) * dim + k) * n * 3;
      for (int j = 0; j < nn; ++j) {
        const int64_t a = nl.index[o + j];
        for (int x = 0; x < 3; ++x) {
          const double v = grad[(static_cast<std::size_t>(k) * nn + j) * 3 + x];
          row[3 * a + x] += v;
          row[3 * static_cast<std::size_t>(i) + x] -= v;
        }
      }
    }
  });
}

class SannModel {
 public:
  SannModel(SannDescriptor descriptor, std::vector<double> masses, std::vector<double> w_beta, std::vector<double> e0,
            double e_scale, std::vector<double> mean_e, std::vector<double> scale_e, std::vector<double> mean_f,
            std::vector<double> scale_f, Mlp net)
      : desc_(std::move(descriptor)),
        masses_(std::move(masses)),
        w_beta_(std::move(w_beta)),
        e0_(std::move(e0)),
        e_scale_(e_scale),
        mean_e_(std::move(mean_e)),
        scale_e_(std::move(scale_e)),
        mean_f_(std::move(mean_f)),
        scale_f_(std::move(scale_f)),
        net_(std::move(net)) {
    desc_.validate();
    const std::size_t s = masses_.size(), dim = static_cast<std::size_t>(desc_.size());
    if (s == 0 || w_beta_.size() != s || e0_.size() != s)
      throw std::invalid_argument("sann: masses, w_beta and e0 need one entry per species");
    for (const auto* v : {&mean_e_, &scale_e_, &mean_f_, &scale_f_})
      if (v->size() != dim)
        throw std::invalid_argument("sann: standardisation vectors need " + std::to_string(dim) + " entries");
    if (net_.n_in() != static_cast<int>(dim) || net_.n_out() != 1)
      throw std::invalid_argument("sann: the network must map " + std::to_string(dim) +
                                  " descriptor values to one energy");
  }

  int n_species() const { return static_cast<int>(masses_.size()); }
  double cutoff() const { return desc_.r_cut; }
  const SannDescriptor& descriptor() const { return desc_; }

  /// Energy of centre h (eV); grad (n x 3) += w_beta[s_h] dE'_h / d rel_j, so that the force on
  /// neighbour j is -grad_j and on the centre +sum_j grad_j (the pair style's convention).
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const {
    check_centre(cs, sp, n);
    Mlp::Cache cache;
    const double energy = e0_[cs] + e_scale_ * energy_pass(cs, rel, sp, n, cache);
    if (grad == nullptr) return energy;
    std::vector<double> dd, gz(desc_.size());
    force_pass(rel, n, cache, dd);
    const double seed = e_scale_ * w_beta_[cs];
    net_.input_gradient(cache, &seed, gz.data());
    add_position_gradient(gz.data(), dd.data(), n, grad);
    return energy;
  }

  /// Parameters of the output layer, theta_L = (w_L, b_L): energies and forces are linear in them.
  int n_last_layer() const { return net_.n_last_hidden() + 1; }
  bool has_variance() const { return !covariance_.empty(); }

  /// Posterior covariance Sigma_L of theta_L ((H + 1) x (H + 1), symmetric, row-major; dimensionless, as
  /// theta_L is: E = e_scale N) from the Laplace approximation at training; empty = no uncertainty.
  void set_last_layer_covariance(std::vector<double> covariance) {
    const std::size_t m = static_cast<std::size_t>(n_last_layer());
    if (!covariance.empty() && covariance.size() != m * m)
      throw std::invalid_argument("sann: the last-layer covariance needs " + std::to_string(m) + " x " +
                                  std::to_string(m) + " entries");
    covariance_ = std::move(covariance);
  }

  /// Centre h's share of the rows: energy_row (H + 1) += e_scale [a_L(z_e); 1] (eV) and
  /// grad (H x n x 3) += w_beta[s_h] e_scale d a_L(z_f) / d rel_j (eV/Angstrom), the unit-by-unit
  /// analogue of centre_energy's grad (the bias has no force row: it does not move with r).
  void centre_rows(int cs, const double* rel, const int* sp, int n, double* energy_row, double* grad) const {
    check_centre(cs, sp, n);
    const int dim = desc_.size(), h = net_.n_last_hidden();
    std::vector<double> a(h), dd, jac(static_cast<std::size_t>(h) * dim);
    Mlp::Cache cache;
    energy_pass(cs, rel, sp, n, cache);
    net_.last_hidden(cache, a.data());
    for (int k = 0; k < h; ++k) energy_row[k] += e_scale_ * a[k];
    energy_row[h] += e_scale_;
    force_pass(rel, n, cache, dd);
    net_.last_hidden_jacobian(cache, jac.data());
    const double seed = e_scale_ * w_beta_[cs];
    for (double& v : jac) v *= seed;
    for (int k = 0; k < h; ++k)
      add_position_gradient(jac.data() + static_cast<std::size_t>(k) * dim, dd.data(), n,
                            grad + static_cast<std::size_t>(k) * n * 3);
  }

  /// energy_row (H + 1): dE/d theta_L (eV); force_rows (3n x (H + 1), row-major): dF_{i,x} / d theta_L
  /// (eV/Angstrom), so that E = const + energy_row . theta_L and F = force_rows theta_L exactly.
  void last_layer_rows(const Geometry& g, std::vector<double>& energy_row, std::vector<double>& force_rows) const {
    const CentreNeighbors nl = centre_neighbors(g, desc_.r_cut);
    const int h = net_.n_last_hidden(), m = h + 1;
    energy_row.assign(m, 0.0);
    force_rows.assign(3 * static_cast<std::size_t>(g.n) * m, 0.0);
    std::vector<double> grad;
    for (int i = 0; i < g.n; ++i) {
      const int nn = nl.count(i);
      grad.assign(static_cast<std::size_t>(h) * nn * 3, 0.0);
      centre_rows(g.species[i], nl.rel.data() + 3 * nl.offsets[i], nl.species.data() + nl.offsets[i], nn,
                  energy_row.data(), grad.data());
      for (int k = 0; k < h; ++k)
        scatter_forces(nl, i, grad.data() + static_cast<std::size_t>(k) * nn * 3, force_rows.data() + k, m);
    }
  }

  /// diag(J_F Sigma_L J_F^T) (3n, eV^2/Angstrom^2): the variance of every force component under
  /// the last layer's posterior, exact because the forces are linear in theta_L.
  std::vector<double> force_variances(const Geometry& g) const {
    if (!has_variance())
      throw std::invalid_argument(
          "this sann model carries no last-layer covariance (saved before sann "
          "uncertainties existed); retrain it to get uncertainties");
    std::vector<double> energy_row, rows;
    last_layer_rows(g, energy_row, rows);
    const std::size_t m = static_cast<std::size_t>(n_last_layer()), n_rows = 3 * static_cast<std::size_t>(g.n);
    std::vector<double> var(n_rows, 0.0);
    quadratic_forms(covariance_.data(), static_cast<int64_t>(m), rows.data(), static_cast<int64_t>(n_rows), var.data());
    for (double& v : var) v = std::max(v, 0.0);  // Sigma_L is positive definite; this only clips rounding.
    return var;
  }

 private:
  void check_centre(int cs, const int* sp, int n) const {
    if (cs < 0 || cs >= n_species()) throw std::out_of_range("sann: centre species out of range");
    for (int k = 0; k < n; ++k)
      if (sp[k] < 0 || sp[k] >= n_species()) throw std::out_of_range("sann: neighbour species out of range");
  }

  /// The network on centre cs's standardised energy descriptor (MEAD bond weights): N(z_e), cache filled.
  double energy_pass(int cs, const double* rel, const int* sp, int n, Mlp::Cache& cache) const {
    const int dim = desc_.size();
    std::vector<double> d(dim), z(dim);
    const std::vector<double> w = mead_weights(masses_.data(), cs, sp, n);
    desc_.centre(rel, w.data(), n, d.data(), nullptr);
    for (int k = 0; k < dim; ++k) z[k] = (d[k] - mean_e_[k]) / scale_e_[k];
    double out;
    net_.forward(z.data(), &out, cache);
    return out;
  }

  /// The network on the standardised force ("dummy energy") descriptor (unit bond weights): cache
  /// filled, dd (dim x n x 3) the descriptor's derivatives w.r.t. the neighbours' positions.
  void force_pass(const double* rel, int n, Mlp::Cache& cache, std::vector<double>& dd) const {
    const int dim = desc_.size();
    std::vector<double> d(dim), z(dim);
    const std::vector<double> ones(n, 1.0);
    dd.assign(static_cast<std::size_t>(dim) * n * 3, 0.0);
    desc_.centre(rel, ones.data(), n, d.data(), dd.data());
    for (int k = 0; k < dim; ++k) z[k] = (d[k] - mean_f_[k]) / scale_f_[k];
    double out;
    net_.forward(z.data(), &out, cache);
  }

  /// grad (n x 3) += sum_k gz[k] / scale_f[k] dd[k] (n x 3): a gradient w.r.t. the standardised
  /// force descriptor carried to the neighbour positions.
  void add_position_gradient(const double* gz, const double* dd, int n, double* grad) const {
    for (int k = 0; k < desc_.size(); ++k) {
      const double gk = gz[k] / scale_f_[k];
      if (gk == 0.0) continue;
      const double* row = dd + static_cast<std::size_t>(k) * n * 3;
      for (int j = 0; j < 3 * n; ++j) grad[j] += gk * row[j];
    }
  }

  /// Centre i's gradient (nn x 3, w.r.t. its neighbours' relative positions) into structure forces
  /// (entry 3a + x at out[(3a + x) * stride]): -grad on each neighbour, +grad on the centre.
  static void scatter_forces(const CentreNeighbors& nl, int i, const double* grad, double* out, std::size_t stride) {
    const int64_t o = nl.offsets[i];
    for (int j = 0; j < nl.count(i); ++j) {
      const int64_t a = nl.index[o + j];
      for (int x = 0; x < 3; ++x) {
        out[(3 * a + x) * stride] -= grad[3 * j + x];
        out[(3 * static_cast<std::size_t>(i) + x) * stride] += grad[3 * j + x];
      }
    }
  }

  SannDescriptor desc_;
  std::vector<double> masses_, w_beta_, e0_;
  double e_scale_;
  std::vector<double> mean_e_, scale_e_, mean_f_, scale_f_;
  Mlp net_;
  std::vector<double> covariance_;  // Sigma_L, (H + 1) x (H + 1); empty without uncertainty
};

/// Build a sann model from a .cfm file of kind "sann".
inline SannModel read_sann_model(const ModelFile& mf) {
  const std::string& path = mf.path();
  if (mf.kind() != "sann") throw ModelFileError(path + ": model kind is '" + mf.kind() + "', expected 'sann'");
  try {
    const Json& meta = mf.metadata();
    const Json& dj = meta.at("descriptor");
    SannDescriptor desc;
    desc.r_cut = dj.at("r_cut").as_double();
    desc.l_max = static_cast<int>(dj.at("l_max").as_int());
    for (std::size_t k = 0; k < dj.at("exponents").size(); ++k)
      desc.exponents.push_back(dj.at("exponents").at(k).as_double());
    for (std::size_t k = 0; k < dj.at("xi").size(); ++k) desc.xi.push_back(dj.at("xi").at(k).as_double());
    const int s = static_cast<int>(meta.at("elements").size()), dim = desc.size();
    const int layers = static_cast<int>(meta.at("layers").as_int());
    std::vector<std::vector<double>> w, b;
    for (int l = 0; l < layers; ++l) {
      w.push_back(mf.f64("net/W" + std::to_string(l), {-1, -1}));
      b.push_back(mf.f64("net/b" + std::to_string(l), {-1}));
    }
    SannModel model(desc, mf.f64("masses", {s}), mf.f64("w_beta", {s}), mf.f64("e0", {s}),
                    meta.at("e_scale").as_double(), mf.f64("mean_e", {dim}), mf.f64("scale_e", {dim}),
                    mf.f64("mean_f", {dim}), mf.f64("scale_f", {dim}),
                    Mlp(std::move(w), std::move(b), Activation::sigmoid));
    // Optional: files written before sann uncertainties existed load without one.
    if (mf.has("uncertainty/last_layer_covariance")) {
      const int64_t m = model.n_last_layer();
      model.set_last_layer_covariance(mf.f64("uncertainty/last_layer_covariance", {m, m}));
    }
    return model;
  } catch (const std::invalid_argument& e) {
    throw ModelFileError(path + ": inconsistent sann model: " + e.what());
  } catch (const std::out_of_range& e) {
    throw ModelFileError(path + ": sann model metadata is incomplete: " + e.what());
  }
}

}  // namespace clusterforce
