// The one per-centre contract every model kind with a cutoff implements (gap, sann, dml; models.hpp
// holds the adapters). The structure driver (structure.hpp) runs it over the centres of a structure
// for the Python bindings and over LAMMPS neighbour lists for the pair style.
//
// A centre is its species cs, its neighbours' relative positions rel (n x 3, Angstrom, r_j - r_i
// with periodic images) and their species sp. Energy kinds return the centre's local energy (eV)
// and add d energy / d rel_j to grad (n x 3, eV/Angstrom), so the force on neighbour j is -grad_j
// and on the centre +sum_j grad_j. Force-only kinds give the centre's force directly.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "geometry.hpp"

namespace clusterforce {

/// Scratch memory of one thread; a model's own scratch type derives from it.
struct LocalScratch {
  virtual ~LocalScratch() = default;
};

/// Direct force (eV/Angstrom) on a centre of a force-only kind and its expected error.
struct CentreForce {
  double force[3] = {0.0, 0.0, 0.0};
  double uncertainty = 0.0;  // eV/Angstrom
};

class LocalModel {
 public:
  virtual ~LocalModel() = default;

  virtual int n_species() const = 0;
  /// Neighbours farther than this (Angstrom) change nothing.
  virtual double cutoff() const = 0;
  /// Energy kinds (gap, sann) implement centre_energy; force-only kinds (dml) centre_force.
  virtual bool has_energy() const = 0;
  /// Whether centre_force's uncertainty is meaningful (dml) or force_variances exists (gap, sann).
  virtual bool has_uncertainty() const = 0;

  /// Why an energy kind's forces are not -d energy / dx (empty: they are); sann's come from a
  /// separately fitted dummy energy.
  virtual std::string nonconservative_reason() const { return {}; }

  /// Scratch for one thread (null when the model needs none); the driver makes one per thread.
  virtual std::unique_ptr<LocalScratch> make_scratch() const { return nullptr; }

  /// Local energy (eV) of a centre; grad (n x 3) += d energy / d rel_j.
  virtual double centre_energy(int /*cs*/, const double* /*rel*/, const int* /*sp*/, int /*n*/, double* /*grad*/,
                               LocalScratch* /*scratch*/) const {
    throw std::logic_error("this model kind defines no energy");
  }

  /// Direct force and uncertainty of a centre; diagnostics (diagnostic_names().size() values,
  /// e.g. dml's |F| and OAMLM spread) written to diag when it is not null.
  virtual CentreForce centre_force(int /*cs*/, const double* /*rel*/, const int* /*sp*/, int /*n*/,
                                   LocalScratch* /*scratch*/, double* /*diag*/) const {
    throw std::logic_error("this model kind predicts no direct forces");
  }
  virtual std::vector<std::string> diagnostic_names() const { return {}; }

  /// Whether centre_forces (the block hook) exists: force-only kinds whose centres share work
  /// (dml reads each class's reference descriptors once per block of centres, not per centre).
  virtual bool has_centre_block() const { return false; }
  /// centre_force for the centres [0, count): centre i has species cs[i] and neighbours
  /// offsets[i] .. offsets[i + 1] of rel (x 3) and sp. out[i] and diag (count x
  /// diagnostic_names().size()) equal centre_force's for each centre. Called outside a parallel
  /// region: the model runs its own loops on the OpenMP threads.
  virtual void centre_forces(const int* /*cs*/, const int64_t* /*offsets*/, const double* /*rel*/, const int* /*sp*/,
                             int /*count*/, CentreForce* /*out*/, double* /*diag*/) const {
    throw std::logic_error("this model kind has no block hook");
  }

  /// Whole-structure variance of every force component (3n, eV^2/Angstrom^2): the force
  /// uncertainty of gap and sann needs the covariance between centres, so it is not per-centre.
  virtual bool has_force_variances() const { return false; }
  virtual std::vector<double> force_variances(const Geometry& /*g*/) const {
    throw std::invalid_argument("this model carries no force variances");
  }
  /// Variances of the local energies (n, eV^2) and of the total energy (eV^2), when defined.
  virtual bool has_energy_variances() const { return false; }
  virtual void energy_variances(const Geometry& /*g*/, std::vector<double>& /*atoms*/, double& /*total*/) const {
    throw std::invalid_argument("this model carries no energy variances");
  }
};

}  // namespace clusterforce
