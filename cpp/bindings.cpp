// pybind11 module clusterforce._kernels: wrappers only, the algorithms are in cpp/include.
#include <pybind11/pybind11.h>

#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bindings/bindings.hpp"

namespace py = pybind11;

#ifndef CLUSTERFORCE_VERSION
#define CLUSTERFORCE_VERSION "unknown"
#endif

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = CLUSTERFORCE_VERSION;
#if defined(__clang__)
  info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = std::string("gcc ") + __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  info["cxx_standard"] = static_cast<long>(__cplusplus);
#ifdef _OPENMP
  info["openmp"] = true;
  info["openmp_version"] = static_cast<long>(_OPENMP);
  info["threads"] = omp_get_max_threads();
#else
  info["openmp"] = false;
  info["openmp_version"] = 0L;
  info["threads"] = 1;
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "Compiled kernels of clusterforce (thin wrappers around cpp/include/clusterforce).";
  m.def("build_info", &build_info,
        "Version, compiler, C++ standard, OpenMP support and thread count of the compiled core.");
  // One line per topic: clusterforce::bindings::bind_<topic>(m);
  clusterforce::bindings::bind_modelfile(m);
  clusterforce::bindings::bind_nbody(m);
  clusterforce::bindings::bind_gap(m);
  clusterforce::bindings::bind_soap(m);
  clusterforce::bindings::bind_environments(m);
  clusterforce::bindings::bind_align(m);
  clusterforce::bindings::bind_oamlm(m);
  clusterforce::bindings::bind_dml(m);
  clusterforce::bindings::bind_distances(m);
  clusterforce::bindings::bind_neighbors(m);
  clusterforce::bindings::bind_dart(m);
  clusterforce::bindings::bind_predictor(m);
  clusterforce::bindings::bind_sann(m);
}
