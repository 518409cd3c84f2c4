// A structure as the whole-structure entry points take it, and the neighbours of every centre
// (CSR form) that the per-centre models and the structure driver (structure.hpp) share.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "neighbors.hpp"

namespace clusterforce {

/// A structure: positions (n x 3, Angstrom), species indices (n), and a cell (3 x 3, rows =
/// lattice vectors) with periodic flags; cell may be null for a free cluster.
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

}  // namespace clusterforce
