// Whole prediction path of the "dml" model kind, per centre atom (oamlm paper, FIG. 2):
// native SOAP -> min-max scaling -> EMLM norm |F| = d . W from Euclidean distances to the norm
// references, clamped to the training norm range -> OAMLM direction from distances to the
// direction references (d_c = d B_c) and the aligned neighbourhood -> F = |F| v. Per class
// (Au_core, S, ... or the element for generic chemistry), read from a .cfm file of kind "dml".
// Whole structures (Python, ASE) and LAMMPS neighbour lists run DmlPredictor::centre for every
// atom through the one structure driver (structure.hpp; the adapter is in models.hpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "align.hpp"
#include "baseline.hpp"
#include "distances.hpp"
#include "environments.hpp"
#include "modelfile.hpp"
#include "neighbors.hpp"
#include "oamlm.hpp"
#include "parallel.hpp"
#include "soap.hpp"

namespace clusterforce {

/// Atomic number of a chemical symbol (H..Og), 0 if unknown.
inline int atomic_number(const std::string& symbol) {
  static const std::array<const char*, 118> symbols = {
      "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",  "S",  "Cl",
      "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se",
      "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb",
      "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er",
      "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At",
      "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No",
      "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
  for (std::size_t k = 0; k < symbols.size(); ++k)
    if (symbol == symbols[k]) return static_cast<int>(k) + 1;
  return 0;
}

struct DmlCentre {
  double force[3] = {0.0, 0.0, 0.0};  // eV/Angstrom
  double norm = 0.0;                  // |F|, eV/Angstrom
  double spread = 0.0;                // OAMLM spread in [0, 1]
  // Expected force error, eV/Angstrom: |F| sqrt(2 spread), the chord |F| 2 sin(theta / 2) of a
  // direction error theta with 1 - cos(theta) = spread. On held-out ring6 (rings 4, 5 trained)
  // it ranks the actual per-atom errors better than the spread alone (Spearman 0.31-0.42 per
  // class against 0.13-0.24) and matches their RMS within 1.5x (docs/benchmarks.md).
  double uncertainty = 0.0;
  int class_index = -1;  // into DmlPredictor::classes()
};

class DmlPredictor {
 public:
  /// Scratch space of one thread; make one per thread with make_workspace().
  struct Workspace {
    SoapGTO::Workspace soap;
    std::vector<double> p, d, dc, scratch;
    std::vector<int> soap_species, z;
  };

  static DmlPredictor from_modelfile(const ModelFile& mf) {
    const std::string& path = mf.path();
    if (mf.kind() != "dml") throw ModelFileError(path + ": model kind is '" + mf.kind() + "', expected 'dml'");
    const Json& meta = mf.metadata();
    DmlPredictor p;
    const Json& desc = field(meta, "descriptor", path);
    const std::string backend = field(desc, "backend", path).as_string();
    if (backend != "dscribe-soap-gto")
      throw ModelFileError(path + ": descriptor backend '" + backend +
                           "' is not supported (expected dscribe-soap-gto)");
    const Json& elements = field(meta, "elements", path);
    for (std::size_t k = 0; k < elements.size(); ++k) {
      const std::string s = elements.at(k).as_string();
      const int z = atomic_number(s);
      if (z == 0) throw ModelFileError(path + ": metadata field 'elements' has unknown chemical symbol '" + s + "'");
      p.elements_.push_back(s);
      p.z_.push_back(z);
    }
    if (p.elements_.empty()) throw ModelFileError(path + ": metadata field 'elements' is empty");
    const std::string chemistry = field(meta, "chemistry", path).as_string();
    if (chemistry != "generic" && chemistry != "thiolate")
      throw ModelFileError(path + ": metadata field 'chemistry' is '" + chemistry + "', expected generic or thiolate");
    p.chemistry_ = chemistry == "thiolate" ? Chemistry::Thiolate : Chemistry::Generic;
    try {
      p.soap_ = std::make_shared<SoapGTO>(
          field(desc, "r_cut", path).as_double(), static_cast<int>(field(desc, "n_max", path).as_int()),
          static_cast<int>(field(desc, "l_max", path).as_int()), field(desc, "sigma", path).as_double(), p.z_);
    } catch (const std::invalid_argument& e) {
      throw ModelFileError(path + ": descriptor: " + e.what());
    }
    // SOAP species indices follow sorted atomic numbers; elements are in file order.
    const std::vector<int> sorted_z = [&] {
      std::vector<int> z = p.z_;
      std::sort(z.begin(), z.end());
      return z;
    }();
    for (int z : p.z_)
      p.soap_index_.push_back(
          static_cast<int>(std::lower_bound(sorted_z.begin(), sorted_z.end(), z) - sorted_z.begin()));
    const int64_t F = static_cast<int64_t>(p.soap_->n_features());

    const Json& classes = field(meta, "classes", path);
    const Json& models = field(meta, "models", path);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      const std::string name = classes.at(c).as_string();
      const std::string pre = "classes/" + name + "/";
      const std::string where = path + ": class " + name;
      const Json& oamlm_params = field(field(models, name, path), "oamlm", where);
      const Json& sigma2 = field(oamlm_params, "sigma2", where);
      auto m = std::make_unique<ClassModel>();
      m->name = name;
      m->data_min = mf.f64(pre + "scaler/data_min", {F});
      m->scale = mf.f64(pre + "scaler/scale", {F});
      // Reference descriptors: recomputed from the stored neighbourhoods of the reference atoms
      // (files before those existed store the scaled descriptors themselves).
      const bool centres = mf.has(pre + "centres/offsets");
      const std::vector<double> X =
          centres ? p.centre_descriptors(mf, pre, m->data_min, m->scale) : std::vector<double>{};
      std::vector<double> emlm_refs, x_ref;
      const int64_t ke = centres ? p.reference_rows(mf, pre + "emlm/reference_index", X, F, emlm_refs, where)
                                 : p.stored_descriptors(mf, pre + "emlm/references", F, emlm_refs, where);
      m->emlm_coef = mf.f64(pre + "emlm/coef", {ke});
      // Older files have no output range: their norms are only bounded below.
      if (mf.has(pre + "emlm/output_range")) {
        const std::vector<double> range = mf.f64(pre + "emlm/output_range", {2});
        m->norm_min = std::max(range[0], 0.0);
        m->norm_max = range[1];
      }
      const int64_t k = centres ? p.reference_rows(mf, pre + "oamlm/reference_index", X, F, x_ref, where)
                                : p.stored_descriptors(mf, pre + "oamlm/X_ref", F, x_ref, where);
      m->merge_references(x_ref, emlm_refs, static_cast<std::size_t>(F));
      m->B_c = mf.f64(pre + "oamlm/B_c", {k, k});
      m->B_c32.assign(m->B_c.begin(), m->B_c.end());
      if (!std::equal(m->B_c.begin(), m->B_c.end(), m->B_c32.begin())) m->B_c32.clear();
      // oamlm/B_g is not read: it only predicts OAMLM's alignment residual, which DmlCentre
      // does not report.
      m->T = mf.f64(pre + "oamlm/T", {k, 3});
      const std::string r = pre + "oamlm/references/";
      try {
        const std::vector<Environment> envs = pack_environments(
            static_cast<std::size_t>(k), mf.i64(r + "scheme", {k}).data(), mf.i64(r + "element", {k}).data(),
            mf.i64(r + "n_cloud", {k}).data(), mf.i64(r + "n_lead", {k}).data(), mf.i64(r + "flags", {k}).data(),
            mf.f64(r + "anchors", {k, kMaxAnchors, 3}).data(), mf.f64(r + "cloud", {k, kMaxCloud, 3}).data(), name,
            mf.has(r + "cloud_weight") ? mf.f64(r + "cloud_weight", {k, kMaxCloud}).data() : nullptr);
        // Smooth environments (the smooth cloud schemes) in a file make the inputs smooth too.
        for (const Environment& e : envs) p.smooth_ = p.smooth_ || kSchemes[static_cast<std::size_t>(e.scheme)].smooth;
        m->refs = std::make_unique<ReferenceSet>(envs.data(), envs.size());
        m->oamlm = OamlmModel{m->refs.get(), m->B_c.data(), nullptr, m->T.data(), sigma2.as_double(), AlignOptions{}};
        m->oamlm.loss = parse_loss(field(oamlm_params, "loss", where).as_string());
        m->oamlm.sigma1 = field(oamlm_params, "sigma1", where).as_double();
        check_model(m->oamlm);
        check_references(*m->refs, m->oamlm.options);
      } catch (const std::invalid_argument& e) {
        throw ModelFileError(where + ": " + e.what());
      } catch (const std::out_of_range& e) {
        throw ModelFileError(where + ": " + e.what());
      }
      p.classes_.push_back(name);
      p.models_.push_back(std::move(m));
    }
    if (p.models_.empty()) throw ModelFileError(path + ": metadata field 'classes' is empty");
    p.baseline_ = read_pair_wall(mf, static_cast<int>(p.elements_.size()));
    return p;
  }

  const std::vector<std::string>& elements() const { return elements_; }
  const std::vector<std::string>& classes() const { return classes_; }
  /// Neighbours farther than this (Angstrom) change nothing: SOAP reach and environment cutoff.
  double cutoff() const { return std::max({soap_->cutoff(), kEnvironmentCutoff, baseline_.cutoff()}); }

  Workspace make_workspace() const {
    Workspace ws;
    ws.soap = soap_->make_workspace();
    ws.p.resize(soap_->n_features());
    return ws;
  }

  /// Force on a centre of element index `element` (into elements()) from its neighbours'
  /// relative positions rel (n x 3, Angstrom) and element indices.
  DmlCentre centre(int element, const double* rel, const int* neighbour_elements, int n, Workspace& ws) const {
    Environment env;
    const int c = describe(element, rel, neighbour_elements, n, ws, ws.p.data(), env);
    ws.d.resize(models_[static_cast<std::size_t>(c)]->n_rows());
    reference_distances(c, ws.p.data(), &env, 1, ws.d.data());
    ws.dc.resize(models_[static_cast<std::size_t>(c)]->refs->size());
    project(c, ws.d.data(), 1, ws.dc.data());
    DmlCentre out = finish(c, ws.d.data(), ws.dc.data(), env, ws);
    add_wall(element, rel, neighbour_elements, n, out);
    return out;
  }

  /// centre() for `count` centres at once: centre i has element elements[i] and neighbours
  /// offsets[i] .. offsets[i + 1] of rel (x 3, Angstrom) and neighbour_elements. The centres of
  /// each class share one pass of the distance kernel over the class's reference rows (the
  /// rows are read once per block instead of once per centre); descriptors and directions run
  /// on the OpenMP threads. Call it outside a parallel region. Results equal centre()'s bitwise.
  void centres(const int* elements, const int64_t* offsets, const double* rel, const int* neighbour_elements,
               std::size_t count, DmlCentre* out) const {
    const std::size_t F = soap_->n_features();
    std::vector<double> P(count * F);
    std::vector<Environment> envs(count);
    std::vector<int> cls(count);
    const auto n_of = [&](std::size_t i) { return static_cast<int>(offsets[i + 1] - offsets[i]); };
    const auto workspace = [&] { return make_workspace(); };
    parallel_for_with(
        static_cast<int64_t>(count), workspace,
        [&](Workspace& ws, int64_t i) {
          const int64_t o = offsets[i];
          cls[i] = describe(elements[i], rel + 3 * o, neighbour_elements + o, n_of(static_cast<std::size_t>(i)), ws,
                            P.data() + static_cast<std::size_t>(i) * F, envs[i]);
        },
        Schedule::dynamic_chunks());
    std::vector<std::size_t> members;
    std::vector<double> Pc, d, dc;
    std::vector<Environment> envc;
    for (std::size_t c = 0; c < models_.size(); ++c) {
      members.clear();
      for (std::size_t i = 0; i < count; ++i)
        if (cls[i] == static_cast<int>(c)) members.push_back(i);
      const std::size_t rows = models_[c]->n_rows();
      for (std::size_t b0 = 0; b0 < members.size(); b0 += kBlockCentres) {
        const std::size_t nb = std::min(kBlockCentres, members.size() - b0);
        Pc.resize(nb * F);
        envc.resize(nb);
        for (std::size_t r = 0; r < nb; ++r) {
          const std::size_t i = members[b0 + r];
          std::copy(P.begin() + static_cast<std::ptrdiff_t>(i * F),
                    P.begin() + static_cast<std::ptrdiff_t>((i + 1) * F),
                    Pc.begin() + static_cast<std::ptrdiff_t>(r * F));
          envc[r] = envs[i];
        }
        d.resize(nb * rows);
        reference_distances(static_cast<int>(c), Pc.data(), envc.data(), nb, d.data());
        // The predicted cosines of the whole block: B_c (K x K, the largest array of a class)
        // is streamed once per 16 centres instead of once per centre; same sums, same order.
        const std::size_t K = models_[c]->refs->size();
        dc.resize(nb * K);
        project(static_cast<int>(c), d.data(), nb, dc.data());
        parallel_for_with(
            static_cast<int64_t>(nb), workspace,
            [&](Workspace& ws, int64_t r) {
              const std::size_t i = members[b0 + static_cast<std::size_t>(r)];
              out[i] = finish(static_cast<int>(c), d.data() + static_cast<std::size_t>(r) * rows,
                              dc.data() + static_cast<std::size_t>(r) * K, envc[r], ws);
              const int64_t o = offsets[i];
              add_wall(elements[i], rel + 3 * o, neighbour_elements + o, n_of(i), out[i]);
            },
            Schedule::dynamic_chunks());
      }
    }
  }

 private:
  /// Environment, class index and min-max scaled SOAP vector p (F) of one centre.
  int describe(int element, const double* rel, const int* neighbour_elements, int n, Workspace& ws, double* p,
               Environment& env) const {
    check_element(element, "centre");
    ws.soap_species.resize(n);
    ws.z.resize(n);
    for (int j = 0; j < n; ++j) {
      check_element(neighbour_elements[j], "neighbour");
      ws.soap_species[j] = soap_index_[neighbour_elements[j]];
      ws.z[j] = z_[neighbour_elements[j]];
    }
    env = build_environment(chemistry_, z_[element], static_cast<std::size_t>(n), ws.z.data(), rel, smooth_);
    const std::string name = class_name(env);
    const auto it = std::find(classes_.begin(), classes_.end(), name);
    if (it == classes_.end())
      throw std::invalid_argument("element " + elements_[element] + " is of class " + name +
                                  ", which had no training data (trained classes: " + joined(classes_) +
                                  "); add training frames with " + name + " atoms");
    const ClassModel& m = *models_[it - classes_.begin()];
    const std::size_t F = soap_->n_features();
    soap_->compute_center(soap_index_[element], static_cast<std::size_t>(n), rel, ws.soap_species.data(), p, nullptr,
                          ws.soap);
    for (std::size_t f = 0; f < F; ++f) p[f] = (p[f] - m.data_min[f]) * m.scale[f];
    return static_cast<int>(it - classes_.begin());
  }

  // Centres per distance pass: below distances.hpp's kDirectRows the rows kernel runs, whose
  // operation order per distance is that of a single centre (block and per-centre results are
  // bitwise equal); its X rows (31 x F doubles) stay in L2 while the references stream past.
  static constexpr std::size_t kBlockCentres = detail::kDirectRows - 1;

  /// Euclidean distances d (count x n_rows) of `count` centres of class c, from their scaled
  /// SOAP vectors P (count x F), to the class's reference rows; one pass of the SIMD kernel
  /// serves the norm and the direction references.
  void reference_distances(int c, const double* P, const Environment* envs, std::size_t count, double* d) const {
    const ClassModel& m = *models_[static_cast<std::size_t>(c)];
    check_inputs(envs, count, *m.refs);
    // Exact differences, not the Gram form: a held-out centre can lie close to a reference,
    // where |x|^2 + |y|^2 - 2 x.y loses digits the norms would amplify.
    euclidean_distances(P, count, m.X.data(), m.n_rows(), soap_->n_features(), d, DistanceOptions{DistanceMode::exact});
  }

  /// Predicted cosines dc (count x K) = d B_c of `count` centres of class c from their
  /// distances d (count x n_rows; the direction references are the first K rows).
  void project(int c, const double* d, std::size_t count, double* dc) const {
    const ClassModel& m = *models_[static_cast<std::size_t>(c)];
    const std::size_t K = m.refs->size();
    if (m.B_c32.empty())
      project_distances(d, count, K, m.B_c.data(), dc, m.n_rows());
    else
      project_distances(d, count, K, m.B_c32.data(), dc, m.n_rows());
  }

  /// Norm and direction of a centre of class c from its distances d (n_rows) to the references
  /// and its predicted cosines dc (K).
  DmlCentre finish(int c, const double* d, const double* dc, const Environment& env, Workspace& ws) const {
    const ClassModel& m = *models_[static_cast<std::size_t>(c)];
    const std::size_t K = m.refs->size();
    ws.scratch.resize(5 * K);
    double norm = 0.0;
    for (std::size_t k = 0; k < m.emlm_coef.size(); ++k) norm += d[m.emlm_rows[k]] * m.emlm_coef[k];
    DmlCentre out;
    out.class_index = c;
    // presence < 1 only in smooth environments whose neighbours are leaving the cloud: the force
    // fades out with them instead of keeping its size until the last one is gone.
    out.norm = std::clamp(norm, m.norm_min, m.norm_max) * env.presence;
    const OamlmResult r = oamlm_direction(m.oamlm, env, dc, nullptr, ws.scratch.data());
    for (int x = 0; x < 3; ++x) out.force[x] = out.norm * r.v[x];
    out.spread = r.spread;
    out.uncertainty = out.norm * std::sqrt(2.0 * r.spread);
    return out;
  }

  // The repulsive wall's direct force on a centre (files that carry one).
  void add_wall(int element, const double* rel, const int* neighbour_elements, int n, DmlCentre& out) const {
    if (baseline_.active()) baseline_.centre_force(element, rel, neighbour_elements, n, out.force);
  }

  // Scaled SOAP vectors (n_centres x F) of the class's reference atoms, from their stored
  // neighbourhoods (Neighbourhoods in dml/descriptor.py).
  std::vector<double> centre_descriptors(const ModelFile& mf, const std::string& pre,
                                         const std::vector<double>& data_min, const std::vector<double>& scale) const {
    const std::string c = pre + "centres/";
    const Tensor& numbers = mf.tensor(c + "numbers");
    const Tensor& neighbors = mf.tensor(c + "neighbor_numbers");
    if (numbers.shape.size() != 1 || neighbors.shape.size() != 1)
      throw ModelFileError(mf.path() + ": fields '" + c + "numbers' and '" + c + "neighbor_numbers' must be 1-D");
    const int64_t n = numbers.shape[0], n_rel = neighbors.shape[0];
    const std::vector<int64_t>& offsets = mf.i64(c + "offsets", {n + 1});
    const std::vector<double>& rel = mf.f64(c + "rel", {n_rel, 3});
    const auto species_of = [&](const std::vector<int64_t>& z, const std::string& name) {
      std::vector<int> out(z.size());
      for (std::size_t k = 0; k < z.size(); ++k) {
        out[k] = z[k] > 0 && z[k] < 1000 ? soap_->species_index(static_cast<int>(z[k])) : -1;
        if (out[k] < 0)
          throw ModelFileError(mf.path() + ": field '" + c + name + "' holds atomic number " + std::to_string(z[k]) +
                               ", which is not one of the model's elements");
      }
      return out;
    };
    const std::vector<int> centre_species = species_of(mf.i64(c + "numbers", {n}), "numbers");
    const std::vector<int> neighbor_species = species_of(mf.i64(c + "neighbor_numbers", {n_rel}), "neighbor_numbers");
    const std::size_t F = soap_->n_features();
    std::vector<double> X(static_cast<std::size_t>(n) * F);
    try {
      compute_neighbourhoods(*soap_, static_cast<std::size_t>(n), centre_species.data(), offsets.data(),
                             static_cast<std::size_t>(n_rel), rel.data(), neighbor_species.data(), X.data());
    } catch (const std::invalid_argument& e) {
      throw ModelFileError(mf.path() + ": fields '" + c + "*': " + e.what());
    }
    for (std::size_t r = 0; r < static_cast<std::size_t>(n); ++r)
      for (std::size_t f = 0; f < F; ++f) X[r * F + f] = (X[r * F + f] - data_min[f]) * scale[f];
    return X;
  }

  // out = the rows `index` (a 1-D field) of X (n x F); returns the number of rows.
  static int64_t reference_rows(const ModelFile& mf, const std::string& index, const std::vector<double>& X, int64_t F,
                                std::vector<double>& out, const std::string& where) {
    const Tensor& t = mf.tensor(index);
    if (t.shape.size() != 1 || t.shape[0] < 1)
      throw ModelFileError(where + ": field '" + index + "' must be a non-empty 1-D index");
    const int64_t n = static_cast<int64_t>(X.size()) / F, k = t.shape[0];
    const std::vector<int64_t>& rows = mf.i64(index, {k});
    out.resize(static_cast<std::size_t>(k * F));
    for (int64_t i = 0; i < k; ++i) {
      if (rows[i] < 0 || rows[i] >= n)
        throw ModelFileError(where + ": field '" + index + "' has row " + std::to_string(rows[i]) + " of " +
                             std::to_string(n) + " centres");
      std::copy(X.begin() + rows[i] * F, X.begin() + (rows[i] + 1) * F, out.begin() + i * F);
    }
    return k;
  }

  // out = a stored (K, F) descriptor array; returns K.
  static int64_t stored_descriptors(const ModelFile& mf, const std::string& name, int64_t F, std::vector<double>& out,
                                    const std::string& where) {
    const Tensor& t = mf.tensor(name);
    if (t.shape.size() != 2 || t.shape[1] != F)
      throw ModelFileError(where + ": field '" + name + "' has shape " + shape_string(t.shape) + ", expected (K, " +
                           std::to_string(F) + ")");
    out = mf.f64(name, {t.shape[0], F});
    return t.shape[0];
  }

  struct ClassModel {
    std::string name;
    std::vector<double> data_min, scale, emlm_coef, B_c, T;
    // B_c as float when every entry is a float32 value (files store it so): the same
    // projection from half the memory traffic; empty otherwise.
    std::vector<float> B_c32;
    // Reference descriptors (rows x F): the K direction references (rows 0..K-1), then the norm
    // references that are not among them; emlm_rows[k] is the row of norm reference k. In files
    // with centres the direction references are norm references too, so a centre reads each
    // reference descriptor once.
    std::vector<double> X;
    std::vector<std::size_t> emlm_rows;
    // EMLM norms are clamped to the training range (eV/Angstrom): d . W is linear in the
    // distances and grows without bound away from the data.
    double norm_min = 0.0, norm_max = std::numeric_limits<double>::infinity();
    std::unique_ptr<ReferenceSet> refs;
    OamlmModel oamlm;

    std::size_t n_rows() const { return X.size() / std::max<std::size_t>(data_min.size(), 1); }

    // X = direction references, then the norm references not already there (bitwise equal rows
    // give equal distances, so merging them changes no result).
    void merge_references(const std::vector<double>& direction, const std::vector<double>& norm, std::size_t F) {
      X = direction;
      std::unordered_map<std::string_view, std::size_t> row_of;
      const auto key = [&](std::size_t r) {
        return std::string_view(reinterpret_cast<const char*>(X.data() + r * F), F * sizeof(double));
      };
      const std::size_t K = direction.size() / F, ke = norm.size() / F;
      X.reserve(direction.size() + norm.size());  // no reallocation: the keys point into X
      for (std::size_t r = 0; r < K; ++r) row_of.emplace(key(r), r);
      emlm_rows.resize(ke);
      for (std::size_t k = 0; k < ke; ++k) {
        const std::string_view row(reinterpret_cast<const char*>(norm.data() + k * F), F * sizeof(double));
        const auto it = row_of.find(row);
        if (it != row_of.end()) {
          emlm_rows[k] = it->second;
          continue;
        }
        emlm_rows[k] = X.size() / F;
        X.insert(X.end(), norm.begin() + static_cast<std::ptrdiff_t>(k * F),
                 norm.begin() + static_cast<std::ptrdiff_t>((k + 1) * F));
        row_of.emplace(key(emlm_rows[k]), emlm_rows[k]);
      }
    }
  };

  static const Json& field(const Json& obj, const std::string& key, const std::string& where) {
    if (!obj.is_object() || !obj.contains(key))
      throw ModelFileError(where + ": metadata field '" + key + "' is missing");
    return obj.at(key);
  }

  static std::string joined(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  std::string class_name(const Environment& env) const {
    const char* name = kSchemes[static_cast<std::size_t>(env.scheme)].class_name;
    if (name[0] != '\0') return name;
    for (std::size_t e = 0; e < z_.size(); ++e)
      if (z_[e] == env.element) return elements_[e];
    return "Z" + std::to_string(env.element);
  }

  void check_element(int e, const char* what) const {
    if (e < 0 || e >= static_cast<int>(elements_.size()))
      throw std::out_of_range(std::string(what) + " element index " + std::to_string(e) + " outside [0, " +
                              std::to_string(elements_.size()) + ")");
  }

  std::vector<std::string> elements_, classes_;
  PairWall baseline_;  // repulsive wall below the shortest training distances (baseline.hpp)
  std::vector<int> z_, soap_index_;
  Chemistry chemistry_ = Chemistry::Generic;
  bool smooth_ = false;  // build inputs with the smooth cloud schemes (files whose references have them)
  std::shared_ptr<SoapGTO> soap_;
  std::vector<std::unique_ptr<ClassModel>> models_;
};

}  // namespace clusterforce
