// Bindings for the 2-body / 3-body descriptors (cpp/include/clusterforce/nbody.hpp).
#include "clusterforce/nbody.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bindings.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<int, py::array::c_style | py::array::forcecast>;

void check_positions(const Array& pos, const IntArray& species, const char* what) {
  if (pos.ndim() != 2 || pos.shape(1) != 3) {
    throw py::value_error(std::string(what) + " must have shape (n, 3), got ndim " + std::to_string(pos.ndim()));
  }
  if (species.ndim() != 1 || species.shape(0) != pos.shape(0)) {
    throw py::value_error(std::string("species must have shape (") + std::to_string(pos.shape(0)) + ",) to match " +
                          what + ", got " + std::to_string(species.ndim() == 1 ? species.shape(0) : -1));
  }
}

}  // namespace

// Instances -> numpy arrays; dq/dw have one slot per involved neighbour (order - 1).
// Also used by the structure-level binding in gap.cpp.
py::dict instances_to_dict(const std::vector<NBodyInstance>& inst, int order) {
  const py::ssize_t t = static_cast<py::ssize_t>(inst.size());
  const int dim = nbody_dim(order), na = order - 1;
  py::array_t<double> q({t, static_cast<py::ssize_t>(dim)}), w(t),
      dq({t, static_cast<py::ssize_t>(dim), static_cast<py::ssize_t>(na), py::ssize_t(3)}),
      dw({t, static_cast<py::ssize_t>(na), py::ssize_t(3)});
  py::array_t<int> channel(t), atoms({t, static_cast<py::ssize_t>(na)});
  auto qv = q.mutable_unchecked<2>();
  auto wv = w.mutable_unchecked<1>();
  auto dqv = dq.mutable_unchecked<4>();
  auto dwv = dw.mutable_unchecked<3>();
  auto cv = channel.mutable_unchecked<1>();
  auto av = atoms.mutable_unchecked<2>();
  for (py::ssize_t s = 0; s < t; ++s) {
    const auto& in = inst[s];
    cv(s) = in.channel;
    wv(s) = in.w;
    for (int d = 0; d < dim; ++d) qv(s, d) = in.q[d];
    for (int a = 0; a < na; ++a) {
      av(s, a) = in.atom[a];
      for (int x = 0; x < 3; ++x) {
        dwv(s, a, x) = in.dw[a][x];
        for (int d = 0; d < dim; ++d) dqv(s, d, a, x) = in.dq[d][a][x];
      }
    }
  }
  py::dict out;
  out["q"] = q;
  out["channel"] = channel;
  out["weight"] = w;
  out["atoms"] = atoms;
  out["dq"] = dq;
  out["dweight"] = dw;
  return out;
}

void bind_nbody(py::module_& m) {
  m.def(
      "nbody_centre_descriptors",
      [](int order, double r_cut, double width, int n_species, int centre_species, const Array& rel,
         const IntArray& species) {
        check_positions(rel, species, "rel");
        nbody_dim(order);
        const CosineCutoff cut(r_cut, width);
        std::vector<NBodyInstance> inst;
        {
          py::gil_scoped_release release;
          nbody_instances(order, cut, centre_species, rel.data(), species.data(), static_cast<int>(rel.shape(0)),
                          n_species, inst);
        }
        return instances_to_dict(inst, order);
      },
      py::arg("order"), py::arg("r_cut"), py::arg("width"), py::arg("n_species"), py::arg("centre_species"),
      py::arg("rel"), py::arg("species"),
      "Pair (order 2) or triplet (order 3) descriptors of one centre from its neighbours' relative positions.");
  m.def("n_nbody_channels", &nbody_n_channels, py::arg("order"), py::arg("n_species"),
        "Number of species channels of an n-body order.");
}

}  // namespace clusterforce::bindings
