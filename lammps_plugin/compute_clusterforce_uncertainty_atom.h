// compute ID group clusterforce/uncertainty/atom
//
// Per-atom uncertainty at the last force evaluation of pair_style clusterforce: for dml
// models the OAMLM direction spread (dimensionless, 0 = the aligned references agree,
// 1 = they cancel); for gap models saved with variances the predictive standard deviation of
// the atom's local energy (eV). Atoms outside the group, and atoms of NULL types, get 0.
#pragma once

#include "compute.h"

namespace LAMMPS_NS {

class ComputeClusterforceUncertaintyAtom : public Compute {
 public:
  ComputeClusterforceUncertaintyAtom(class LAMMPS*, int narg, char** arg);
  ~ComputeClusterforceUncertaintyAtom() override;
  void init() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  class PairClusterforce* pair_ = nullptr;
  int nmax_ = 0;
  double* values_ = nullptr;
};

}  // namespace LAMMPS_NS
