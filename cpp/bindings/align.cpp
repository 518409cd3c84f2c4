// Bindings for cpp/include/clusterforce/align.hpp: SVD, Kabsch and batched alignment.
#include "clusterforce/align.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bindings.hpp"
#include "environment_arrays.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {

namespace {

Mat3 to_mat3(const DoubleArray& a, const char* name) {
  if (a.ndim() != 2 || a.shape(0) != 3 || a.shape(1) != 3)
    throw py::value_error(std::string(name) + " must have shape (3, 3)");
  Mat3 m;
  std::copy(a.data(), a.data() + 9, m.begin());
  return m;
}

DoubleArray from_mat3(const Mat3& m) {
  DoubleArray out({3, 3});
  std::copy(m.begin(), m.end(), out.mutable_data());
  return out;
}

py::tuple svd(const DoubleArray& A) {
  const Svd3 d = svd3(to_mat3(A, "A"));
  DoubleArray s(3);
  std::copy(d.s.begin(), d.s.end(), s.mutable_data());
  return py::make_tuple(from_mat3(d.U), s, from_mat3(d.V));
}

DoubleArray kabsch_py(const DoubleArray& p, const DoubleArray& s) {
  if (p.ndim() != 2 || p.shape(1) != 3 || s.ndim() != 2 || s.shape(1) != 3 || p.shape(0) != s.shape(0))
    throw py::value_error("p and s must both have shape (m, 3); got (" +
                          std::to_string(p.ndim() == 2 ? p.shape(0) : -1) + ", ...) and (" +
                          std::to_string(s.ndim() == 2 ? s.shape(0) : -1) + ", ...)");
  return from_mat3(kabsch(static_cast<std::size_t>(p.shape(0)), p.data(), s.data()));
}

py::tuple align_py(const py::dict& inputs, const py::dict& refs, int n_triangles, bool rotations) {
  const auto in = environments_from_dict(inputs, "input");
  const auto rf = environments_from_dict(refs, "reference");
  const auto n = static_cast<py::ssize_t>(in.size()), K = static_cast<py::ssize_t>(rf.size());
  DoubleArray g({n, K});
  DoubleArray R = rotations ? DoubleArray({n, K, py::ssize_t{3}, py::ssize_t{3}}) : DoubleArray();
  double* gp = g.mutable_data();
  double* Rp = rotations ? R.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    const ReferenceSet set(rf.data(), rf.size());
    align_batch(in.data(), in.size(), set, AlignOptions{n_triangles}, gp, Rp);
  }
  if (rotations) return py::make_tuple(g, R);
  return py::make_tuple(g, py::none());
}

py::tuple cosines_py(const py::dict& inputs, const py::dict& refs, const DoubleArray& y, const DoubleArray& t,
                     int n_triangles) {
  const auto in = environments_from_dict(inputs, "input");
  const auto rf = environments_from_dict(refs, "reference");
  const auto n = static_cast<py::ssize_t>(in.size()), K = static_cast<py::ssize_t>(rf.size());
  if (y.ndim() != 2 || y.shape(0) != n || y.shape(1) != 3)
    throw py::value_error("input unit forces must have shape (" + std::to_string(n) + ", 3)");
  if (t.ndim() != 2 || t.shape(0) != K || t.shape(1) != 3)
    throw py::value_error("reference unit forces must have shape (" + std::to_string(K) + ", 3)");
  DoubleArray Dc({n, K}), Dg({n, K});
  double* dc = Dc.mutable_data();
  double* dg = Dg.mutable_data();
  {
    py::gil_scoped_release release;
    const ReferenceSet set(rf.data(), rf.size());
    alignment_cosines(in.data(), in.size(), set, y.data(), t.data(), AlignOptions{n_triangles}, dc, dg);
  }
  return py::make_tuple(Dc, Dg);
}

}  // namespace

void bind_align(py::module_& m) {
  m.def("svd3", &svd, py::arg("A"), "SVD of a 3x3 matrix: (U, s, V) with A = U diag(s) V^T.");
  m.def("kabsch", &kabsch_py, py::arg("p"), py::arg("s"),
        "Proper rotation R minimising sum |p_k - R s_k|^2 (points relative to the centre).");
  m.def("align", &align_py, py::arg("inputs"), py::arg("refs"), py::arg("n_triangles") = 10,
        py::arg("rotations") = true,
        "Best alignment of every reference onto every input: (g (n, K), R (n, K, 3, 3) or None).");
  m.def("alignment_cosines", &cosines_py, py::arg("inputs"), py::arg("refs"), py::arg("y"), py::arg("t"),
        py::arg("n_triangles") = 10, "OAMLM training matrices (D_c, D_g), each (n, K).");
}

}  // namespace clusterforce::bindings
