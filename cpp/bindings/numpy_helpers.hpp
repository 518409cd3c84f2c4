// Small helpers shared by the binding files (argument conversion and error text).
#pragma once

#include <pybind11/numpy.h>

#include <string>

namespace clusterforce::bindings {

// C-contiguous float64 view of any array-like (converted/copied only when needed).
using DoubleArray = pybind11::array_t<double, pybind11::array::c_style | pybind11::array::forcecast>;

// "(3, 4)" / "(5,)" for error messages.
inline std::string shape_of(const pybind11::array& a) {
  std::string s = "(";
  for (pybind11::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

}  // namespace clusterforce::bindings
