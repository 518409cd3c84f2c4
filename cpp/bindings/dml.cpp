// Bindings for cpp/include/clusterforce/dml_predictor.hpp: the compiled dml prediction path
// (the one the LAMMPS pair style runs), for the Python model and the ASE calculator.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "clusterforce/dml_predictor.hpp"
#include "geometry_args.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

py::dict compute(const DmlPredictor& p, const DoubleArray& positions, const SpeciesArray& elements,
                 const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
  const GeometryArgs a = geometry(positions, elements, cell, pbc);
  const py::ssize_t n = a.g.n;
  DoubleArray forces({n, py::ssize_t{3}}), norms(n), uncertainty(n), spread(n);
  SpeciesArray classes(n);
  std::vector<DmlCentre> res;
  {
    py::gil_scoped_release release;
    res = p.compute(a.g.positions, a.g.species, a.g.n, a.g.cell, a.g.pbc);
  }
  for (py::ssize_t i = 0; i < n; ++i) {
    const DmlCentre& r = res[static_cast<std::size_t>(i)];
    for (int x = 0; x < 3; ++x) forces.mutable_data()[3 * i + x] = r.force[x];
    norms.mutable_data()[i] = r.norm;
    uncertainty.mutable_data()[i] = r.uncertainty;
    spread.mutable_data()[i] = r.spread;
    classes.mutable_data()[i] = r.class_index;
  }
  py::dict out;
  out["forces"] = forces;
  out["norms"] = norms;
  out["uncertainty"] = uncertainty;
  out["spread"] = spread;
  out["class_index"] = classes;
  return out;
}

}  // namespace

void bind_dml(py::module_& m) {
  py::class_<DmlPredictor>(m, "DmlPredictor",
                           "Compiled dml prediction (SOAP, scaling, EMLM norms, OAMLM directions) of a .cfm file.")
      .def(py::init([](const std::string& path) { return DmlPredictor::from_modelfile(ModelFile::read(path)); }),
           py::arg("path"))
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& name) {
            // Copy out of the Python object with the GIL held; parsing needs no Python.
            std::string bytes = data;
            py::gil_scoped_release release;
            // A unique_ptr (the holder), since the predictor is move-only.
            return std::make_unique<DmlPredictor>(DmlPredictor::from_modelfile(ModelFile::from_bytes(bytes, name)));
          },
          py::arg("data"), py::arg("name") = "<bytes>",
          "Build from the bytes of a .cfm file (clusterforce.modelfile.to_bytes); `name` labels error messages.")
      .def_property_readonly("elements", &DmlPredictor::elements)
      .def_property_readonly("classes", &DmlPredictor::classes)
      .def_property_readonly("cutoff", &DmlPredictor::cutoff)
      .def("compute", &compute, py::arg("positions"), py::arg("elements"), py::arg("cell") = py::none(),
           py::arg("pbc") = py::none(),
           "Free structure: positions (n, 3) Angstrom, element indices (n,) into `elements`. Returns dict "
           "forces (n, 3) eV/Angstrom, norms (n,), uncertainty (n,) expected force error |F| sqrt(2 spread) "
           "eV/Angstrom, spread (n,) OAMLM spread, class_index (n,) into `classes`.");
}

}  // namespace clusterforce::bindings
