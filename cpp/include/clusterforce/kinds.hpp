// The kinds registry: a model file's "kind" string -> the factory that builds its Predictor.
// Every kind registers itself the same way, the four built-in ones (models.hpp) and any extra
// kind compiled in with the CMake option CLUSTERFORCE_EXTRA_KINDS (docs/adding-a-kind.md):
//
//   inline std::unique_ptr<Predictor> make_morse_predictor(const ModelFile& mf) { ... }
//   inline const KindRegistrar morse_kind{"morse", make_morse_predictor};
//
// at namespace scope in the kind's header. The registrar runs while the extension or the LAMMPS
// plugin is loaded (an inline variable: once per shared object however many of its sources
// include the header), before anything reads a model file. make_predictor (models.hpp) looks the
// kind up here.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "baseline.hpp"
#include "local_model.hpp"
#include "modelfile.hpp"
#include "predictor.hpp"

namespace clusterforce {

/// The Predictor of a model file of one kind, without its training domain (make_predictor adds
/// it); ModelFileError naming the file and the field when the file does not describe one.
using KindFactory = std::function<std::unique_ptr<Predictor>(const ModelFile&)>;

namespace detail {

struct RegisteredKind {
  std::string name;
  KindFactory factory;
};

// Built on first use, so registrars in any source file of the shared object may run first.
inline std::vector<RegisteredKind>& kind_table() {
  static std::vector<RegisteredKind> table;
  return table;
}

}  // namespace detail

/// Add kind `name` (the "kind" string of its model files); std::logic_error if it is taken (at
/// load time that ends the process with the message: two kinds cannot share a file format).
inline void register_kind(std::string name, KindFactory factory) {
  if (name.empty() || !factory) throw std::logic_error("clusterforce: register_kind needs a name and a factory");
  for (const detail::RegisteredKind& k : detail::kind_table())
    if (k.name == name) throw std::logic_error("clusterforce: model kind '" + name + "' is registered twice");
  detail::kind_table().push_back({std::move(name), std::move(factory)});
}

/// Registers a kind when constructed; define one per kind as an inline variable in its header.
struct KindRegistrar {
  KindRegistrar(std::string name, KindFactory factory) { register_kind(std::move(name), std::move(factory)); }
};

/// The registered kinds' names, in registration order (the built-in ones first: gap, sann, dml, dart).
inline std::vector<std::string> registered_kinds() {
  std::vector<std::string> names;
  for (const detail::RegisteredKind& k : detail::kind_table()) names.push_back(k.name);
  return names;
}

/// Chemical symbols of a model file (metadata "elements"), in species order.
inline std::vector<std::string> model_elements(const ModelFile& mf) {
  const Json& meta = mf.metadata();
  if (!meta.contains("elements") || !meta.at("elements").is_array() || meta.at("elements").size() == 0)
    throw ModelFileError(mf.path() + ": metadata field 'elements' is missing or not a non-empty list");
  std::vector<std::string> out;
  for (std::size_t k = 0; k < meta.at("elements").size(); ++k) out.push_back(meta.at("elements").at(k).as_string());
  return out;
}

/// ModelFileError unless the model read from `mf` has one species per element of its metadata.
inline void check_species_count(const ModelFile& mf, const std::vector<std::string>& elements, int n_species) {
  const int s = static_cast<int>(elements.size());
  if (n_species != s)
    throw ModelFileError(mf.path() + ": metadata lists " + std::to_string(s) + " elements but the " + mf.kind() +
                         " model has " + std::to_string(n_species) + " species");
}

/// The factory of a kind with a cutoff: `read(mf)` gives its LocalModel (a std::shared_ptr to
/// it), which the structure driver runs with the file's repulsive wall (energy kinds; a
/// force-only kind applies its own) and training-distance limits (baseline.hpp).
template <class Read>
KindFactory local_kind(Read read) {
  return [read](const ModelFile& mf) -> std::unique_ptr<Predictor> {
    std::vector<std::string> elements = model_elements(mf);
    const int s = static_cast<int>(elements.size());
    std::shared_ptr<const LocalModel> model = read(mf);
    check_species_count(mf, elements, model->n_species());
    PairWall wall = model->has_energy() ? read_pair_wall(mf, s) : PairWall{};
    return std::make_unique<LocalPredictor>(mf.kind(), std::move(elements), std::move(model), std::move(wall),
                                            read_pair_limits(mf, s));
  };
}

namespace detail {

/// The Predictor of a model file of any registered kind, without its training domain.
inline std::unique_ptr<Predictor> make_kind_predictor(const ModelFile& mf) {
  for (const RegisteredKind& k : kind_table())
    if (k.name == mf.kind()) return k.factory(mf);
  std::string known;
  for (const std::string& name : registered_kinds()) known += (known.empty() ? "" : ", ") + name;
  throw ModelFileError(mf.path() + ": model kind '" + mf.kind() +
                       "' is not supported by this clusterforce (supported: " + known + ")");
}

}  // namespace detail

}  // namespace clusterforce
