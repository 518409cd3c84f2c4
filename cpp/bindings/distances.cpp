// Bindings for cpp/include/clusterforce/distances.hpp.
#include "clusterforce/distances.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace {

using Array = clusterforce::bindings::DoubleArray;
using clusterforce::bindings::shape_of;

void require_matrix(const Array& a, const char* name) {
  if (a.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be a 2-d array (n_samples, n_features), got shape " + shape_of(a));
  }
}

const double* norms_pointer(const std::optional<Array>& norms, py::ssize_t rows, const char* name) {
  if (!norms) return nullptr;
  if (norms->ndim() != 1 || norms->shape(0) != rows) {
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ",), got " +
                          shape_of(*norms));
  }
  return norms->data();
}

py::array_t<double> py_euclidean_distances(const Array& x, const Array& y, bool exact, bool squared,
                                           const std::optional<Array>& x_sqnorms, const std::optional<Array>& y_sqnorms,
                                           const std::string& isa) {
  require_matrix(x, "X");
  require_matrix(y, "Y");
  if (x.shape(1) != y.shape(1)) {
    throw py::value_error("X and Y must have the same number of features, got X " + shape_of(x) + " and Y " +
                          shape_of(y));
  }
  const double* xn = norms_pointer(x_sqnorms, x.shape(0), "X_sqnorms");
  const double* yn = norms_pointer(y_sqnorms, y.shape(0), "Y_sqnorms");
  clusterforce::DistanceOptions options;
  options.mode = exact ? clusterforce::DistanceMode::exact : clusterforce::DistanceMode::gram;
  options.squared = squared;
  options.isa = clusterforce::parse_isa(isa);
  const auto n = static_cast<std::size_t>(x.shape(0));
  const auto k = static_cast<std::size_t>(y.shape(0));
  const auto f = static_cast<std::size_t>(x.shape(1));
  py::array_t<double> out({x.shape(0), y.shape(0)});
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    clusterforce::euclidean_distances(x.data(), n, y.data(), k, f, o, options, xn, yn);
  }
  return out;
}

py::array_t<double> py_squared_row_norms(const Array& x) {
  require_matrix(x, "X");
  py::array_t<double> out(x.shape(0));
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    clusterforce::squared_row_norms(x.data(), static_cast<std::size_t>(x.shape(0)),
                                    static_cast<std::size_t>(x.shape(1)), o);
  }
  return out;
}

std::string distance_isa(const std::string& isa) {
  return clusterforce::isa_name(clusterforce::resolve_isa(clusterforce::parse_isa(isa)));
}

}  // namespace

void clusterforce::bindings::bind_distances(py::module_& m) {
  m.def("euclidean_distances", &py_euclidean_distances, py::arg("X"), py::arg("Y"), py::kw_only(),
        py::arg("exact") = false, py::arg("squared") = false, py::arg("X_sqnorms") = py::none(),
        py::arg("Y_sqnorms") = py::none(), py::arg("isa") = "auto",
        "Distance matrix (n, k) between rows of X (n, f) and Y (k, f). No finiteness checks: see "
        "clusterforce.descriptors.distances.");
  m.def("squared_row_norms", &py_squared_row_norms, py::arg("X"), "Squared Euclidean norm of every row of X.");
  m.def("resolve_isa", &distance_isa, py::arg("isa") = "auto",
        "Instruction set the kernels use for the requested one ('auto' = best this CPU supports).");
}
