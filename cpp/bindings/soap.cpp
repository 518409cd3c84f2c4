// Python bindings of clusterforce/soap.hpp: shape checks and array plumbing only.
#include "clusterforce/soap.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace {

using clusterforce::SoapGTO;
using clusterforce::SoapStructure;
using clusterforce::bindings::DoubleArray;
using clusterforce::bindings::shape_of;
using IntArray = py::array_t<int, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
using BoolArray = py::array_t<bool, py::array::c_style | py::array::forcecast>;

// Checks the structure arrays and builds the neighbour lists (GIL held: it may raise).
SoapStructure make_structure(const SoapGTO& soap, const DoubleArray& positions, const IntArray& numbers,
                             const Int64Array& centers, const py::object& cell, const py::object& pbc,
                             DoubleArray& cell_arr, BoolArray& pbc_arr) {
  if (positions.ndim() != 2 || positions.shape(1) != 3)
    throw py::value_error("positions must have shape (n_atoms, 3), got " + shape_of(positions));
  const auto n_atoms = positions.shape(0);
  if (numbers.ndim() != 1 || numbers.shape(0) != n_atoms)
    throw py::value_error("numbers must have shape (" + std::to_string(n_atoms) + ",) like positions, got " +
                          shape_of(numbers));
  if (centers.ndim() != 1) throw py::value_error("centers must be one-dimensional, got " + shape_of(centers));
  const double* cell_ptr = nullptr;
  const bool* pbc_ptr = nullptr;
  if (!cell.is_none() || !pbc.is_none()) {
    if (cell.is_none() || pbc.is_none()) throw py::value_error("give both cell and pbc, or neither");
    cell_arr = cell.cast<DoubleArray>();
    pbc_arr = pbc.cast<BoolArray>();
    if (cell_arr.ndim() != 2 || cell_arr.shape(0) != 3 || cell_arr.shape(1) != 3)
      throw py::value_error("cell must have shape (3, 3), got " + shape_of(cell_arr));
    if (pbc_arr.ndim() != 1 || pbc_arr.shape(0) != 3)
      throw py::value_error("pbc must have shape (3,), got " + shape_of(pbc_arr));
    cell_ptr = cell_arr.data();
    pbc_ptr = pbc_arr.data();
  }
  return SoapStructure(soap, positions.data(), static_cast<std::size_t>(n_atoms), numbers.data(), centers.data(),
                       static_cast<std::size_t>(centers.shape(0)), cell_ptr, pbc_ptr);
}

py::array_t<double> structure_values(const SoapGTO& soap, const DoubleArray& positions, const IntArray& numbers,
                                     const Int64Array& centers, const py::object& cell, const py::object& pbc) {
  DoubleArray cell_arr;
  BoolArray pbc_arr;
  SoapStructure structure = make_structure(soap, positions, numbers, centers, cell, pbc, cell_arr, pbc_arr);
  const auto n_centers = static_cast<py::ssize_t>(structure.n_centers());
  const auto F = static_cast<py::ssize_t>(soap.n_features());
  py::array_t<double> values({n_centers, F});
  double* v = values.mutable_data();
  {
    py::gil_scoped_release release;
    structure.compute(v, nullptr);
  }
  return values;
}

py::tuple structure_gradients(const SoapGTO& soap, const DoubleArray& positions, const IntArray& numbers,
                              const Int64Array& centers, const py::object& cell, const py::object& pbc) {
  DoubleArray cell_arr;
  BoolArray pbc_arr;
  SoapStructure structure = make_structure(soap, positions, numbers, centers, cell, pbc, cell_arr, pbc_arr);
  const auto n_centers = static_cast<py::ssize_t>(structure.n_centers());
  const auto n_pairs = static_cast<py::ssize_t>(structure.n_pairs());
  const auto F = static_cast<py::ssize_t>(soap.n_features());
  py::array_t<double> values({n_centers, F});
  py::array_t<double> gradients({n_pairs, static_cast<py::ssize_t>(3), F});
  py::array_t<std::int64_t> pair_center(n_pairs), pair_atom(n_pairs);
  structure.pairs(pair_center.mutable_data(), pair_atom.mutable_data());
  double* v = values.mutable_data();
  double* g = gradients.mutable_data();
  {
    py::gil_scoped_release release;
    structure.compute(v, g);
  }
  return py::make_tuple(values, gradients, pair_center, pair_atom);
}

py::tuple structure_contract(const SoapGTO& soap, const DoubleArray& positions, const IntArray& numbers,
                             const Int64Array& centers, const DoubleArray& weights, const py::object& cell,
                             const py::object& pbc) {
  DoubleArray cell_arr;
  BoolArray pbc_arr;
  SoapStructure structure = make_structure(soap, positions, numbers, centers, cell, pbc, cell_arr, pbc_arr);
  const auto n_centers = static_cast<py::ssize_t>(structure.n_centers());
  const auto n_pairs = static_cast<py::ssize_t>(structure.n_pairs());
  const auto F = static_cast<py::ssize_t>(soap.n_features());
  if (weights.ndim() != 2 || weights.shape(0) != n_centers || weights.shape(1) != F)
    throw py::value_error("weights must have shape (n_centers, n_features) = (" + std::to_string(n_centers) + ", " +
                          std::to_string(F) + "), got " + shape_of(weights));
  py::array_t<double> out({n_pairs, static_cast<py::ssize_t>(3)});
  py::array_t<std::int64_t> pair_center(n_pairs), pair_atom(n_pairs);
  structure.pairs(pair_center.mutable_data(), pair_atom.mutable_data());
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    structure.contract(weights.data(), nullptr, o);
  }
  return py::make_tuple(out, pair_center, pair_atom);
}

py::object center_values(const SoapGTO& soap, int center_species, const DoubleArray& rel,
                         const IntArray& neighbor_species, bool gradients) {
  if (rel.ndim() != 2 || rel.shape(1) != 3)
    throw py::value_error("rel must have shape (n_neighbors, 3), got " + shape_of(rel));
  const auto n = rel.shape(0);
  if (neighbor_species.ndim() != 1 || neighbor_species.shape(0) != n)
    throw py::value_error("neighbor_species must have shape (" + std::to_string(n) + ",) like rel, got " +
                          shape_of(neighbor_species));
  const auto F = static_cast<py::ssize_t>(soap.n_features());
  py::array_t<double> values(F);
  py::array_t<double> grad;
  double* g = nullptr;
  if (gradients) {
    grad = py::array_t<double>({n + 1, static_cast<py::ssize_t>(3), F});
    g = grad.mutable_data();
  }
  double* v = values.mutable_data();
  SoapGTO::Workspace ws = soap.make_workspace();
  {
    py::gil_scoped_release release;
    soap.compute_center(center_species, static_cast<std::size_t>(n), rel.data(), neighbor_species.data(), v, g, ws);
  }
  if (gradients) return py::make_tuple(values, grad);
  return values;
}

py::array_t<double> neighbourhood_values(const SoapGTO& soap, const IntArray& centre_species, const Int64Array& offsets,
                                         const DoubleArray& rel, const IntArray& neighbor_species) {
  if (centre_species.ndim() != 1) throw py::value_error("centre_species must be one-dimensional");
  const auto n = centre_species.shape(0);
  if (offsets.ndim() != 1 || offsets.shape(0) != n + 1)
    throw py::value_error("offsets must have shape (" + std::to_string(n + 1) + ",), got " + shape_of(offsets));
  if (rel.ndim() != 2 || rel.shape(1) != 3) throw py::value_error("rel must have shape (n, 3), got " + shape_of(rel));
  if (neighbor_species.ndim() != 1 || neighbor_species.shape(0) != rel.shape(0))
    throw py::value_error("neighbor_species must have shape (" + std::to_string(rel.shape(0)) + ",) like rel, got " +
                          shape_of(neighbor_species));
  py::array_t<double> values({n, static_cast<py::ssize_t>(soap.n_features())});
  double* v = values.mutable_data();
  {
    py::gil_scoped_release release;
    clusterforce::compute_neighbourhoods(soap, static_cast<std::size_t>(n), centre_species.data(), offsets.data(),
                                         static_cast<std::size_t>(rel.shape(0)), rel.data(), neighbor_species.data(),
                                         v);
  }
  return values;
}

}  // namespace

void clusterforce::bindings::bind_soap(py::module_& m) {
  py::class_<SoapGTO>(m, "SoapGTO",
                      "dscribe-compatible SOAP power spectrum (GTO radial basis) with sparse analytic gradients.")
      .def(py::init([](double r_cut, int n_max, int l_max, double sigma, std::vector<int> species,
                       std::optional<std::array<double, 3>> poly, std::optional<double> w0, double cutoff_width) {
             clusterforce::SoapWeighting weighting;
             if (poly) {
               weighting.poly = true;
               weighting.r0 = (*poly)[0];
               weighting.c = (*poly)[1];
               weighting.m = (*poly)[2];
             }
             if (w0) {
               weighting.has_w0 = true;
               weighting.w0 = *w0;
             }
             weighting.cosine_width = cutoff_width;
             return SoapGTO(r_cut, n_max, l_max, sigma, std::move(species), weighting);
           }),
           py::arg("r_cut"), py::arg("n_max"), py::arg("l_max"), py::arg("sigma"), py::arg("species"),
           py::arg("poly") = py::none(), py::arg("w0") = py::none(), py::arg("cutoff_width") = 0.0,
           "poly = (r0, c, m) of dscribe's polynomial weighting, w0 = weight of the centre atom, cutoff_width = "
           "width (Angstrom) of a cosine transition of neighbour weights to 0 at r_cut (GAP's).")
      .def_property_readonly("r_cut", &SoapGTO::r_cut)
      .def_property_readonly("n_max", &SoapGTO::n_max)
      .def_property_readonly("l_max", &SoapGTO::l_max)
      .def_property_readonly("sigma", &SoapGTO::sigma)
      .def_property_readonly(
          "cutoff", &SoapGTO::cutoff,
          "Neighbour cutoff, Angstrom: r_cut with a cutoff transition, else r_cut + sigma*sqrt(-2 ln 1e-3).")
      .def_property_readonly("species", &SoapGTO::species, "Sorted unique atomic numbers.")
      .def_property_readonly("n_features", &SoapGTO::n_features)
      .def_property_readonly("alphas",
                             [](const SoapGTO& s) {
                               py::array_t<double> a({s.l_max() + 1, s.n_max()});
                               std::copy(s.alphas().begin(), s.alphas().end(), a.mutable_data());
                               return a;
                             })
      .def_property_readonly("betas",
                             [](const SoapGTO& s) {
                               py::array_t<double> b({s.l_max() + 1, s.n_max(), s.n_max()});
                               std::copy(s.betas().begin(), s.betas().end(), b.mutable_data());
                               return b;
                             })
      .def("compute", &structure_values, py::arg("positions"), py::arg("numbers"), py::arg("centers"),
           py::arg("cell") = py::none(), py::arg("pbc") = py::none(), "values (n_centers, n_features) of a structure.")
      .def("compute_with_gradients", &structure_gradients, py::arg("positions"), py::arg("numbers"), py::arg("centers"),
           py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
           "(values, gradients (n_pairs, 3, n_features), pair_center, pair_atom) of a structure.")
      .def("contract_gradients", &structure_contract, py::arg("positions"), py::arg("numbers"), py::arg("centers"),
           py::arg("weights"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
           "(out (n_pairs, 3), pair_center, pair_atom): out[k] = weights[pair_center[k]] . d values / d "
           "r[pair_atom[k]].")
      .def("compute_neighbourhoods", &neighbourhood_values, py::arg("centre_species"), py::arg("offsets"),
           py::arg("rel"), py::arg("neighbor_species"),
           "values (n_centres, F) of centres given as ragged neighbour lists: centre c has rel[offsets[c]:offsets[c "
           "+ 1]] (species as indices into species).")
      .def("compute_center", &center_values, py::arg("center_species"), py::arg("rel"), py::arg("neighbor_species"),
           py::arg("gradients") = false,
           "One centre from an explicit neighbour list (species as indices into species): values (F,) "
           "or (values, gradients (n_neighbors + 1, 3, F)), row 0 of the gradients is the centre.");
}
