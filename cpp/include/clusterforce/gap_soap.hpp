// GAP SOAP term: delta^2 (p_hat . p_hat_m)^zeta on normalised power spectra (review eq. 16).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "distances.hpp"
#include "gap_term.hpp"
#include "parallel.hpp"
#include "soap.hpp"

namespace clusterforce {

/// SOAP term: k(p, p') = delta^2 (p_hat . p'_hat)^zeta between normalised power spectra of
/// centres of the same species (review eq. 16). Sparse points are stored normalised, grouped
/// by centre species (offsets has n_species + 1 entries).
class SoapTerm : public GapTerm {
 public:
  SoapTerm(SoapGTO soap, double delta, int zeta, std::vector<double> sparse, std::vector<int64_t> offsets,
           std::vector<double> alpha)
      : soap_(std::move(soap)),
        delta_(delta),
        zeta_(zeta),
        sparse_(std::move(sparse)),
        offsets_(std::move(offsets)),
        alpha_(std::move(alpha)) {
    const std::size_t f = soap_.n_features();
    if (!(delta > 0.0)) throw std::invalid_argument("SOAP term: delta must be > 0, got " + std::to_string(delta));
    if (zeta < 1) throw std::invalid_argument("SOAP term: zeta must be >= 1, got " + std::to_string(zeta));
    if (sparse_.size() % f != 0) {
      throw std::invalid_argument("SOAP term: sparse has " + std::to_string(sparse_.size()) +
                                  " values, not a multiple of the " + std::to_string(f) + " SOAP features");
    }
    const int64_t m = static_cast<int64_t>(sparse_.size() / f);
    if (offsets_.size() != static_cast<std::size_t>(soap_.n_species()) + 1 || offsets_.front() != 0 ||
        offsets_.back() != m || !std::is_sorted(offsets_.begin(), offsets_.end())) {
      throw std::invalid_argument(
          "SOAP term: offsets must have n_species + 1 = " + std::to_string(soap_.n_species() + 1) +
          " entries rising from 0 to the number of sparse points " + std::to_string(m));
    }
    if (!alpha_.empty() && static_cast<int64_t>(alpha_.size()) != m) {
      throw std::invalid_argument("SOAP term: alpha has " + std::to_string(alpha_.size()) + " entries for " +
                                  std::to_string(m) + " sparse points");
    }
    quadratic_.resize(static_cast<std::size_t>(soap_.n_species()));
    if (zeta_ == 2 && !alpha_.empty()) build_quadratic_forms();
  }

  const SoapGTO& soap() const { return soap_; }
  double delta() const { return delta_; }
  int zeta() const { return zeta_; }
  bool uses_quadratic_form(int species) const {
    check_species(species, soap_.n_species(), "centre");
    return !quadratic_[static_cast<std::size_t>(species)].empty();
  }
  double r_cut() const override { return soap_.cutoff(); }
  int n_sparse() const override { return static_cast<int>(sparse_.size() / soap_.n_features()); }

  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const override {
    if (alpha_.empty()) throw std::invalid_argument("SOAP term has no weights (alpha): train it first");
    if (grad == nullptr) return energy_of(cs, centre(cs, rel, sp, n, false).p.data(), nullptr);
    // Forces as one vector-Jacobian product through the expansion coefficients: dE/dp is known
    // once the spectrum is, and the (n + 1, 3, F) array dp/dr is never formed.
    const std::size_t f = soap_.n_features();
    std::vector<double> p_hat(f), u(f), out(3 * (static_cast<std::size_t>(n) + 1));
    double energy = 0.0;
    SoapGTO::Workspace ws = soap_.make_workspace();
    auto make_weights = [&](const double* p) {
      std::copy(p, p + f, p_hat.begin());
      const double norm = normalise(p_hat);
      energy = energy_of(cs, p_hat.data(), u.data());
      // Through the normalisation: dE/dp = (u - (u . p_hat) p_hat) / |p|.
      const double up = dot(u.data(), p_hat.data(), f);
      for (std::size_t k = 0; k < f; ++k) u[k] = (u[k] - up * p_hat[k]) / norm;
      return static_cast<const double*>(u.data());
    };
    soap_.contract_center_with(cs, static_cast<std::size_t>(n), rel, sp, make_weights, nullptr, out.data(), ws);
    for (int k = 0; k < 3 * n; ++k) grad[k] += out[3 + k];
    return energy;
  }

  void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const override {
    Centre c = centre(cs, rel, sp, n, grad_rows != nullptr);
    const std::size_t f = soap_.n_features();
    const int64_t big_m = n_sparse();
    const int64_t lo = offsets_[cs], mc = offsets_[cs + 1] - lo;
    const double d2 = delta_ * delta_;
    if (mc == 0) return;
    std::vector<double> z(static_cast<std::size_t>(mc));
    for (int64_t m = 0; m < mc; ++m) {
      z[m] = dot(c.p.data(), sparse_.data() + (lo + m) * f, f);
      row[lo + m] += d2 * std::pow(z[m], zeta_);
    }
    if (grad_rows == nullptr || n == 0) return;
    // d row_m / d r_jx = coef_m (g_jx . p_m - z_m g_jx . p_hat): all g_jx . p_m at once as one
    // blocked product of the (3n x F) gradients with the channel's (M_c x F) sparse points.
    const std::size_t rows = 3 * static_cast<std::size_t>(n);
    const double* g = c.grad.data() + 3 * f;  // rows 1..n: the neighbours
    std::vector<double> gp(rows), gs(rows * static_cast<std::size_t>(mc));
    for (std::size_t r = 0; r < rows; ++r) gp[r] = dot(g + r * f, c.p.data(), f);
    dot_products(g, rows, sparse_.data() + lo * f, static_cast<std::size_t>(mc), f, gs.data());
    for (int64_t m = 0; m < mc; ++m) {
      const double coef = d2 * zeta_ * std::pow(z[m], zeta_ - 1) / c.norm;
      for (std::size_t r = 0; r < rows; ++r)
        grad_rows[static_cast<int64_t>(r) * big_m + lo + m] += coef * (gs[r * mc + m] - z[m] * gp[r]);
    }
  }

  double centre_self_covariance(int, const double*, const int*, int) const override { return delta_ * delta_; }

  double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const override {
    const std::size_t f = soap_.n_features();
    std::vector<std::vector<double>> p(n);
    for (int i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      p[i] = centre(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), false).p;
    }
    double c = 0.0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (species[i] == species[j]) c += std::pow(dot(p[i].data(), p[j].data(), f), zeta_);
    return delta_ * delta_ * c;
  }

  void structure_force_prior(const CentreNeighbors& nl, const int* species, int n, double* out) const override {
    // k = delta^2 z^zeta with z = p_a . p_b (normalised spectra), so for one coordinate
    // d^2 k / dr dr' = delta^2 zeta [(zeta - 1) z^(zeta-2) (J_a . p_b)(J_b . p_a) + z^(zeta-1) J_a . J_b],
    // J = d p_hat / dr = (1 - p_hat p_hat^T) dp/dr / |p|, summed over the centres a, b that see the atom.
    const std::size_t f = soap_.n_features();
    struct Touch {
      int centre;
      std::vector<double> J;  // 3 x F
    };
    std::vector<std::vector<double>> p(n);
    std::vector<std::vector<Touch>> by_atom(n);
    std::vector<int> slot(n, -1);
    for (int i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      const int nn = nl.count(i);
      Centre c = centre(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nn, true);
      std::vector<int> touched;
      for (int r = 0; r <= nn; ++r) {
        const int atom = r == 0 ? i : static_cast<int>(nl.index[o + r - 1]);
        if (slot[atom] < 0) {
          slot[atom] = static_cast<int>(by_atom[atom].size());
          by_atom[atom].push_back({i, std::vector<double>(3 * f, 0.0)});
          touched.push_back(atom);
        }
        double* J = by_atom[atom][slot[atom]].J.data();
        for (int x = 0; x < 3; ++x) {
          const double* g = c.grad.data() + (static_cast<std::size_t>(r) * 3 + x) * f;
          const double gp = dot(g, c.p.data(), f);
          for (std::size_t k = 0; k < f; ++k) J[x * f + k] += (g[k] - gp * c.p[k]) / c.norm;
        }
      }
      for (int atom : touched) slot[atom] = -1;
      p[i] = std::move(c.p);
    }
    // Per atom and direction, all centre pairs at once: A = J J^T and B = J P^T (blocked
    // products), with J (T x F) the touching centres' Jacobians and P (T x F) their spectra.
    const double d2 = delta_ * delta_;
    parallel_for(n, [&](int64_t atom) {
      const int k = static_cast<int>(atom);
      const std::size_t t_count = by_atom[k].size();
      if (t_count == 0) return;
      std::vector<double> P(t_count * f), J(t_count * f), A(t_count * t_count), B(t_count * t_count),
          Z(t_count * t_count);
      for (std::size_t a = 0; a < t_count; ++a)
        std::copy(p[by_atom[k][a].centre].begin(), p[by_atom[k][a].centre].end(), P.begin() + a * f);
      dot_products(P.data(), t_count, P.data(), t_count, f, Z.data());
      for (int x = 0; x < 3; ++x) {
        for (std::size_t a = 0; a < t_count; ++a) {
          const double* ja = by_atom[k][a].J.data() + x * f;
          std::copy(ja, ja + f, J.begin() + a * f);
        }
        dot_products(J.data(), t_count, J.data(), t_count, f, A.data());
        if (zeta_ >= 2) dot_products(J.data(), t_count, P.data(), t_count, f, B.data());
        double sum = 0.0;
        for (std::size_t a = 0; a < t_count; ++a) {
          for (std::size_t b = 0; b < t_count; ++b) {
            if (species[by_atom[k][a].centre] != species[by_atom[k][b].centre]) continue;
            const double z = Z[a * t_count + b];
            double pair = std::pow(z, zeta_ - 1) * A[a * t_count + b];
            if (zeta_ >= 2) pair += (zeta_ - 1) * std::pow(z, zeta_ - 2) * B[a * t_count + b] * B[b * t_count + a];
            sum += pair;
          }
        }
        out[3 * k + x] += d2 * zeta_ * sum;
      }
    });
  }

  /// Normalised power spectrum of a centre (length n_features).
  std::vector<double> normalised(int cs, const double* rel, const int* sp, int n) const {
    return centre(cs, rel, sp, n, false).p;
  }

 private:
  struct Centre {
    std::vector<double> p;     // normalised power spectrum
    double norm = 0.0;         // |p| before normalisation
    std::vector<double> grad;  // (n + 1, 3, F) raw gradients, row 0 = centre
  };

  static double dot(const double* a, const double* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t k = 0; k < n; ++k) s += a[k] * b[k];
    return s;
  }

  // With zeta = 2 the kernel sum is a quadratic form, sum_m alpha_m delta^2 (p_hat . p_m)^2 =
  // p_hat^T A p_hat with A = delta^2 sum_m alpha_m p_m p_m^T (FLARE++'s mapping): F^2 work per
  // centre instead of M F, whatever the number M of sparse points. Built for a centre species only
  // where that is cheaper (M > F); the others keep the sum.
  void build_quadratic_forms() {
    const std::size_t f = soap_.n_features();
    const double d2 = delta_ * delta_;
    for (int s = 0; s < soap_.n_species(); ++s) {
      if (offsets_[s + 1] - offsets_[s] <= static_cast<int64_t>(f)) continue;
      std::vector<double>& a = quadratic_[static_cast<std::size_t>(s)];
      a.assign(f * f, 0.0);
      for (int64_t m = offsets_[s]; m < offsets_[s + 1]; ++m) {
        const double* pm = sparse_.data() + m * f;
        const double w = d2 * alpha_[m];
        for (std::size_t i = 0; i < f; ++i)
          for (std::size_t j = 0; j < f; ++j) a[i * f + j] += w * pm[i] * pm[j];
      }
    }
  }

  Centre centre(int cs, const double* rel, const int* sp, int n, bool with_grad) const {
    const std::size_t f = soap_.n_features();
    Centre c;
    c.p.resize(f);
    if (with_grad) c.grad.resize((static_cast<std::size_t>(n) + 1) * 3 * f);
    SoapGTO::Workspace ws = soap_.make_workspace();
    soap_.compute_center(cs, static_cast<std::size_t>(n), rel, sp, c.p.data(), with_grad ? c.grad.data() : nullptr, ws);
    c.norm = normalise(c.p);
    return c;
  }

  // Scales p to unit length in place; returns the length it had.
  static double normalise(std::vector<double>& p) {
    const double norm = std::sqrt(dot(p.data(), p.data(), p.size()));
    if (!(norm > 0.0)) throw std::invalid_argument("SOAP power spectrum of a centre is zero; cannot normalise");
    for (double& v : p) v /= norm;
    return norm;
  }

  // Local energy of a centre with normalised spectrum p_hat; with u, also dE/dp_hat (F values):
  // delta^2 sum_m alpha_m zeta z_m^(zeta-1) p_m, or 2 A p_hat through the zeta = 2 quadratic form.
  double energy_of(int cs, const double* p_hat, double* u) const {
    const std::size_t f = soap_.n_features();
    const std::vector<double>& a = quadratic_[static_cast<std::size_t>(cs)];
    if (!a.empty()) {  // E = p_hat^T A p_hat, A symmetric
      std::vector<double> ap(f);
      for (std::size_t k = 0; k < f; ++k) ap[k] = dot(a.data() + k * f, p_hat, f);
      if (u != nullptr)
        for (std::size_t k = 0; k < f; ++k) u[k] = 2.0 * ap[k];
      return dot(ap.data(), p_hat, f);
    }
    const double d2 = delta_ * delta_;
    if (u != nullptr) std::fill(u, u + f, 0.0);
    double energy = 0.0;
    for (int64_t m = offsets_[cs]; m < offsets_[cs + 1]; ++m) {
      const double* pm = sparse_.data() + m * f;
      const double z = dot(p_hat, pm, f);
      energy += d2 * alpha_[m] * std::pow(z, zeta_);
      if (u == nullptr) continue;
      const double coef = d2 * alpha_[m] * zeta_ * std::pow(z, zeta_ - 1);
      for (std::size_t k = 0; k < f; ++k) u[k] += coef * pm[k];
    }
    return energy;
  }

  SoapGTO soap_;
  double delta_;
  int zeta_;
  std::vector<double> sparse_;
  std::vector<int64_t> offsets_;
  std::vector<double> alpha_;
  std::vector<std::vector<double>> quadratic_;  // per centre species: A (F x F) or empty
};

}  // namespace clusterforce
