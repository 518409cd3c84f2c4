// Bindings for cpp/include/clusterforce/neighbors.hpp.
#include "clusterforce/neighbors.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>

#include "bindings.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace {

using Array = clusterforce::bindings::DoubleArray;
using clusterforce::bindings::shape_of;

template <class T>
py::array_t<T> to_numpy(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  py::array_t<T> out(shape);
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

py::tuple py_neighbor_list(const Array& positions, double cutoff, const std::optional<Array>& cell,
                           const std::array<bool, 3>& pbc) {
  if (positions.ndim() != 2 || positions.shape(1) != 3) {
    throw py::value_error("positions must have shape (n_atoms, 3), got " + shape_of(positions));
  }
  if (cell && (cell->ndim() != 2 || cell->shape(0) != 3 || cell->shape(1) != 3)) {
    throw py::value_error("cell must have shape (3, 3) with the lattice vectors as rows, got " + shape_of(*cell));
  }
  const double* c = cell ? cell->data() : nullptr;
  clusterforce::NeighborList list;
  {
    py::gil_scoped_release release;
    list = clusterforce::neighbor_list(positions.data(), static_cast<std::size_t>(positions.shape(0)), cutoff, c, pbc);
  }
  const auto pairs = static_cast<py::ssize_t>(list.size());
  return py::make_tuple(to_numpy(list.i, {pairs}), to_numpy(list.j, {pairs}), to_numpy(list.D, {pairs, 3}),
                        to_numpy(list.d, {pairs}), to_numpy(list.S, {pairs, 3}));
}

}  // namespace

void clusterforce::bindings::bind_neighbors(py::module_& m) {
  m.def("neighbor_list", &py_neighbor_list, py::arg("positions"), py::arg("cutoff"), py::arg("cell"), py::arg("pbc"),
        "Neighbour pairs within cutoff as (i, j, D, d, S), sorted by i, j, S. See "
        "clusterforce.descriptors.neighbors.");
}
