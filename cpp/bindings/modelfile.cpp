// Exposes the C++ model-file reader so tests can check it reads what Python wrote.
#include "clusterforce/modelfile.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bindings.hpp"

namespace py = pybind11;

namespace clusterforce::bindings {
namespace {

py::object to_python(const Json& v) {
  switch (v.type()) {
    case Json::Type::Null:
      return py::none();
    case Json::Type::Bool:
      return py::bool_(v.as_bool());
    case Json::Type::Number:
      return py::float_(v.as_double());
    case Json::Type::String:
      return py::str(v.as_string());
    case Json::Type::Array: {
      py::list out;
      for (size_t i = 0; i < v.size(); ++i) out.append(to_python(v.at(i)));
      return std::move(out);
    }
    case Json::Type::Object: {
      py::dict out;
      for (const auto& [key, item] : v.items()) out[py::str(key)] = to_python(item);
      return std::move(out);
    }
  }
  return py::none();
}

py::dict read_model_file(const std::string& path) {
  ModelFile mf = [&] {
    py::gil_scoped_release release;
    return ModelFile::read(path);
  }();
  py::dict arrays;
  for (const auto& [name, t] : mf.tensors()) {
    std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
    if (t.dtype == "F64" || t.dtype == "F32") {
      py::array_t<double> a(shape);
      std::copy(t.f64.begin(), t.f64.end(), a.mutable_data());
      arrays[py::str(name)] = a;
    } else {
      py::array_t<int64_t> a(shape);
      std::copy(t.i64.begin(), t.i64.end(), a.mutable_data());
      arrays[py::str(name)] = a;
    }
  }
  py::dict out;
  out["kind"] = mf.kind();
  out["format_version"] = mf.format_version();
  out["clusterforce_version"] = mf.package_version();
  out["metadata"] = to_python(mf.metadata());
  out["arrays"] = arrays;
  return out;
}

}  // namespace

void bind_modelfile(py::module_& m) {
  py::register_exception<ModelFileError>(m, "ModelFileError", PyExc_ValueError);
  m.def("read_model_file", &read_model_file, py::arg("path"),
        "Read a .cfm model file with the C++ reader (the one LAMMPS uses): kind, format_version, "
        "clusterforce_version, metadata (parsed JSON) and arrays.");
}

}  // namespace clusterforce::bindings
