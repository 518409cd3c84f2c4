// Binding of the one whole-structure Predictor of every model kind (cpp/include/clusterforce/models.hpp).
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

void bind_predictor(py::module_& m) {
  m.def(
      "mean_nearest_neighbour",
      [](const DoubleArray& positions, const SpeciesArray& species, int n_species, double radius,
         const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
        if (!(radius > 0.0)) throw py::value_error("radius must be positive (Angstrom)");
        const GeometryArgs a = geometry_or_cluster(positions, species, cell, pbc);
        check_geometry(a.g, n_species);
        std::vector<double> m;
        {
          py::gil_scoped_release release;
          m = mean_nearest_neighbour(a.g, n_species, radius, PairLimits{}, nullptr);
        }
        return py::array_t<double>(static_cast<py::ssize_t>(m.size()), m.data());
      },
      py::arg("positions"), py::arg("species"), py::arg("n_species"), py::arg("radius"), py::arg("cell") = py::none(),
      py::arg("pbc") = py::none(),
      "Per species (n_species,), the mean nearest-neighbour distance (Angstrom) of its atoms, neighbours searched "
      "within `radius` (an atom with none counts as `radius`; NaN for a species absent): the packing part of the "
      "out-of-domain score (clusterforce/domain.hpp), as the model file's training range is made.");
  m.def("registered_kinds", &registered_kinds,
        "Model kinds this build reads, in registration order: the built-in ones and those compiled in with "
        "CLUSTERFORCE_EXTRA_KINDS (cpp/include/clusterforce/kinds.hpp).");
  py::class_<Predictor, std::shared_ptr<Predictor>>(m, "Predictor",
                                                    "Whole-structure prediction of a model file of any registered kind "
                                                    "(gap, sann, dml, dart, extra kinds): the one C++ path that the "
                                                    "estimators, the ASE calculator and the LAMMPS pair style share.")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& path) {
            std::string bytes = data;  // copied with the GIL held; parsing needs no Python
            py::gil_scoped_release release;
            return std::shared_ptr<Predictor>(make_predictor(ModelFile::from_bytes(bytes, path)));
          },
          py::arg("data"), py::arg("path") = "<bytes>",
          "Build from the bytes of a .cfm file (clusterforce.core.modelfile.to_bytes or the file's contents); `path` "
          "names the file in error messages.")
      .def_static(
          "read",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return std::shared_ptr<Predictor>(make_predictor(ModelFile::read(path)));
          },
          py::arg("path"), "Read a .cfm file of any kind (as the LAMMPS pair style does).")
      .def_property_readonly("kind", &Predictor::kind)
      .def_property_readonly("elements", &Predictor::elements, "Chemical symbols in species-index order.")
      .def_property_readonly("cutoff", &Predictor::cutoff, "Interaction range (Angstrom); 0 for dart (global).")
      .def_property_readonly("has_energy", &Predictor::has_energy)
      .def_property_readonly("has_uncertainty", &Predictor::has_uncertainty)
      .def_property_readonly("pair_style_refusal", &Predictor::pair_style_refusal,
                             "Why the model cannot run under pair_style clusterforce ('' when it can).")
      .def_property_readonly("nonconservative_reason", &Predictor::nonconservative_reason,
                             "Why the forces are not -dE/dx ('' when they are, or the model has no energy).")
      .def(
          "compute",
          [](const Predictor& p, const DoubleArray& positions, const SpeciesArray& species,
             const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc, bool uncertainty,
             std::optional<double> charge) {
            const GeometryArgs a = geometry_or_cluster(positions, species, cell, pbc);
            Prediction r;
            {
              py::gil_scoped_release release;
              r = p.predict(a.g, uncertainty, charge);
            }
            return prediction_dict(r, a.g.n);
          },
          py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
          py::kw_only(), py::arg("uncertainty") = false, py::arg("charge") = py::none(),
          "positions (n, 3) Angstrom, species (n,) indices into `elements`, cell (3, 3) rows or None, pbc (3,) bools "
          "(None: a free cluster). Returns a dict: 'forces' (n, 3) eV/Angstrom, 'extrapolating' (n,) bool (a pair "
          "shorter than the shortest of its elements in the training data); energy kinds 'energy' eV, 'energies' (n,) "
          "eV, 'virial' (3, 3) eV; 'uncertainty' (n,) eV/Angstrom when asked for (dml: always) and, for gap and sann, "
          "'forces_variance' (n, 3) eV^2/Angstrom^2 (gap also 'energies_variance' (n,), 'energy_variance' eV^2); dml "
          "'norms', 'spread', 'class_index' (n,); 'warnings' (list of str, at most one): the composition, or the total "
          "`charge` (e; None: not checked), is outside the model's training data; with a domain reference in the file "
          "'domain_score' (1 = edge of the training domain), 'outside_domain' (bool, score > 1) and 'domain_parts' "
          "(dict: uncertainty, packing, short_pair; NaN where not computed). ValueError for coincident atoms or "
          "non-finite positions.");
}

}  // namespace clusterforce::bindings
