// A Prediction (cpp/include/clusterforce/predictor.hpp) as the dict the Python side reads.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "clusterforce/predictor.hpp"

namespace clusterforce::bindings {

namespace py = pybind11;

inline py::dict prediction_dict(const Prediction& r, int n_atoms) {
  const auto n = static_cast<py::ssize_t>(n_atoms);
  const py::ssize_t three = 3;
  py::dict out;
  out["forces"] = py::array_t<double>({n, three}, r.forces.data());
  py::array_t<bool> flags(n);
  for (py::ssize_t i = 0; i < n; ++i) flags.mutable_data()[i] = r.extrapolating[i] != 0;
  out["extrapolating"] = flags;
  if (r.has_energy) {
    out["energy"] = r.energy;
    out["energies"] = py::array_t<double>(n, r.energies.data());
    out["virial"] = py::array_t<double>({three, three}, r.virial.data());
  }
  if (!r.uncertainty.empty()) out["uncertainty"] = py::array_t<double>(n, r.uncertainty.data());
  if (!r.forces_variance.empty()) out["forces_variance"] = py::array_t<double>({n, three}, r.forces_variance.data());
  if (r.has_energy_variance) {
    out["energies_variance"] = py::array_t<double>(n, r.energies_variance.data());
    out["energy_variance"] = r.energy_variance;
  }
  if (r.has_domain) {
    out["domain_score"] = r.domain.score;
    out["outside_domain"] = r.domain.outside();
    py::dict parts;
    parts["uncertainty"] = r.domain.uncertainty;
    parts["packing"] = r.domain.packing;
    parts["short_pair"] = r.domain.short_pair;
    out["domain_parts"] = parts;
  }
  py::list warnings;
  for (const std::string& w : r.warnings) warnings.append(w);
  out["warnings"] = warnings;
  const std::size_t k = r.diagnostic_names.size();
  for (std::size_t d = 0; d < k; ++d) {
    py::array_t<double> values(n);
    for (py::ssize_t i = 0; i < n; ++i) values.mutable_data()[i] = r.diagnostics[static_cast<std::size_t>(i) * k + d];
    out[py::str(r.diagnostic_names[d])] = values;
  }
  return out;
}

}  // namespace clusterforce::bindings
