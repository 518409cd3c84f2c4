#include "compute_clusterforce_uncertainty_atom.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "pair_clusterforce.h"
#include "update.h"

using namespace LAMMPS_NS;

ComputeClusterforceUncertaintyAtom::ComputeClusterforceUncertaintyAtom(LAMMPS* lmp, int narg, char** arg)
    : Compute(lmp, narg, arg) {
  if (narg != 3)
    error->all(
        FLERR,
        "compute clusterforce/uncertainty/atom takes no arguments: compute ID group clusterforce/uncertainty/atom");
  peratom_flag = 1;
  size_peratom_cols = 0;
}

ComputeClusterforceUncertaintyAtom::~ComputeClusterforceUncertaintyAtom() {
  memory->destroy(values_);
}

void ComputeClusterforceUncertaintyAtom::init() {
  pair_ = dynamic_cast<PairClusterforce*>(force->pair_match("^clusterforce", 0));
  if (pair_ == nullptr) error->all(FLERR, "compute clusterforce/uncertainty/atom requires pair_style clusterforce");
  if (!pair_->has_uncertainty())
    error->all(FLERR,
               "compute clusterforce/uncertainty/atom: model {} (kind {}) provides no per-atom uncertainty "
               "(dml models do; gap models only when trained with variance=True; sann models only when the file "
               "carries uncertainty/last_layer_covariance, i.e. trained since sann uncertainties exist)",
               pair_->model_path(), pair_->model_kind());
}

void ComputeClusterforceUncertaintyAtom::compute_peratom() {
  invoked_peratom = update->ntimestep;
  if (atom->nmax > nmax_) {
    memory->destroy(values_);
    nmax_ = atom->nmax;
    memory->create(values_, nmax_, "clusterforce/uncertainty/atom:values");
    vector_atom = values_;
  }
  pair_->uncertainty(values_);
  const int* mask = atom->mask;
  for (int i = 0; i < atom->nlocal; i++)
    if (!(mask[i] & groupbit)) values_[i] = 0.0;
}

double ComputeClusterforceUncertaintyAtom::memory_usage() {
  return static_cast<double>(nmax_) * sizeof(double);
}
