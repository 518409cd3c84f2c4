// Bindings for the GAP terms and model (cpp/include/clusterforce/gap.hpp).
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
#include "prediction_dict.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

std::vector<double> to_vector(const Array& a) {
  return std::vector<double>(a.data(), a.data() + a.size());
}

std::shared_ptr<NBodyTerm> make_nbody(int n_species, int order, double r_cut, double width, double theta, double delta,
                                      const Array& sparse, const Int64Array& offsets,
                                      const std::optional<Array>& alpha) {
  const int dim = nbody_dim(order);
  if (sparse.ndim() != 2 || sparse.shape(1) != dim) {
    throw py::value_error(std::to_string(order) + "b term: sparse must have shape (M, " + std::to_string(dim) + ")");
  }
  if (offsets.ndim() != 1) throw py::value_error("offsets must be one-dimensional");
  NBodyParams p;
  p.order = order;
  p.r_cut = r_cut;
  p.width = width;
  p.theta = theta;
  p.delta = delta;
  p.sparse = to_vector(sparse);
  p.offsets.assign(offsets.data(), offsets.data() + offsets.size());
  if (alpha) {
    if (alpha->ndim() != 1) throw py::value_error("alpha must be one-dimensional");
    p.alpha = to_vector(*alpha);
  }
  return std::make_shared<NBodyTerm>(n_species, std::move(p));
}

py::tuple term_rows(const GapTerm& term, const Array& pos, const IntArray& species, const std::optional<Array>& cell,
                    const std::optional<std::array<bool, 3>>& pbc) {
  const GeometryArgs a = geometry(pos, species, cell, pbc);
  const py::ssize_t n = pos.shape(0), m = term.n_sparse();
  py::array_t<double> energy_row(m), force_rows({n, py::ssize_t(3), m});
  double* er = energy_row.mutable_data();
  double* fr = force_rows.mutable_data();
  {
    py::gil_scoped_release release;
    structure_rows(term, a.g, er, fr);
  }
  return py::make_tuple(energy_row, force_rows);
}

}  // namespace

py::dict instances_to_dict(const std::vector<NBodyInstance>& inst, int order);  // nbody.cpp

// Energy (eV) and forces (eV/Angstrom) of the repulsive pair baseline alone (baseline.hpp), for
// the Python paths that separate it from a prediction and for tests.
py::tuple baseline_energy_forces(const Array& r_s, double A, double rho, const Array& pos, const IntArray& species,
                                 const std::optional<Array>& cell, const std::optional<std::array<bool, 3>>& pbc) {
  if (r_s.ndim() != 2 || r_s.shape(0) != r_s.shape(1))
    throw py::value_error("r_s must be a square (n_species, n_species) array");
  const int n_species = static_cast<int>(r_s.shape(0));
  const PairWall wall(n_species, to_vector(r_s), A, rho);
  const GeometryArgs a = geometry(pos, species, cell, pbc);
  Prediction p;
  {
    py::gil_scoped_release release;
    p = pair_wall_prediction(wall, n_species, a.g);
  }
  return py::make_tuple(p.energy, Array({static_cast<py::ssize_t>(a.g.n), py::ssize_t{3}}, p.forces.data()));
}

void bind_gap(py::module_& m) {
  m.def("baseline_energy_forces", &baseline_energy_forces, py::arg("r_s"), py::arg("A"), py::arg("rho"),
        py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
        "(energy eV, forces (n, 3) eV/Angstrom) of the repulsive pair baseline (r_s Angstrom, A eV, rho Angstrom).");
  m.def(
      "nbody_structure_descriptors",
      [](int order, double r_cut, double width, int n_species, const Array& pos, const IntArray& species,
         const std::optional<Array>& cell, const std::optional<std::array<bool, 3>>& pbc) {
        const GeometryArgs a = geometry(pos, species, cell, pbc);
        nbody_dim(order);
        const CosineCutoff cut(r_cut, width);
        std::vector<NBodyInstance> inst;
        std::vector<int> centre;
        {
          py::gil_scoped_release release;
          structure_nbody_instances(order, cut, n_species, a.g, inst, centre);
        }
        py::dict out = instances_to_dict(inst, order);
        out["centre"] = py::array_t<int>(static_cast<py::ssize_t>(centre.size()), centre.data());
        return out;
      },
      py::arg("order"), py::arg("r_cut"), py::arg("width"), py::arg("n_species"), py::arg("positions"),
      py::arg("species"), py::arg("cell") = py::none(), py::arg("pbc") = py::none(),
      "Pair or triplet descriptors (weight = cutoff fc) of every centre of a structure.");

  py::class_<GapTerm, std::shared_ptr<GapTerm>>(m, "GapTerm", "One additive term of a GAP energy.")
      .def_property_readonly("n_sparse", &GapTerm::n_sparse)
      .def_property_readonly("r_cut", &GapTerm::r_cut)
      .def("rows", &term_rows, py::arg("positions"), py::arg("species"), py::arg("cell") = py::none(),
           py::arg("pbc") = py::none(),
           "Kernel rows of a structure: (energy_row (M,), force_rows (n, 3, M)); "
           "force_rows = -d energy_row / d positions.");

  py::class_<NBodyTerm, GapTerm, std::shared_ptr<NBodyTerm>>(m, "NBodyTerm",
                                                             "2-body or 3-body squared-exponential GAP term.")
      .def(py::init(&make_nbody), py::arg("n_species"), py::arg("order"), py::arg("r_cut"), py::arg("width"),
           py::arg("theta"), py::arg("delta"), py::arg("sparse"), py::arg("offsets"), py::arg("alpha") = py::none())
      .def(
          "sparse_covariance",
          [](const NBodyTerm& t) {
            const py::ssize_t mm = t.n_sparse();
            py::array_t<double> out({mm, mm});
            double* o = out.mutable_data();
            {
              py::gil_scoped_release release;
              t.sparse_covariance(o);
            }
            return out;
          },
          "Kernel matrix K_mm between the sparse points (eV^2).")
      .def(
          "kernel",
          [](const NBodyTerm& t, int channel, const Array& q) {
            if (channel < 0 || channel >= nbody_n_channels(t.order(), t.n_species())) {
              throw py::index_error("channel " + std::to_string(channel) + " out of range");
            }
            if (q.ndim() != 1 || q.shape(0) != t.dim()) {
              throw py::value_error("q must have shape (" + std::to_string(t.dim()) + ",)");
            }
            const auto& off = t.params().offsets;
            const py::ssize_t mc = off[channel + 1] - off[channel];
            py::array_t<double> k(mc), dk({mc, static_cast<py::ssize_t>(t.dim())});
            t.kernel(channel, q.data(), k.mutable_data(), dk.mutable_data());
            return py::make_tuple(k, dk);
          },
          py::arg("channel"), py::arg("q"), "Kernel values and gradients dk/dq against the channel's sparse points.");

  py::class_<MappedNBodyTerm, GapTerm, std::shared_ptr<MappedNBodyTerm>>(
      m, "MappedNBodyTerm", "A 2b or 3b term whose energy function is tabulated on cubic B-splines (gap_mapped.hpp).")
      .def(py::init([](std::shared_ptr<NBodyTerm> exact, const Array& knots_r, const Array& coefficients,
                       const std::optional<Array>& knots_cos) {
             if (knots_r.ndim() != 1 || (knots_cos && knots_cos->ndim() != 1))
               throw py::value_error("knots must be one-dimensional");
             return std::make_shared<MappedNBodyTerm>(exact, BSplineAxis(to_vector(knots_r)),
                                                      knots_cos ? BSplineAxis(to_vector(*knots_cos)) : BSplineAxis(),
                                                      to_vector(coefficients));
           }),
           py::arg("exact"), py::arg("knots_r"), py::arg("coefficients"), py::arg("knots_cos") = py::none(),
           "exact: the trained NBodyTerm; knots (scipy BSpline convention, degree 3); coefficients: map channels x "
           "axes' sizes (2b: r; 3b: r_1, r_2, cos theta).")
      .def_property_readonly("n_channels", &MappedNBodyTerm::n_channels)
      .def(
          "values",
          [](const MappedNBodyTerm& t, int channel, const Array& points) {
            const int dim = t.exact().order() == 2 ? 1 : 3;
            if (channel < 0 || channel >= t.n_channels()) throw py::index_error("map channel out of range");
            if (points.ndim() != 2 || points.shape(1) != dim)
              throw py::value_error("points must have shape (n, " + std::to_string(dim) + ")");
            const py::ssize_t n = points.shape(0);
            py::array_t<double> f(n), g({n, static_cast<py::ssize_t>(dim)});
            for (py::ssize_t i = 0; i < n; ++i)
              f.mutable_data()[i] = t.value(channel, points.data() + i * dim, g.mutable_data() + i * dim);
            return py::make_tuple(f, g);
          },
          py::arg("channel"), py::arg("points"), "The tabulated function at points (n, 1 or 3) and its gradient.");
  m.def(
      "mapped_profile",
      [](const NBodyTerm& term, int channel, const Array& points) {
        const int dim = term.order() == 2 ? 1 : 3;
        if (points.ndim() != 2 || points.shape(1) != dim)
          throw py::value_error("points must have shape (n, " + std::to_string(dim) + ")");
        const py::ssize_t n = points.shape(0);
        py::array_t<double> out(n);
        double* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          mapped_profile(term, channel, points.data(), n, o);
        }
        return out;
      },
      py::arg("term"), py::arg("channel"), py::arg("points"),
      "The exact term's energy function (eV, before cutoff weights) at points of a map channel: 2b rows (r,), 3b "
      "rows (r_1, r_2, cos theta) of the legs to the lower- and higher-species neighbour (Angstrom).");

  py::class_<SoapTerm, GapTerm, std::shared_ptr<SoapTerm>>(m, "SoapTerm",
                                                           "SOAP GAP term: delta^2 (p_hat . p_hat_m)^zeta.")
      .def(py::init([](const SoapGTO& soap, double delta, int zeta, const Array& sparse, const Int64Array& offsets,
                       const std::optional<Array>& alpha) {
             const auto f = static_cast<py::ssize_t>(soap.n_features());
             if (sparse.ndim() != 2 || sparse.shape(1) != f) {
               throw py::value_error("SOAP term: sparse must have shape (M, " + std::to_string(f) + ")");
             }
             if (offsets.ndim() != 1) throw py::value_error("offsets must be one-dimensional");
             if (alpha && alpha->ndim() != 1) throw py::value_error("alpha must be one-dimensional");
             return std::make_shared<SoapTerm>(soap, delta, zeta, to_vector(sparse),
                                               std::vector<int64_t>(offsets.data(), offsets.data() + offsets.size()),
                                               alpha ? to_vector(*alpha) : std::vector<double>());
           }),
           py::arg("soap"), py::arg("delta"), py::arg("zeta"), py::arg("sparse"), py::arg("offsets"),
           py::arg("alpha") = py::none())
      .def("uses_quadratic_form", &SoapTerm::uses_quadratic_form, py::arg("species"),
           "Whether centres of this species are predicted as p_hat^T A p_hat (zeta = 2, more sparse points than "
           "features) instead of the sum over sparse points.");

  py::class_<GapModel, std::shared_ptr<GapModel>>(
      m, "GapModel",
      "A GAP as training builds it: e0 plus terms (no wall: a model file's Predictor adds that); per-centre "
      "energies, variances and, for tests, whole structures through the structure driver.")
      .def(py::init([](int n_species, const Array& e0, std::vector<std::shared_ptr<GapTerm>> terms,
                       const std::optional<Array>& variance, const std::optional<Array>& uncertainty_scale) {
             std::vector<std::shared_ptr<const GapTerm>> t(terms.begin(), terms.end());
             return std::make_shared<GapModel>(
                 n_species, to_vector(e0), std::move(t), variance ? to_vector(*variance) : std::vector<double>(),
                 uncertainty_scale ? to_vector(*uncertainty_scale) : std::vector<double>());
           }),
           py::arg("n_species"), py::arg("e0"), py::arg("terms"), py::arg("variance") = py::none(),
           py::arg("uncertainty_scale") = py::none(),
           "uncertainty_scale (n_species): factors applied to the force standard deviations.")
      .def_static(
          "read",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return std::make_shared<GapModel>(read_gap_model(ModelFile::read(path)));
          },
          py::arg("path"), "Load a .cfm model file of kind 'gap' with the C++ reader (as LAMMPS does).")
      .def_property_readonly("cutoff", &GapModel::cutoff)
      .def_property_readonly("n_sparse", &GapModel::n_sparse)
      .def_property_readonly("has_variance", &GapModel::has_variance)
      .def(
          "compute",
          [](const std::shared_ptr<GapModel>& model, const Array& pos, const IntArray& species, bool with_variance,
             const std::optional<Array>& cell, const std::optional<std::array<bool, 3>>& pbc) {
            const GeometryArgs a = geometry(pos, species, cell, pbc);
            const LocalPredictor predictor("gap", {}, std::make_shared<GapLocal>(model), PairWall{}, PairLimits{});
            Prediction r;
            {
              py::gil_scoped_release release;
              r = predictor.compute(a.g, with_variance);
            }
            py::dict out = prediction_dict(r, a.g.n);
            out.attr("pop")("extrapolating");
            return out;
          },
          py::arg("positions"), py::arg("species"), py::arg("with_variance") = false, py::arg("cell") = py::none(),
          py::arg("pbc") = py::none(),
          "Energy (eV), per-atom energies, forces (eV/A), virial (eV) and optionally the variances of the local "
          "energies and the energy (eV^2) and of the forces (eV^2/A^2).")
      .def(
          "centre_energy",
          [](const GapModel& model, int centre_species, const Array& rel, const IntArray& species) {
            check_structure(rel, species);
            const py::ssize_t n = rel.shape(0);
            py::array_t<double> grad({n, py::ssize_t(3)});
            double* g = grad.mutable_data();
            std::fill(g, g + 3 * n, 0.0);
            double e;
            {
              py::gil_scoped_release release;
              e = model.centre_energy(centre_species, rel.data(), species.data(), static_cast<int>(n), g);
            }
            return py::make_tuple(e, grad);
          },
          py::arg("centre_species"), py::arg("rel"), py::arg("species"),
          "Local energy of one centre (eV) and its gradient w.r.t. the neighbours' relative positions (eV/A).");
}

}  // namespace clusterforce::bindings
