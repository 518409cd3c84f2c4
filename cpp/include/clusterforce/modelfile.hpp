// Reader for the .cfm model file (safetensors layout), the C++ twin of clusterforce/core/modelfile.py.
//
// Layout: 8-byte little-endian header length, JSON header, raw little-endian float64/float32/int64
// data. The header's "__metadata__" holds format_version, kind, clusterforce_version, checksum and
// "metadata" (the JSON text of everything else). The checksum (format_version 2) is "crc32:" and 8
// lowercase hex digits, the zlib CRC-32 of the whole file with those digits read as "00000000"
// (docs/model-file.md).
// float32 arrays are widened to double on reading. Every failure throws ModelFileError (a
// std::runtime_error) naming the file and the field, so the LAMMPS pair style can pass the message on.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.hpp"

namespace clusterforce {

constexpr int kModelFormatVersion = 2;
constexpr int kOldestModelFormatVersion = 1;  // no checksum, float64 only

/// zlib's CRC-32 (polynomial 0xEDB88320) of `size` bytes, continuing from `crc`.
inline uint32_t crc32(const char* data, size_t size, uint32_t crc = 0) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ static_cast<unsigned char>(data[i])) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

/// A model file that cannot be read or lacks what its reader needs; the message names the file.
// Offset of the first byte that breaks UTF-8 in text, or text.size() if it is all valid. The
// header is JSON, which is UTF-8; a damaged byte there must become a message naming the file,
// not a string Python cannot decode.
inline size_t first_invalid_utf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > text.size()) return i;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(text[i + k]) >> 6) != 0x2) return i;
    i += n;
  }
  return text.size();
}

class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Tensor {
  std::string name;
  std::string dtype;  // "F64", "F32" (widened into f64 on reading) or "I64"
  std::vector<int64_t> shape;
  std::vector<double> f64;
  std::vector<int64_t> i64;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
};

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

class ModelFile {
 public:
  /// Read the file at `path` (all of it, then parse it with from_bytes).
  static ModelFile read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ModelFileError(path + ": model file not found or not readable");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw ModelFileError(path + ": read error");
    return from_bytes(bytes, path);
  }

  /// Parse a model file held in memory (e.g. read on one MPI rank and broadcast); `source`
  /// names the file (or where the bytes came from) in every error message.
  static ModelFile from_bytes(const std::string& bytes, const std::string& source) {
    const std::string& path = source;
    ModelFile mf;
    mf.path_ = path;
    const auto size = static_cast<uint64_t>(bytes.size());
    if (size < 8)
      throw ModelFileError(path + ": truncated model file (" + std::to_string(size) +
                           " bytes, not even a header length)");
    uint64_t n_header = 0;
    for (int b = 7; b >= 0; --b) n_header = (n_header << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(b)]);
    if (n_header > 100ull * 1024 * 1024)
      throw ModelFileError(path + ": not a clusterforce model file (header length " + std::to_string(n_header) +
                           " bytes is implausible)");
    if (8 + n_header > size)
      throw ModelFileError(path + ": truncated model file (header needs " + std::to_string(n_header) +
                           " bytes, file has " + std::to_string(size - 8) + ")");
    const std::string header_text = bytes.substr(8, static_cast<size_t>(n_header));
    if (const size_t bad = first_invalid_utf8(header_text); bad < header_text.size())
      throw ModelFileError(path + ": damaged model file (byte " + std::to_string(8 + bad) +
                           ", in the header, is not UTF-8 text); copy it again or retrain");
    const uint64_t data_size = size - 8 - n_header;
    const char* data = bytes.data() + 8 + n_header;
    Json header;
    try {
      header = Json::parse(header_text);
    } catch (const std::exception& e) {
      throw ModelFileError(path + ": not a clusterforce model file (header: " + e.what() + ")");
    }
    if (!header.is_object() || !header.contains("__metadata__"))
      throw ModelFileError(path + ": not a clusterforce model file (no __metadata__ in the header)");
    const Json& meta = header.at("__metadata__");
    if (!meta.contains("format_version") || !meta.contains("kind"))
      throw ModelFileError(path + ": not a clusterforce model file (no format_version/kind in __metadata__)");
    const std::string version_text = meta.at("format_version").as_string();
    char* end = nullptr;
    const long version = std::strtol(version_text.c_str(), &end, 10);
    if (end == version_text.c_str() || *end != '\0')
      throw ModelFileError(path + ": field 'format_version' is '" + version_text + "', not an integer");
    if (version < kOldestModelFormatVersion || version > kModelFormatVersion)
      throw ModelFileError(path + ": unknown format_version " + version_text + "; this build reads format_version " +
                           std::to_string(kOldestModelFormatVersion) + " to " + std::to_string(kModelFormatVersion) +
                           " - use the clusterforce version that wrote the file");
    if (version >= 2 && !meta.contains("checksum"))
      throw ModelFileError(path + ": no checksum in a format_version " + version_text +
                           " file; the file is damaged: copy it again or retrain");
    mf.format_version_ = static_cast<int>(version);
    mf.kind_ = meta.at("kind").as_string();
    if (meta.contains("clusterforce_version")) mf.package_version_ = meta.at("clusterforce_version").as_string();
    try {
      mf.metadata_ = meta.contains("metadata") ? Json::parse(meta.at("metadata").as_string()) : Json::parse("{}");
    } catch (const std::exception& e) {
      throw ModelFileError(path + ": field 'metadata' is not valid JSON (" + e.what() + ")");
    }

    std::map<std::string, std::pair<uint64_t, uint64_t>> spans;  // name -> (offset, bytes) in the data section
    for (const auto& [name, info] : header.items()) {
      if (name == "__metadata__") continue;
      Tensor t;
      t.name = name;
      uint64_t begin = 0, stop = 0;
      try {
        t.dtype = info.at("dtype").as_string();
        const Json& shape = info.at("shape");
        for (size_t i = 0; i < shape.size(); ++i) t.shape.push_back(shape.at(i).as_int());
        begin = static_cast<uint64_t>(info.at("data_offsets").at(0).as_int());
        stop = static_cast<uint64_t>(info.at("data_offsets").at(1).as_int());
      } catch (const std::exception& e) {
        throw ModelFileError(path + ": field '" + name + "' has a malformed header entry (" + e.what() + ")");
      }
      if (t.dtype != "F64" && t.dtype != "F32" && t.dtype != "I64")
        throw ModelFileError(path + ": field '" + name + "' has dtype " + t.dtype +
                             "; only F64, F32 and I64 are supported");
      const uint64_t expected = static_cast<uint64_t>(t.numel()) * (t.dtype == "F32" ? 4 : 8);
      if (stop < begin || stop - begin != expected)
        throw ModelFileError(path + ": field '" + name + "' holds " + std::to_string(stop - begin) +
                             " bytes but shape " + shape_string(t.shape) + " needs " + std::to_string(expected));
      if (stop > data_size)
        throw ModelFileError(path + ": truncated model file (field '" + name + "' ends at byte " +
                             std::to_string(stop) + " of a " + std::to_string(data_size) + "-byte data section)");
      spans.emplace(name, std::make_pair(begin, expected));
      mf.tensors_.emplace(name, std::move(t));
    }
    if (version >= 2) verify_checksum(bytes, n_header, meta.at("checksum").as_string(), path);
    for (auto& [name, t] : mf.tensors_) {
      const auto [begin, expected] = spans.at(name);
      // Little-endian on disk; every platform LAMMPS and CPython wheels target here is little-endian too.
      if (t.dtype == "F64") {
        t.f64.resize(static_cast<size_t>(t.numel()));
        if (expected) std::memcpy(t.f64.data(), data + begin, static_cast<size_t>(expected));
      } else if (t.dtype == "F32") {
        std::vector<float> narrow(static_cast<size_t>(t.numel()));
        if (expected) std::memcpy(narrow.data(), data + begin, static_cast<size_t>(expected));
        t.f64.assign(narrow.begin(), narrow.end());
      } else {
        t.i64.resize(static_cast<size_t>(t.numel()));
        if (expected) std::memcpy(t.i64.data(), data + begin, static_cast<size_t>(expected));
      }
    }
    return mf;
  }

  /// Throw unless the CRC-32 of `bytes`, with the checksum's 8 hex digits read as '0', equals `stored`.
  static void verify_checksum(const std::string& bytes, uint64_t n_header, const std::string& stored,
                              const std::string& path) {
    static const std::string key = "\"checksum\":\"crc32:";
    const size_t at = bytes.substr(8, static_cast<size_t>(n_header)).find(key);
    const size_t digits = at == std::string::npos ? std::string::npos : 8 + at + key.size();
    if (stored.size() != 14 || stored.compare(0, 6, "crc32:") != 0 || digits == std::string::npos ||
        bytes.compare(digits, 8, stored, 6, 8) != 0)
      throw ModelFileError(path + ": field 'checksum' is damaged ('" + stored +
                           "'); the file is damaged: copy it again or retrain");
    uint32_t crc = crc32(bytes.data(), digits);
    crc = crc32("00000000", 8, crc);
    crc = crc32(bytes.data() + digits + 8, bytes.size() - digits - 8, crc);
    char computed[9];
    std::snprintf(computed, sizeof computed, "%08x", crc);
    if (stored.compare(6, 8, computed) != 0)
      throw ModelFileError(path + ": checksum mismatch (stored " + stored.substr(6) + ", computed " + computed +
                           "): the file is damaged; copy it again or retrain");
  }

  const std::string& path() const { return path_; }
  const std::string& kind() const { return kind_; }
  int format_version() const { return format_version_; }
  const std::string& package_version() const { return package_version_; }
  const Json& metadata() const { return metadata_; }
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return tensors_.count(name) > 0; }

  const Tensor& tensor(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end())
      throw ModelFileError(path_ + ": field '" + name +
                           "' is missing; the file was not written by this model kind or is damaged");
    return it->second;
  }

  /// float64 data of `name`; `expected_shape` entries < 0 match any length.
  const std::vector<double>& f64(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const {
    const Tensor& t = checked(name, "F64", expected_shape);
    return t.f64;
  }
  const std::vector<int64_t>& i64(const std::string& name, const std::vector<int64_t>& expected_shape = {}) const {
    const Tensor& t = checked(name, "I64", expected_shape);
    return t.i64;
  }

 private:
  std::string path_, kind_, package_version_;
  int format_version_ = 0;
  Json metadata_;
  std::map<std::string, Tensor> tensors_;

  const Tensor& checked(const std::string& name, const char* dtype, const std::vector<int64_t>& expected_shape) const {
    const Tensor& t = tensor(name);
    const bool widened = t.dtype == "F32" && std::strcmp(dtype, "F64") == 0;  // float32 on disk, double here
    if (t.dtype != dtype && !widened)
      throw ModelFileError(path_ + ": field '" + name + "' has dtype " + t.dtype + ", expected " + dtype);
    if (!expected_shape.empty()) {
      bool ok = expected_shape.size() == t.shape.size();
      for (size_t i = 0; ok && i < t.shape.size(); ++i) ok = expected_shape[i] < 0 || expected_shape[i] == t.shape[i];
      if (!ok)
        throw ModelFileError(path_ + ": field '" + name + "' has shape " + shape_string(t.shape) + ", expected " +
                             shape_string(expected_shape));
    }
    return t;
  }
};

}  // namespace clusterforce
