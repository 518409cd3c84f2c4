// pair_style clusterforce MODEL.cfm ; pair_coeff * * El1 El2 ... (element per type, NULL allowed)
//
// LAMMPS glue only: every number comes from the clusterforce C++ core (cpp/include), the same
// code the Python package and its ASE calculator run: the model file's Predictor (models.hpp) and
// the one structure driver (structure.hpp), given this style's full neighbour lists. Energy kinds
// (gap, sann) give energies, per-atom energies, forces and virial; force-only kinds (dml) predict
// forces directly (energy reported as zero).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "clusterforce/structure.hpp"
#include "pair.h"

namespace clusterforce {
class Predictor;
class LocalPredictor;
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
  /// Per local atom at the positions of the last compute(), 0 for NULL types: the expected size
  /// of the atom's force error (eV/Angstrom; dml from its OAMLM spread, gap and sann from the
  /// whole structure's force variances).
  void uncertainty(double* out);
  const std::string& model_path() const { return model_path_; }
  const std::string& model_kind() const { return kind_; }

 private:
  void allocate();
  void read_model(const std::string& path);
  // The driver's centres: every local atom of a model type, its neighbours inside the cutoff.
  void gather_centres();
  void tally(const clusterforce::CentreResults& r);
  void warn_extrapolating(const clusterforce::CentreResults& r);
  void warn_composition();
  void stop_if_any_rank_failed(std::string failure);
  void structure_force_uncertainty(double* out);

  std::string model_path_, kind_, model_version_;
  std::vector<std::string> model_elements_;  // species order of the model
  std::vector<int> species_of_type_;         // LAMMPS type -> model species, -1 for NULL
  double cutoff_ = 0.0;
  std::shared_ptr<const clusterforce::Predictor> predictor_;
  const clusterforce::LocalPredictor* local_ = nullptr;  // predictor_'s per-centre form
  bool warned_extrapolating_ = false;                    // warn once per run
  bool checked_composition_ = false;                     // composition checked once per run

  // Per-step buffers (vectors keep their capacity).
  clusterforce::Centres centres_;
  std::vector<double> fghost_, uncertainty_;
};

}  // namespace LAMMPS_NS
