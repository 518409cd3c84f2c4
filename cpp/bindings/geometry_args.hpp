// Positions, species and an optional cell/pbc from numpy, checked and turned into a
// clusterforce::Geometry: shared by the bindings of every kind that takes whole structures.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <optional>
#include <string>

#include "clusterforce/geometry.hpp"
#include "numpy_helpers.hpp"

namespace clusterforce::bindings {

namespace py = pybind11;

using PositionsArray = DoubleArray;
using SpeciesArray = py::array_t<int, py::array::c_style | py::array::forcecast>;

inline void check_structure(const PositionsArray& pos, const SpeciesArray& species) {
  if (pos.ndim() != 2 || pos.shape(1) != 3)
    throw py::value_error("positions must have shape (n, 3), got " + shape_of(pos));
  if (species.ndim() != 1 || species.shape(0) != pos.shape(0)) {
    throw py::value_error("species must have shape (" + std::to_string(pos.shape(0)) + ",) for " +
                          std::to_string(pos.shape(0)) + " atoms, got " + shape_of(species));
  }
}

// Keeps the numpy buffers alive while the Geometry points into them.
struct GeometryArgs {
  PositionsArray positions;
  SpeciesArray species;
  PositionsArray cell;
  Geometry g;
};

inline GeometryArgs geometry(const PositionsArray& pos, const SpeciesArray& species,
                             const std::optional<PositionsArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
  check_structure(pos, species);
  if (cell.has_value() != pbc.has_value()) throw py::value_error("give both cell and pbc, or neither");
  GeometryArgs a{pos, species, PositionsArray(), Geometry()};
  a.g.positions = a.positions.data();
  a.g.species = a.species.data();
  a.g.n = static_cast<int>(pos.shape(0));
  if (cell) {
    if (cell->ndim() != 2 || cell->shape(0) != 3 || cell->shape(1) != 3)
      throw py::value_error("cell must have shape (3, 3), got " + shape_of(*cell));
    a.cell = *cell;
    a.g.cell = a.cell.data();
    a.g.pbc = *pbc;
  }
  return a;
}

// As geometry(), but pbc alone may be given (None: a free cluster; a cell is needed only when an axis
// is periodic) and a cell with pbc all False is ignored.
inline GeometryArgs geometry_or_cluster(const PositionsArray& pos, const SpeciesArray& species,
                                        const std::optional<PositionsArray>& cell,
                                        const std::optional<std::array<bool, 3>>& pbc) {
  const bool periodic = pbc && ((*pbc)[0] || (*pbc)[1] || (*pbc)[2]);
  if (periodic && !cell) throw py::value_error("pbc has a periodic axis but no cell was given");
  if (!periodic) return geometry(pos, species, std::nullopt, std::nullopt);
  return geometry(pos, species, cell, pbc);
}

}  // namespace clusterforce::bindings
