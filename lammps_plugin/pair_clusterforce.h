// pair_style clusterforce MODEL.cfm ; pair_coeff * * El1 El2 ... (element per type, NULL allowed)
//
// LAMMPS glue only: every number comes from the clusterforce C++ core (cpp/include), the same
// code the Python package and its ASE calculator run. Kind "gap" gives energies, per-atom
// energies, forces and virial; kind "dml" predicts forces directly (energy reported as zero).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace clusterforce {
class GapModel;
class DmlPredictor;
class SannModel;
}  // namespace clusterforce

namespace LAMMPS_NS {

class PairClusterforce : public Pair {
 public:
  explicit PairClusterforce(class LAMMPS*);
  ~PairClusterforce() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char** arg) override;
  void coeff(int narg, char** arg) override;
  void init_style() override;
  double init_one(int i, int j) override;
  int pack_reverse_comm(int n, int first, double* buf) override;
  void unpack_reverse_comm(int n, int* list, double* buf) override;
  double memory_usage() override;

  bool has_uncertainty() const;
  /// Per local atom at the positions of the last compute(), 0 for NULL types: dml, the OAMLM
  /// spread (dimensionless); gap, the predictive standard deviation of the local energy (eV).
  void uncertainty(double* out);
  const std::string& model_path() const { return model_path_; }
  const std::string& model_kind() const { return kind_; }

 private:
  void allocate();
  void read_model(const std::string& path);
  // Neighbours of local atom i inside the model cutoff: relative positions, species, indices.
  int gather(int i, int* jlist, int jnum);
  void compute_centres(int eflag, double** fout);
  void compute_dml();
  void structure_force_uncertainty(double* out);

  std::string model_path_, kind_, model_version_;
  std::vector<std::string> model_elements_;  // species order of the model
  std::vector<int> species_of_type_;         // LAMMPS type -> model species, -1 for NULL
  double cutoff_ = 0.0;
  std::unique_ptr<clusterforce::GapModel> gap_;
  std::unique_ptr<clusterforce::DmlPredictor> dml_;
  std::unique_ptr<clusterforce::SannModel> sann_;

  // Grow-only per-step buffers.
  std::vector<double> rel_, grad_, fghost_, uncertainty_;
  std::vector<double*> fghost_rows_;
  std::vector<int> species_, index_;
};

}  // namespace LAMMPS_NS
