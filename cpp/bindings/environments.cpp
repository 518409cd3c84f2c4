// Bindings for cpp/include/clusterforce/environments.hpp: the scheme table and environment
// building from a CSR neighbour list.
#include "clusterforce/environments.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bindings.hpp"
#include "environment_arrays.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

py::list scheme_table() {
  py::list out;
  for (std::size_t id = 0; id < kSchemes.size(); ++id) {
    const Scheme& s = kSchemes[id];
    py::dict d;
    d["id"] = id;
    d["name"] = s.name;
    d["class_name"] = s.class_name;
    d["error"] = s.error == ErrorKind::Anchors ? "g" : "g'";
    py::list steps;
    for (int k = 0; k < s.n_steps; ++k) {
      const AnchorStep& st = s.steps[static_cast<std::size_t>(k)];
      steps.append(py::make_tuple(st.element, st.origin, st.bond));
    }
    d["steps"] = steps;
    d["prefix"] = s.prefix;
    d["block_size"] = s.block_size;
    d["n_blocks"] = s.n_blocks;
    d["lead_element"] = s.lead_element;
    d["lead_cutoff"] = s.lead_cutoff;
    d["cloud_element"] = s.cloud_element;
    d["cloud_cutoff"] = s.cloud_cutoff;
    d["max_cloud"] = s.max_cloud;
    d["smooth"] = s.smooth;
    d["smooth_twin"] = s.smooth_twin;
    out.append(d);
  }
  return out;
}

py::dict build(int chemistry, const py::array_t<int, py::array::c_style | py::array::forcecast>& centre_z,
               const IntArray& offsets, const py::array_t<int, py::array::c_style | py::array::forcecast>& neighbour_z,
               const DoubleArray& rel, bool smooth) {
  if (chemistry != 0 && chemistry != 1)
    throw py::value_error("chemistry must be 0 (generic) or 1 (thiolate), got " + std::to_string(chemistry));
  if (centre_z.ndim() != 1) throw py::value_error("centre_z must be 1-D");
  const py::ssize_t n = centre_z.shape(0);
  if (offsets.ndim() != 1 || offsets.shape(0) != n + 1)
    throw py::value_error("offsets must have shape (" + std::to_string(n + 1) + ",), got (" +
                          std::to_string(offsets.ndim() == 1 ? offsets.shape(0) : -1) + ",)");
  if (neighbour_z.ndim() != 1) throw py::value_error("neighbour_z must be 1-D");
  const py::ssize_t m = neighbour_z.shape(0);
  if (rel.ndim() != 2 || rel.shape(0) != m || rel.shape(1) != 3)
    throw py::value_error("rel must have shape (" + std::to_string(m) + ", 3) to match neighbour_z");
  std::vector<Environment> envs(static_cast<std::size_t>(n));
  {
    py::gil_scoped_release release;
    build_environments(static_cast<Chemistry>(chemistry), static_cast<std::size_t>(n), centre_z.data(), offsets.data(),
                       static_cast<std::size_t>(m), neighbour_z.data(), rel.data(), envs.data(), smooth);
  }
  return environments_to_dict(envs);
}

}  // namespace

void bind_environments(py::module_& m) {
  m.attr("MAX_ANCHORS") = kMaxAnchors;
  m.attr("MAX_CLOUD") = kMaxCloud;
  m.attr("ENVIRONMENT_CUTOFF") = kEnvironmentCutoff;
  m.attr("BOND_CUTOFF") = kBondCutoff;
  m.def("alignment_schemes", &scheme_table,
        "The alignment scheme table (one dict per scheme id) compiled into the core.");
  m.def("build_environments", &build, py::arg("chemistry"), py::arg("centre_z"), py::arg("offsets"),
        py::arg("neighbour_z"), py::arg("rel"), py::arg("smooth") = false,
        "Environment records (dict of arrays) of centres with CSR neighbour lists; rel are "
        "neighbour positions minus the centre's (Angstrom); smooth: the smooth cloud schemes.");
}

}  // namespace clusterforce::bindings
