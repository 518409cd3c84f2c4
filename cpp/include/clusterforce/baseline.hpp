// Repulsive pair baseline: keeps atoms apart where the training data never went.
//
// For each element pair (a, b), with r_s(a, b) the shortest distance of that pair in the
// training data, the pair energy is
//   phi(r) = A [exp(x) - 1 - x],  x = (r_s - r) / rho,  for r < r_s,  and 0 beyond,
// zero with zero slope at r_s (so it changes nothing inside the data and forces stay continuous)
// and rising exponentially below it. It is added to the prediction of every model kind in the
// C++ core (the structure driver for the energy kinds, DmlPredictor::centre for dml), so Python,
// ASE and LAMMPS agree; a model file stores r_s as "baseline/r_s" (n_species x n_species,
// Angstrom) and A (eV), rho (Angstrom) in its metadata (docs/model-file.md).
//
// The same file records the shortest distance of every element pair in the training data,
// "training/r_min" (PairLimits below): an atom in a shorter pair is flagged as extrapolating.
#pragma once

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "modelfile.hpp"

namespace clusterforce {

class PairWall {
 public:
  PairWall() = default;
  PairWall(int n_species, std::vector<double> r_s, double A, double rho)
      : n_species_(n_species), r_s_(std::move(r_s)), A_(A), rho_(rho) {
    if (static_cast<int>(r_s_.size()) != n_species * n_species)
      throw std::invalid_argument("baseline r_s has " + std::to_string(r_s_.size()) + " entries, expected " +
                                  std::to_string(n_species * n_species));
    if (!(A > 0.0) || !(rho > 0.0)) throw std::invalid_argument("baseline A (eV) and rho (Angstrom) must be positive");
    for (double r : r_s_)
      if (!(r >= 0.0) || !std::isfinite(r)) throw std::invalid_argument("baseline r_s must be finite and >= 0");
  }

  bool active() const { return n_species_ > 0; }
  /// Largest distance (Angstrom) at which the wall acts.
  double cutoff() const { return active() ? *std::max_element(r_s_.begin(), r_s_.end()) : 0.0; }

  /// Pair energy phi (eV) and dphi/dr (eV/Angstrom) of species a, b at distance r.
  void pair(int a, int b, double r, double& phi, double& dphi) const {
    const double rs = r_s_[static_cast<std::size_t>(a) * n_species_ + b];
    phi = dphi = 0.0;
    if (r >= rs) return;
    const double x = (rs - r) / rho_;
    const double ex = std::exp(x);
    phi = A_ * (ex - 1.0 - x);
    dphi = -A_ / rho_ * (ex - 1.0);
  }

  /// Half of the pair energies of a centre of species cs (eV) from its neighbours' relative
  /// positions rel (n x 3) and species; grad (n x 3) += d energy / d rel_j. Summed over every
  /// centre of a structure (full neighbour lists) this is the whole baseline energy.
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const {
    double e = 0.0;
    for (int j = 0; j < n; ++j) {
      const double* d = rel + 3 * j;
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      double phi, dphi;
      pair(cs, sp[j], r, phi, dphi);
      if (phi == 0.0 && dphi == 0.0) continue;
      e += 0.5 * phi;
      if (grad && r > 0.0)  // two atoms on one spot: the energy is finite, the direction is not
        for (int x = 0; x < 3; ++x) grad[3 * j + x] += 0.5 * dphi * d[x] / r;
    }
    return e;
  }

  /// Baseline force on a centre (eV/Angstrom, added to force[3]): -d/dr_i of its pair energies.
  void centre_force(int cs, const double* rel, const int* sp, int n, double* force) const {
    for (int j = 0; j < n; ++j) {
      const double* d = rel + 3 * j;
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      double phi, dphi;
      pair(cs, sp[j], r, phi, dphi);
      if (dphi == 0.0 || r == 0.0) continue;
      for (int x = 0; x < 3; ++x) force[x] += dphi * d[x] / r;
    }
  }

 private:
  int n_species_ = 0;
  std::vector<double> r_s_;
  double A_ = 1.0, rho_ = 0.2;
};

/// The baseline of a model file, or an inactive one when the file has none.
inline PairWall read_pair_wall(const ModelFile& mf, int n_species) {
  if (!mf.has("baseline/r_s")) return {};
  const Json& meta = mf.metadata();
  if (!meta.contains("baseline") || !meta.at("baseline").contains("A") || !meta.at("baseline").contains("rho"))
    throw ModelFileError(mf.path() + ": field 'baseline/r_s' without metadata baseline.A and baseline.rho");
  const Json& b = meta.at("baseline");
  try {
    return PairWall(n_species, mf.f64("baseline/r_s", {n_species, n_species}), b.at("A").as_double(),
                    b.at("rho").as_double());
  } catch (const std::invalid_argument& e) {
    throw ModelFileError(mf.path() + ": " + e.what());
  }
}

/// Fraction below the shortest training distance at which baseline.py puts r_s (WALL_MARGIN).
constexpr double kWallMargin = 0.08;

/// Per element pair, the distance (Angstrom) below which a pair is outside the training data:
/// the shortest distance of that pair in the training frames. A NaN or non-positive entry (the
/// pair never came within the search radius in the data) flags nothing; the wall, where the
/// model has one, still acts there at its covalent-radius default.
class PairLimits {
 public:
  PairLimits() = default;
  PairLimits(int n_species, std::vector<double> r_min) : n_species_(n_species), r_min_(std::move(r_min)) {
    if (static_cast<int>(r_min_.size()) != n_species * n_species)
      throw std::invalid_argument("training r_min has " + std::to_string(r_min_.size()) + " entries, expected " +
                                  std::to_string(n_species * n_species));
    for (double& r : r_min_)
      if (!(r > 0.0) || !std::isfinite(r)) r = 0.0;
  }

  bool active() const { return n_species_ > 0; }
  /// Limit (Angstrom) of species a, b; 0 = no limit.
  double limit(int a, int b) const { return active() ? r_min_[static_cast<std::size_t>(a) * n_species_ + b] : 0.0; }
  /// Largest limit (Angstrom): pairs farther apart are never flagged.
  double reach() const { return active() ? *std::max_element(r_min_.begin(), r_min_.end()) : 0.0; }

 private:
  int n_species_ = 0;
  std::vector<double> r_min_;
};

/// The training-distance limits of a model file: "training/r_min" (n_species x n_species,
/// Angstrom); for files written before it, baseline/r_s / (1 - kWallMargin) (the shortest
/// distances the wall was put below); none (nothing flagged) without either.
inline PairLimits read_pair_limits(const ModelFile& mf, int n_species) {
  try {
    if (mf.has("training/r_min")) return PairLimits(n_species, mf.f64("training/r_min", {n_species, n_species}));
    if (!mf.has("baseline/r_s")) return {};
    std::vector<double> r = mf.f64("baseline/r_s", {n_species, n_species});
    for (double& v : r) v /= 1.0 - kWallMargin;
    return PairLimits(n_species, std::move(r));
  } catch (const std::invalid_argument& e) {
    throw ModelFileError(mf.path() + ": " + e.what());
  }
}

}  // namespace clusterforce
