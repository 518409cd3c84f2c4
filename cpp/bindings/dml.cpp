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
#include "clusterforce/models.hpp"
#include "geometry_args.hpp"
#include "numpy_helpers.hpp"
#include "prediction_dict.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

py::dict compute(const std::shared_ptr<DmlPredictor>& p, const DoubleArray& positions, const SpeciesArray& elements,
                 const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
  const GeometryArgs a = geometry(positions, elements, cell, pbc);
  const LocalPredictor predictor("dml", p->elements(), std::make_shared<DmlLocal>(p), PairWall{}, PairLimits{});
  Prediction r;
  {
    py::gil_scoped_release release;
    r = predictor.compute(a.g, false);
  }
  py::dict out = prediction_dict(r, a.g.n);
  out.attr("pop")("extrapolating");
  // Class indices are exact small integers in the diagnostics' doubles.
  out["class_index"] = py::array_t<double>(out["class_index"]).attr("astype")("int32");
  return out;
}

}  // namespace

void bind_dml(py::module_& m) {
  py::class_<DmlPredictor, std::shared_ptr<DmlPredictor>>(
      m, "DmlPredictor", "Compiled dml prediction (SOAP, scaling, EMLM norms, OAMLM directions) of a .cfm file.")
      .def(py::init([](const std::string& path) {
             return std::make_shared<DmlPredictor>(DmlPredictor::from_modelfile(ModelFile::read(path)));
           }),
           py::arg("path"))
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& name) {
            // Copy out of the Python object with the GIL held; parsing needs no Python.
            std::string bytes = data;
            py::gil_scoped_release release;
            return std::make_shared<DmlPredictor>(DmlPredictor::from_modelfile(ModelFile::from_bytes(bytes, name)));
          },
          py::arg("data"), py::arg("name") = "<bytes>",
          "Build from the bytes of a .cfm file (clusterforce.core.modelfile.to_bytes); `name` labels error messages.")
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
