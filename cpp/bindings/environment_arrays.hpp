// Conversion between the dict-of-arrays form of environments used in Python (and stored in
// model files) and clusterforce::Environment records. Glue only: validation is in the core.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "clusterforce/environments.hpp"

namespace clusterforce::bindings {

namespace py = pybind11;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using IntArray = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

inline py::array field(const py::dict& d, const char* key, const std::string& what) {
  if (!d.contains(key)) throw py::value_error(what + " environments: missing array '" + key + "'");
  return py::reinterpret_borrow<py::array>(py::array::ensure(d[key]));
}

inline std::vector<Environment> environments_from_dict(const py::dict& d, const std::string& what) {
  const auto scheme = IntArray::ensure(field(d, "scheme", what));
  const auto elem = IntArray::ensure(field(d, "element", what));
  const auto n_cloud = IntArray::ensure(field(d, "n_cloud", what));
  const auto n_lead = IntArray::ensure(field(d, "n_lead", what));
  const auto flags = IntArray::ensure(field(d, "flags", what));
  const auto anchors = DoubleArray::ensure(field(d, "anchors", what));
  const auto cloud = DoubleArray::ensure(field(d, "cloud", what));
  if (!scheme || !elem || !n_cloud || !n_lead || !flags || !anchors || !cloud)
    throw py::value_error(what + " environments: arrays must be numeric");
  const py::ssize_t n = scheme.ndim() == 1 ? scheme.shape(0) : -1;
  auto check1 = [&](const IntArray& a, const char* key) {
    if (a.ndim() != 1 || a.shape(0) != n)
      throw py::value_error(what + " environments: '" + key + "' must have shape (" + std::to_string(n) +
                            ",), got ndim " + std::to_string(a.ndim()));
  };
  check1(scheme, "scheme");
  check1(elem, "element");
  check1(n_cloud, "n_cloud");
  check1(n_lead, "n_lead");
  check1(flags, "flags");
  if (anchors.ndim() != 3 || anchors.shape(0) != n || anchors.shape(1) != kMaxAnchors || anchors.shape(2) != 3)
    throw py::value_error(what + " environments: 'anchors' must have shape (" + std::to_string(n) + ", " +
                          std::to_string(kMaxAnchors) + ", 3)");
  if (cloud.ndim() != 3 || cloud.shape(0) != n || cloud.shape(1) != kMaxCloud || cloud.shape(2) != 3)
    throw py::value_error(what + " environments: 'cloud' must have shape (" + std::to_string(n) + ", " +
                          std::to_string(kMaxCloud) + ", 3)");
  // cloud_weight is optional: records from before the smooth schemes have none (weights 1).
  DoubleArray weight;
  if (d.contains("cloud_weight")) {
    weight = DoubleArray::ensure(field(d, "cloud_weight", what));
    if (!weight || weight.ndim() != 2 || weight.shape(0) != n || weight.shape(1) != kMaxCloud)
      throw py::value_error(what + " environments: 'cloud_weight' must have shape (" + std::to_string(n) + ", " +
                            std::to_string(kMaxCloud) + ")");
  }
  return pack_environments(static_cast<std::size_t>(n), scheme.data(), elem.data(), n_cloud.data(), n_lead.data(),
                           flags.data(), anchors.data(), cloud.data(), what, weight ? weight.data() : nullptr);
}

inline py::dict environments_to_dict(const std::vector<Environment>& envs) {
  const auto n = static_cast<py::ssize_t>(envs.size());
  IntArray scheme(n), elem(n), n_cloud(n), n_lead(n), flags(n);
  DoubleArray anchors({n, static_cast<py::ssize_t>(kMaxAnchors), py::ssize_t{3}});
  DoubleArray cloud({n, static_cast<py::ssize_t>(kMaxCloud), py::ssize_t{3}});
  DoubleArray weight({n, static_cast<py::ssize_t>(kMaxCloud)});
  auto s = scheme.mutable_data();
  auto e = elem.mutable_data();
  auto nc = n_cloud.mutable_data();
  auto nl = n_lead.mutable_data();
  auto f = flags.mutable_data();
  double* a = anchors.mutable_data();
  double* c = cloud.mutable_data();
  double* w = weight.mutable_data();
  for (std::size_t i = 0; i < envs.size(); ++i) {
    s[i] = envs[i].scheme;
    e[i] = envs[i].element;
    nc[i] = envs[i].n_cloud;
    nl[i] = envs[i].n_lead;
    f[i] = envs[i].flags;
    std::copy(&envs[i].anchors[0][0], &envs[i].anchors[0][0] + 3 * kMaxAnchors, a + 3 * kMaxAnchors * i);
    std::copy(&envs[i].cloud[0][0], &envs[i].cloud[0][0] + 3 * kMaxCloud, c + 3 * kMaxCloud * i);
    std::copy(envs[i].weight, envs[i].weight + kMaxCloud, w + kMaxCloud * i);
  }
  py::dict d;
  d["scheme"] = scheme;
  d["element"] = elem;
  d["n_cloud"] = n_cloud;
  d["n_lead"] = n_lead;
  d["flags"] = flags;
  d["anchors"] = anchors;
  d["cloud"] = cloud;
  d["cloud_weight"] = weight;
  return d;
}

}  // namespace clusterforce::bindings
