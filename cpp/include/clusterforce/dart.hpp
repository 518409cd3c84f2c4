// The dart kind (dart paper): topological atomic descriptors (TAD) and the DART network.
//
// TAD of atom i: how many atoms lie in its J shell (r < r_J), K shell (r_J <= r < r_K) and L shell
// (r >= r_K), here per neighbour species, with the atom's own species one-hot appended
// (x_i, 4 S numbers for S species). The paper counts with sharp shell boundaries; here a
// neighbour's membership is smooth, a_J = s(r; r_J), a_K = s(r; r_K) - s(r; r_J),
// a_L = 1 - s(r; r_K) with the logistic step s(r; c) = 1 / (1 + exp((r - c) / width)), so energies
// are differentiable and MD frames of one topology are told apart; width -> 0 gives the counts.
//
// DART (paper eqs. 1-6): Y_i = MLP_f(z_i) + sum_{shell s} sum_{j != i} a_s(r_ij) MLP_s(z_j),
// E_i = e0[s_i] + e_scale MLP_int(Y_i), E = sum_i E_i, with z = (x - mean) / scale the
// standardised descriptor. Every atom of the cluster is in one of i's shells (L is unbounded), so
// the model is for free clusters only and costs O(N^2) pairs. Forces are -dE/dr by back-propagation.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mlp.hpp"
#include "modelfile.hpp"
#include "parallel.hpp"

namespace clusterforce {

/// Below this many atoms dart's loops run on the calling thread: starting the OpenMP threads
/// costs more than they save (benchmarks/parallel_predict.py).
constexpr int kDartSerialAtoms = 16;

/// Shell boundaries (Angstrom) and the width of their logistic steps (Angstrom).
struct TadShells {
  double r_j = 0.0, r_k = 0.0, width = 0.0;

  void validate() const {
    if (!(r_j > 0.0 && r_k > r_j && std::isfinite(r_k)))
      throw std::invalid_argument("TAD shells need 0 < r_J < r_K, got r_J = " + std::to_string(r_j) +
                                  ", r_K = " + std::to_string(r_k));
    if (!(width > 0.0 && std::isfinite(width)))
      throw std::invalid_argument("TAD shell width must be positive, got " + std::to_string(width));
  }

  /// Membership a[s] of a neighbour at distance r in shells J, K, L and da[s] / dr.
  void membership(double r, double a[3], double da[3]) const {
    double sj, dsj, sk, dsk;
    step(r, r_j, sj, dsj);
    step(r, r_k, sk, dsk);
    a[0] = sj;
    a[1] = sk - sj;
    a[2] = 1.0 - sk;
    da[0] = dsj;
    da[1] = dsk - dsj;
    da[2] = -dsk;
  }

 private:
  void step(double r, double c, double& s, double& ds) const {
    const double t = (r - c) / width;
    // logistic written so exp never overflows
    const double e = std::exp(-std::abs(t));
    s = t > 0.0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
    ds = -e / ((1.0 + e) * (1.0 + e)) / width;
  }
};

/// Number of TAD values per atom for S species.
inline int tad_size(int n_species) {
  return 4 * n_species;
}

/// Shell memberships of every ordered pair (i, j) of a free cluster: a and da/dr (n x n x 3, zero
/// on the diagonal) and the unit vector from i to j (n x n x 3).
struct PairShells {
  std::vector<double> a, da, unit;
};

inline PairShells pair_shells(const TadShells& shells, const double* positions, int n) {
  shells.validate();
  const std::size_t nn = static_cast<std::size_t>(n);
  PairShells p{std::vector<double>(nn * nn * 3, 0.0), std::vector<double>(nn * nn * 3, 0.0),
               std::vector<double>(nn * nn * 3, 0.0)};
  // Rows i are independent; coincident atoms throw from the row of the lower index.
  parallel_for(
      n,
      [&](int64_t i) {
        for (int j = 0; j < n; ++j) {
          if (j == i) continue;
          double dv[3], r2 = 0.0;
          for (int c = 0; c < 3; ++c) {
            dv[c] = positions[3 * j + c] - positions[3 * i + c];
            r2 += dv[c] * dv[c];
          }
          if (r2 == 0.0)
            throw std::invalid_argument("atoms " + std::to_string(i) + " and " + std::to_string(j) + " coincide");
          const double r = std::sqrt(r2);
          const std::size_t k = (static_cast<std::size_t>(i) * nn + j) * 3;
          shells.membership(r, p.a.data() + k, p.da.data() + k);
          for (int c = 0; c < 3; ++c) p.unit[k + c] = dv[c] / r;
        }
      },
      Schedule{}.serial_below(kDartSerialAtoms));
  return p;
}

/// TAD of every atom (n x 4S, row-major) from the pair memberships.
inline std::vector<double> tad(const PairShells& pairs, const int* species, int n, int n_species) {
  const int d = tad_size(n_species);
  const std::size_t nn = static_cast<std::size_t>(n);
  std::vector<double> x(nn * d, 0.0);
  for (int i = 0; i < n; ++i) {
    if (species[i] < 0 || species[i] >= n_species)
      throw std::out_of_range("atom " + std::to_string(i) + ": species index out of range");
    x[static_cast<std::size_t>(i) * d + 3 * n_species + species[i]] = 1.0;
    for (int j = 0; j < n; ++j)
      for (int s = 0; s < 3; ++s)
        x[static_cast<std::size_t>(i) * d + s * n_species + species[j]] +=
            pairs.a[(static_cast<std::size_t>(i) * nn + j) * 3 + s];
  }
  return x;
}

/// TAD of every atom (n x 4S, row-major) of a free cluster.
inline std::vector<double> tad(const TadShells& shells, const double* positions, const int* species, int n,
                               int n_species) {
  return tad(pair_shells(shells, positions, n), species, n, n_species);
}

struct DartResult {
  double energy = 0.0;
  std::vector<double> atom_energies;  // eV
  std::vector<double> forces;         // 3n, eV/Angstrom
};

class DartModel {
 public:
  /// nets: MLP_f, MLP_J, MLP_K, MLP_L, MLP_int; mean, scale: 4S standardisation of the TAD.
  DartModel(int n_species, TadShells shells, std::vector<double> mean, std::vector<double> scale,
            std::vector<double> e0, double e_scale, std::vector<Mlp> nets)
      : n_species_(n_species),
        shells_(shells),
        mean_(std::move(mean)),
        scale_(std::move(scale)),
        e0_(std::move(e0)),
        e_scale_(e_scale),
        nets_(std::move(nets)) {
    shells_.validate();
    const int d = tad_size(n_species);
    if (static_cast<int>(mean_.size()) != d || static_cast<int>(scale_.size()) != d)
      throw std::invalid_argument("dart: mean and scale need " + std::to_string(d) + " entries");
    for (double s : scale_)
      if (!(s > 0.0)) throw std::invalid_argument("dart: descriptor scale must be positive");
    if (static_cast<int>(e0_.size()) != n_species) throw std::invalid_argument("dart: e0 needs one entry per species");
    if (nets_.size() != 5) throw std::invalid_argument("dart: need the five networks f, J, K, L, int");
    const int width = nets_[0].n_out();
    for (int k = 0; k < 4; ++k) {
      if (nets_[k].n_in() != d || nets_[k].n_out() != width)
        throw std::invalid_argument("dart: atom networks must map " + std::to_string(d) +
                                    " descriptor values to one feature width");
    }
    if (nets_[4].n_in() != width || nets_[4].n_out() != 1)
      throw std::invalid_argument("dart: the interaction network must map the feature width to one energy");
  }

  int n_species() const { return n_species_; }
  const TadShells& shells() const { return shells_; }

  /// Energy, per-atom energies and forces of a free cluster.
  DartResult compute(const double* positions, const int* species, int n) const {
    const int d = tad_size(n_species_), width = nets_[0].n_out();
    const std::size_t nn = static_cast<std::size_t>(n);
    const PairShells pairs = pair_shells(shells_, positions, n);
    const std::vector<double>& a = pairs.a;
    const std::vector<double>& da = pairs.da;
    const std::vector<double>& unit = pairs.unit;
    const std::vector<double> x = tad(pairs, species, n, n_species_);
    std::vector<double> z(x.size());
    for (std::size_t k = 0; k < x.size(); ++k) z[k] = (x[k] - mean_[k % d]) / scale_[k % d];
    // Atom networks: h[k][j] = MLP_k(z_j), k = f, J, K, L.
    std::vector<std::vector<Mlp::Cache>> cache(4, std::vector<Mlp::Cache>(nn));
    std::vector<std::vector<double>> h(4, std::vector<double>(nn * width));
    const Schedule rows = Schedule::static_blocks().serial_below(kDartSerialAtoms);
    parallel_for(
        n,
        [&](int64_t j) {
          for (int k = 0; k < 4; ++k)
            nets_[k].forward(z.data() + static_cast<std::size_t>(j) * d, h[k].data() + j * width, cache[k][j]);
        },
        rows);
    DartResult res;
    res.atom_energies.assign(nn, 0.0);
    res.forces.assign(3 * nn, 0.0);
    std::vector<double> u(nn * width);
    parallel_for_with(
        n, [&] { return std::vector<double>(width); },
        [&](std::vector<double>& y, int64_t i) {
          for (int f = 0; f < width; ++f) y[f] = h[0][i * width + f];
          for (int j = 0; j < n; ++j) {
            if (j == i) continue;
            for (int s = 0; s < 3; ++s) {
              const double w = a[(static_cast<std::size_t>(i) * nn + j) * 3 + s];
              for (int f = 0; f < width; ++f) y[f] += w * h[1 + s][j * width + f];
            }
          }
          Mlp::Cache c;
          double out;
          nets_[4].forward(y.data(), &out, c);
          res.atom_energies[i] = e0_[species[i]] + e_scale_ * out;
          nets_[4].input_gradient(c, &e_scale_, u.data() + i * width);  // u_i = dE / dY_i
        },
        rows);
    for (int i = 0; i < n; ++i) res.energy += res.atom_energies[i];  // in atom order: thread-count independent
    // dE/dz through the atom networks; dE/da directly (u_i . MLP_s(z_j)) and through the counts.
    std::vector<double> gz(nn * d, 0.0);
    struct Buffers {
      std::vector<double> gin, v;
    };
    parallel_for_with(
        n, [&] { return Buffers{std::vector<double>(d), std::vector<double>(width)}; },
        [&](Buffers& buf, int64_t j) {
          nets_[0].input_gradient(cache[0][j], u.data() + j * width, buf.gin.data());
          for (int k = 0; k < d; ++k) gz[j * d + k] += buf.gin[k];
          for (int s = 0; s < 3; ++s) {
            std::fill(buf.v.begin(), buf.v.end(), 0.0);
            for (int i = 0; i < n; ++i) {
              if (i == j) continue;
              const double w = a[(static_cast<std::size_t>(i) * nn + j) * 3 + s];
              for (int f = 0; f < width; ++f) buf.v[f] += w * u[i * width + f];
            }
            nets_[1 + s].input_gradient(cache[1 + s][j], buf.v.data(), buf.gin.data());
            for (int k = 0; k < d; ++k) gz[j * d + k] += buf.gin[k];
          }
        },
        rows);
    // dE/dr_ij of every pair in parallel, then scattered serially in pair order (sums that do
    // not depend on the thread count).
    std::vector<double> de_dr(nn * nn, 0.0);
    parallel_for(
        n,
        [&](int64_t i) {
          for (int j = 0; j < n; ++j) {
            if (j == i) continue;
            const std::size_t p = (static_cast<std::size_t>(i) * nn + j) * 3;
            double sum = 0.0;
            for (int s = 0; s < 3; ++s) {
              double de_da = gz[static_cast<std::size_t>(i) * d + s * n_species_ + species[j]] /
                             scale_[s * n_species_ + species[j]];
              for (int f = 0; f < width; ++f) de_da += u[i * width + f] * h[1 + s][j * width + f];
              sum += de_da * da[p + s];
            }
            de_dr[static_cast<std::size_t>(i) * nn + j] = sum;
          }
        },
        rows);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        if (j == i) continue;
        const std::size_t p = (static_cast<std::size_t>(i) * nn + j) * 3;
        const double g = de_dr[static_cast<std::size_t>(i) * nn + j];
        // r_ij grows when j moves along unit_ij and i against it.
        for (int c = 0; c < 3; ++c) {
          res.forces[3 * j + c] -= g * unit[p + c];
          res.forces[3 * i + c] += g * unit[p + c];
        }
      }
    }
    return res;
  }

 private:
  int n_species_;
  TadShells shells_;
  std::vector<double> mean_, scale_, e0_;
  double e_scale_;
  std::vector<Mlp> nets_;
};

/// Names of the five networks in the model file (nets/<name>/W<l>, nets/<name>/b<l>).
inline const std::vector<std::string>& dart_net_names() {
  static const std::vector<std::string> names = {"f", "J", "K", "L", "int"};
  return names;
}

/// Build a dart model from a .cfm file of kind "dart".
inline DartModel read_dart_model(const ModelFile& mf) {
  const std::string& path = mf.path();
  if (mf.kind() != "dart") throw ModelFileError(path + ": model kind is '" + mf.kind() + "', expected 'dart'");
  const Json& meta = mf.metadata();
  try {
    const int n_species = static_cast<int>(meta.at("elements").size());
    const Json& sh = meta.at("shells");
    TadShells shells{sh.at("r_J").as_double(), sh.at("r_K").as_double(), sh.at("width").as_double()};
    std::vector<Mlp> nets;
    for (const auto& name : dart_net_names()) {
      const int layers = static_cast<int>(meta.at("layers").at(name).as_int());
      std::vector<std::vector<double>> w, b;
      for (int l = 0; l < layers; ++l) {
        w.push_back(mf.f64("nets/" + name + "/W" + std::to_string(l), {-1, -1}));
        b.push_back(mf.f64("nets/" + name + "/b" + std::to_string(l), {-1}));
      }
      nets.emplace_back(std::move(w), std::move(b));
    }
    const int d = tad_size(n_species);
    return DartModel(n_species, shells, mf.f64("tad_mean", {d}), mf.f64("tad_scale", {d}), mf.f64("e0", {n_species}),
                     meta.at("e_scale").as_double(), std::move(nets));
  } catch (const std::invalid_argument& e) {
    throw ModelFileError(path + ": inconsistent dart model: " + e.what());
  } catch (const std::out_of_range& e) {
    throw ModelFileError(path + ": dart model metadata is incomplete: " + e.what());
  }
}

}  // namespace clusterforce
