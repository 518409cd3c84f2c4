// Declarations of the per-topic binding functions; each lives in cpp/bindings/<topic>.cpp
// and only wraps code from cpp/include/clusterforce (no algorithm lives in the bindings).
#pragma once
#include <pybind11/pybind11.h>

namespace clusterforce::bindings {
void bind_modelfile(pybind11::module_& m);
void bind_nbody(pybind11::module_& m);
void bind_gap(pybind11::module_& m);
void bind_soap(pybind11::module_& m);
void bind_environments(pybind11::module_& m);
void bind_align(pybind11::module_& m);
void bind_oamlm(pybind11::module_& m);
void bind_dml(pybind11::module_& m);
void bind_distances(pybind11::module_& m);
void bind_neighbors(pybind11::module_& m);
void bind_dart(pybind11::module_& m);
void bind_sann(pybind11::module_& m);
void bind_predictor(pybind11::module_& m);
}  // namespace clusterforce::bindings
