// Bindings for the dart kind (cpp/include/clusterforce/dart.hpp).
#include "clusterforce/dart.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "bindings.hpp"
#include "geometry_args.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

using IntArray = py::array_t<int, py::array::c_style | py::array::forcecast>;

int checked_atoms(const DoubleArray& positions, const IntArray& species) {
  check_structure(positions, species);
  return static_cast<int>(positions.shape(0));
}

}  // namespace

void bind_dart(py::module_& m) {
  m.def(
      "tad",
      [](const DoubleArray& positions, const IntArray& species, int n_species, double r_j, double r_k, double width) {
        const int n = checked_atoms(positions, species);
        const std::vector<double> x = tad(TadShells{r_j, r_k, width}, positions.data(), species.data(), n, n_species);
        return py::array_t<double>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(tad_size(n_species))},
                                   x.data());
      },
      py::arg("positions"), py::arg("species"), py::arg("n_species"), py::arg("r_J"), py::arg("r_K"), py::arg("width"),
      "Topological atomic descriptors (n, 4 S): smooth counts of atoms per neighbour species in the J (r < r_J), K and "
      "L "
      "(r >= r_K) shells (Angstrom; logistic steps of `width`), then the atom's species one-hot.");
  m.def(
      "shell_membership",
      [](const DoubleArray& r, double r_j, double r_k, double width) {
        const TadShells shells{r_j, r_k, width};
        shells.validate();
        const py::ssize_t n = r.size();
        py::array_t<double> a({n, py::ssize_t(3)}), da({n, py::ssize_t(3)});
        for (py::ssize_t i = 0; i < n; ++i)
          shells.membership(r.data()[i], a.mutable_data() + 3 * i, da.mutable_data() + 3 * i);
        return py::make_tuple(a, da);
      },
      py::arg("r"), py::arg("r_J"), py::arg("r_K"), py::arg("width"),
      "Membership of neighbours at distances r (Angstrom) in the J, K, L shells (n, 3) and its derivative "
      "(1/Angstrom).");

  py::class_<DartModel>(m, "DartModel", "Compiled dart prediction (TAD + DART network) of a .cfm file.")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& name) {
            std::string bytes = data;
            py::gil_scoped_release release;
            return read_dart_model(ModelFile::from_bytes(bytes, name));
          },
          py::arg("data"), py::arg("name") = "<bytes>",
          "Build from the bytes of a .cfm file; `name` labels error messages.")
      .def(
          "compute",
          [](const DartModel& model, const DoubleArray& positions, const IntArray& species) {
            const int n = checked_atoms(positions, species);
            DartResult r;
            {
              py::gil_scoped_release release;
              r = model.compute(positions.data(), species.data(), n);
            }
            py::dict out;
            out["energy"] = r.energy;
            out["energies"] = py::array_t<double>(n, r.atom_energies.data());
            out["forces"] = py::array_t<double>({static_cast<py::ssize_t>(n), py::ssize_t(3)}, r.forces.data());
            return out;
          },
          py::arg("positions"), py::arg("species"),
          "Free cluster: positions (n, 3) Angstrom, species indices (n,). Returns energy (eV), energies (n,) eV, "
          "forces "
          "(n, 3) eV/Angstrom.");
}

}  // namespace clusterforce::bindings
