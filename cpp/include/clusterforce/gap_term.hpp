// The interface of one additive GAP term, and the structure / neighbour containers that the
// whole-structure entry points share (gap.hpp). A term sees one centre at a time: its species,
// its neighbours' relative positions and species (LAMMPS full-list style).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "neighbors.hpp"

namespace clusterforce {

/// A structure as the whole-structure entry points take it: positions (n x 3, Angstrom),
/// species indices (n), and a cell (3 x 3, rows = lattice vectors) with periodic flags;
/// cell may be null for a free cluster.
struct Geometry {
  const double* positions = nullptr;
  const int* species = nullptr;
  int n = 0;
  const double* cell = nullptr;
  std::array<bool, 3> pbc = {false, false, false};
};

/// Neighbours of every centre in CSR form: centre i sees index[offsets[i] .. offsets[i+1])
/// (atom indices, periodic images included) at relative positions rel (r_j + shift - r_i)
/// with species.
struct CentreNeighbors {
  std::vector<int64_t> offsets;
  std::vector<int64_t> index;
  std::vector<double> rel;
  std::vector<int> species;
  int count(int i) const { return static_cast<int>(offsets[i + 1] - offsets[i]); }
};

inline CentreNeighbors centre_neighbors(const Geometry& g, double cutoff) {
  const NeighborList pairs = neighbor_list(g.positions, static_cast<std::size_t>(g.n), cutoff, g.cell, g.pbc);
  CentreNeighbors out;
  out.offsets.assign(static_cast<std::size_t>(g.n) + 1, 0);
  for (std::size_t p = 0; p < pairs.size(); ++p) ++out.offsets[pairs.i[p] + 1];
  for (int i = 0; i < g.n; ++i) out.offsets[i + 1] += out.offsets[i];
  out.index = pairs.j;  // pairs come sorted by centre
  out.rel = pairs.D;
  out.species.resize(pairs.size());
  for (std::size_t p = 0; p < pairs.size(); ++p) out.species[p] = g.species[pairs.j[p]];
  return out;
}

/// One additive term of the GAP energy, seen from one centre at a time.
class GapTerm {
 public:
  virtual ~GapTerm() = default;
  virtual double r_cut() const = 0;
  virtual int n_sparse() const = 0;
  /// Local energy of the centre (eV); grad (n x 3) += d energy / d rel_j.
  virtual double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const = 0;
  /// row[m] += d energy / d alpha_m; grad_rows[(j*3 + x)*M + m] += its gradient (skipped if null).
  virtual void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const = 0;
  /// Prior covariance of the local energy of one centre with itself (eV^2).
  virtual double centre_self_covariance(int cs, const double* rel, const int* sp, int n) const = 0;
  /// Prior variance of the summed local energies of a whole structure (eV^2).
  virtual double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const = 0;
  /// Prior variance of every force component of a structure (eV^2 / Angstrom^2): out[3k + x] +=
  /// sum_ab d^2 cov(e_a, e_b') / dr_kx dr'_kx over this term's local energies e_a, e_b.
  virtual void structure_force_prior(const CentreNeighbors& nl, const int* species, int n, double* out) const = 0;
};

}  // namespace clusterforce
