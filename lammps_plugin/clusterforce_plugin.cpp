// Entry point LAMMPS calls after dlopen(): registers pair_style clusterforce.
#include "compute_clusterforce_uncertainty_atom.h"
#include "lammpsplugin_abi.h"
#include "pair_clusterforce.h"

#ifndef CLUSTERFORCE_LAMMPS_VERSION
#error "CLUSTERFORCE_LAMMPS_VERSION (the host's version string, e.g. \"22 Jul 2025\") must be defined by the build"
#endif
#ifndef CLUSTERFORCE_VERSION
#define CLUSTERFORCE_VERSION "unknown"
#endif

namespace {

void* create_pair(void* lmp) {
  return new LAMMPS_NS::PairClusterforce(static_cast<LAMMPS_NS::LAMMPS*>(lmp));
}

void* create_uncertainty(void* lmp, int narg, char** arg) {
  return new LAMMPS_NS::ComputeClusterforceUncertaintyAtom(static_cast<LAMMPS_NS::LAMMPS*>(lmp), narg, arg);
}

}  // namespace

extern "C" void lammpsplugin_init(void* lmp, void* handle, void* regfunc) {
  clusterforce_lmp_plugin_t plugin;
  plugin.version = CLUSTERFORCE_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "clusterforce";
  plugin.info = "clusterforce machine-learned force fields (gap, dml) v" CLUSTERFORCE_VERSION;
  plugin.author = "clusterforce developers";
  plugin.creator.v1 = &create_pair;
  plugin.handle = handle;
  reinterpret_cast<clusterforce_lmp_regfunc>(regfunc)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "clusterforce/uncertainty/atom";
  plugin.info = "per-atom uncertainty of pair_style clusterforce v" CLUSTERFORCE_VERSION;
  plugin.creator.v2 = &create_uncertainty;
  reinterpret_cast<clusterforce_lmp_regfunc>(regfunc)(&plugin, lmp);
}
