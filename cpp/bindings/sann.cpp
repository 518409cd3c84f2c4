// Bindings for the sann kind (cpp/include/clusterforce/sann.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "clusterforce/models.hpp"
#include "geometry_args.hpp"
#include "numpy_helpers.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

using IntArray = py::array_t<int, py::array::c_style | py::array::forcecast>;

SannDescriptor make_descriptor(double r_cut, const std::vector<double>& exponents, int l_max,
                               const std::vector<double>& xi) {
  SannDescriptor d{r_cut, exponents, l_max, xi};
  d.validate();
  return d;
}

}  // namespace

void bind_sann(py::module_& m) {
  m.def(
      "sann_descriptors",
      [](const DoubleArray& positions, const IntArray& species, const DoubleArray& masses, double r_cut,
         const std::vector<double>& exponents, int l_max, const std::vector<double>& xi,
         const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
        const GeometryArgs args = geometry(positions, species, cell, pbc);
        const Geometry& g = args.g;
        const SannDescriptor desc = make_descriptor(r_cut, exponents, l_max, xi);
        const int n = g.n, dim = desc.size();
        for (int i = 0; i < n; ++i)
          if (g.species[i] < 0 || g.species[i] >= masses.size())
            throw py::value_error("species index out of range of masses");
        py::array_t<double> qe({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)});
        py::array_t<double> qf({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim)});
        py::array_t<double> dqf(
            {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(dim), static_cast<py::ssize_t>(n), py::ssize_t(3)});
        double* pe = qe.mutable_data();
        double* pf = qf.mutable_data();
        double* pd = dqf.mutable_data();
        {
          py::gil_scoped_release release;
          structure_descriptors(desc, masses.data(), g, pe, pf, pd);
        }
        py::dict out;
        out["energy"] = qe;
        out["force"] = qf;
        out["force_gradient"] = dqf;
        return out;
      },
      py::arg("positions"), py::arg("species"), py::arg("masses"), py::arg("r_cut"), py::arg("exponents"),
      py::arg("l_max"), py::arg("xi"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
      "sann descriptors of every atom: 'energy' (n, D) with MEAD bond weights exp(mu_hk / m_h) (masses in species "
      "order), "
      "'force' (n, D) with unit weights, and 'force_gradient' (n, D, n, 3), d force-descriptor / d positions "
      "(1/Angstrom).");

  py::class_<SannModel, std::shared_ptr<SannModel>>(
      m, "SannModel", "Compiled sann network (MEAD energy, decoupled forces) of a .cfm file, without its wall.")
      .def_static(
          "from_bytes",
          [](const py::bytes& data, const std::string& name) {
            std::string bytes = data;
            py::gil_scoped_release release;
            return std::make_shared<SannModel>(read_sann_model(ModelFile::from_bytes(bytes, name)));
          },
          py::arg("data"), py::arg("name") = "<bytes>",
          "Build from the bytes of a .cfm file; `name` labels error messages.")
      .def_property_readonly("cutoff", &SannModel::cutoff)
      .def(
          "compute",
          [](const std::shared_ptr<SannModel>& model, const DoubleArray& positions, const IntArray& species,
             const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
            const GeometryArgs args = geometry(positions, species, cell, pbc);
            const LocalPredictor predictor("sann", {}, std::make_shared<SannLocal>(model), PairWall{}, PairLimits{});
            Prediction r;
            {
              py::gil_scoped_release release;
              r = predictor.compute(args.g, false);
            }
            py::dict out;
            out["energy"] = r.energy;
            out["energies"] = py::array_t<double>(args.g.n, r.energies.data());
            out["forces"] = py::array_t<double>({static_cast<py::ssize_t>(args.g.n), py::ssize_t(3)}, r.forces.data());
            return out;
          },
          py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
          "Energy (eV), per-atom energies (eV) and the decoupled forces (eV/Angstrom).")
      .def_property_readonly("has_variance", &SannModel::has_variance)
      .def(
          "last_layer_rows",
          [](const SannModel& model, const DoubleArray& positions, const IntArray& species,
             const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
            const GeometryArgs args = geometry(positions, species, cell, pbc);
            const Geometry& g = args.g;
            std::vector<double> energy_row, force_rows;
            {
              py::gil_scoped_release release;
              model.last_layer_rows(g, energy_row, force_rows);
            }
            const auto m = static_cast<py::ssize_t>(model.n_last_layer());
            return py::make_tuple(py::array_t<double>(m, energy_row.data()),
                                  py::array_t<double>({3 * static_cast<py::ssize_t>(g.n), m}, force_rows.data()));
          },
          py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
          "(energy_row (H+1,) eV, force_rows (3n, H+1) eV/Angstrom): the derivatives of the energy and of every "
          "force component (atom-major, x y z) w.r.t. the output layer's (w_L, b_L), in which both are linear.")
      .def(
          "force_variances",
          [](const SannModel& model, const DoubleArray& positions, const IntArray& species,
             const std::optional<DoubleArray>& cell, const std::optional<std::array<bool, 3>>& pbc) {
            const GeometryArgs args = geometry(positions, species, cell, pbc);
            const Geometry& g = args.g;
            std::vector<double> var;
            {
              py::gil_scoped_release release;
              var = model.force_variances(g);
            }
            return py::array_t<double>({static_cast<py::ssize_t>(g.n), py::ssize_t(3)}, var.data());
          },
          py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
          "Variance of every force component (n, 3), eV^2/Angstrom^2, under the last layer's Laplace posterior.");
}

}  // namespace clusterforce::bindings
