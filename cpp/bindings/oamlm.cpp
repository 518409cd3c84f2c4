// Bindings for cpp/include/clusterforce/oamlm.hpp: the OAMLM prediction step.
#include "clusterforce/oamlm.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "environment_arrays.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

void check_square(const DoubleArray& B, py::ssize_t K, const char* name) {
  if (B.ndim() != 2 || B.shape(0) != K || B.shape(1) != K)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(K) + ", " + std::to_string(K) +
                          ") for " + std::to_string(K) + " references");
}

py::dict predict(const py::dict& inputs, const py::dict& refs, const DoubleArray& d_in, const DoubleArray& B_c,
                 const py::object& B_g_obj, const DoubleArray& T, double sigma2, int n_triangles,
                 const std::string& loss, double sigma1) {
  const auto in = environments_from_dict(inputs, "input");
  const auto rf = environments_from_dict(refs, "reference");
  const auto n = static_cast<py::ssize_t>(in.size()), K = static_cast<py::ssize_t>(rf.size());
  if (d_in.ndim() != 2 || d_in.shape(0) != n || d_in.shape(1) != K)
    throw py::value_error("d_in must have shape (" + std::to_string(n) + ", " + std::to_string(K) + ") for " +
                          std::to_string(n) + " inputs and " + std::to_string(K) + " references");
  check_square(B_c, K, "B_c");
  const DoubleArray B_g = B_g_obj.is_none() ? DoubleArray() : DoubleArray::ensure(B_g_obj);
  if (!B_g_obj.is_none()) {
    if (!B_g) throw py::value_error("B_g must be a float array or None");
    check_square(B_g, K, "B_g");
  }
  if (T.ndim() != 2 || T.shape(0) != K || T.shape(1) != 3)
    throw py::value_error("T must have shape (" + std::to_string(K) + ", 3)");
  DoubleArray v({n, py::ssize_t{3}}), spread(n), residual(n), support(n);
  std::vector<OamlmResult> res(static_cast<std::size_t>(n));
  {
    py::gil_scoped_release release;
    const ReferenceSet set(rf.data(), rf.size());
    OamlmModel model{&set,     B_c.data(), B_g_obj.is_none() ? nullptr : B_g.data(),
                     T.data(), sigma2,     AlignOptions{n_triangles}};
    model.loss = parse_loss(loss);
    model.sigma1 = sigma1;
    oamlm_predict(model, in.data(), in.size(), d_in.data(), res.data());
  }
  double* vp = v.mutable_data();
  for (std::size_t i = 0; i < res.size(); ++i) {
    std::copy(res[i].v, res[i].v + 3, vp + 3 * i);
    spread.mutable_data()[i] = res[i].spread;
    residual.mutable_data()[i] = res[i].g_residual;
    support.mutable_data()[i] = res[i].weight_sum;
  }
  py::dict out;
  out["v"] = v;
  out["spread"] = spread;
  out["g_residual"] = residual;
  out["weight_sum"] = support;
  return out;
}

}  // namespace

void bind_oamlm(py::module_& m) {
  m.def(
      "oamlm_predict", &predict, py::arg("inputs"), py::arg("refs"), py::arg("d_in"), py::arg("B_c"), py::arg("B_g"),
      py::arg("T"), py::arg("sigma2"), py::arg("n_triangles") = 10, py::arg("loss") = "analytic",
      py::arg("sigma1") = 0.25,
      "OAMLM directions (analytic loss, eqs. 15-17, or numeric, eq. 14) and uncertainties: dict with v (n, 3), spread, "
      "g_residual (NaN without B_g) and weight_sum (n,).");
}

}  // namespace clusterforce::bindings
