// The interface of one additive GAP term (gap.hpp). A term sees one centre at a time: its species,
// its neighbours' relative positions and species (LAMMPS full-list style).
#pragma once

#include <cstdint>

#include "geometry.hpp"

namespace clusterforce {

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
