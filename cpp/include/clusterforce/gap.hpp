// GAP-style sparse Gaussian process prediction: sum of n-body terms (2b, 3b; gap_nbody.hpp) and
// SOAP (gap_soap.hpp), the whole-structure variances and the .cfm reader. Whole structures are
// predicted by the structure driver (structure.hpp) through the per-centre energy.
//
// Local energy of centre i: e0[s_i] + sum_t sum_{instances of i} w * sum_m alpha_{t,m} k_t(q, q_m),
// with k_t = delta_t^2 * (squared exponential in q, summed over the triangle's species-preserving
// permutations for 3b). Pairs carry weight fc/2 because a full neighbour list sees each pair
// from both ends. The same per-centre code serves training (kernel rows, one column per sparse
// point), prediction (rows contracted with alpha) and the LAMMPS pair style (centre plus its
// neighbours' relative positions; gradients scattered to the neighbours).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gap_mapped.hpp"
#include "gap_nbody.hpp"
#include "gap_soap.hpp"
#include "gap_term.hpp"
#include "modelfile.hpp"
#include "parallel.hpp"
#include "quadratic_form.hpp"

namespace clusterforce {

/// A trained GAP: isolated-atom energies plus terms; optional posterior matrix for variances.
class GapModel {
 public:
  /// variance: M x M matrix (K_mm^-1 - (K_mm + K_mn Sigma^-1 K_nm)^-1), row-major, M = sum of the
  /// terms' sparse points in term order; empty when the model carries no variance.
  /// uncertainty_scale: per species, the factor that makes the force standard deviation match
  /// held-out force errors (fitted at training by leaving groups of frames out); empty = 1.
  GapModel(int n_species, std::vector<double> e0, std::vector<std::shared_ptr<const GapTerm>> terms,
           std::vector<double> variance, std::vector<double> uncertainty_scale = {})
      : n_species_(n_species),
        e0_(std::move(e0)),
        terms_(std::move(terms)),
        variance_(std::move(variance)),
        uncertainty_scale_(std::move(uncertainty_scale)) {
    if (n_species < 1) throw std::invalid_argument("n_species must be >= 1, got " + std::to_string(n_species));
    if (static_cast<int>(e0_.size()) != n_species) {
      throw std::invalid_argument("e0 has " + std::to_string(e0_.size()) + " entries for " + std::to_string(n_species) +
                                  " species");
    }
    if (terms_.empty()) throw std::invalid_argument("a GAP model needs at least one term");
    term_offsets_.push_back(0);
    for (const auto& t : terms_) {
      if (!t) throw std::invalid_argument("GAP term is null");
      cutoff_ = std::max(cutoff_, t->r_cut());
      term_offsets_.push_back(term_offsets_.back() + t->n_sparse());
    }
    const int64_t m = term_offsets_.back();
    if (!variance_.empty() && static_cast<int64_t>(variance_.size()) != m * m) {
      throw std::invalid_argument("variance matrix has " + std::to_string(variance_.size()) + " entries, expected " +
                                  std::to_string(m) + " x " + std::to_string(m));
    }
    if (!uncertainty_scale_.empty() && static_cast<int>(uncertainty_scale_.size()) != n_species)
      throw std::invalid_argument("uncertainty scale has " + std::to_string(uncertainty_scale_.size()) +
                                  " entries for " + std::to_string(n_species) + " species");
    for (double s : uncertainty_scale_)
      if (!(s > 0.0) || !std::isfinite(s))
        throw std::invalid_argument("uncertainty scale factors must be positive and finite, got " + std::to_string(s));
  }

  int n_species() const { return n_species_; }
  double cutoff() const { return cutoff_; }
  int n_sparse() const { return static_cast<int>(term_offsets_.back()); }
  bool has_variance() const { return !variance_.empty(); }
  const std::vector<std::shared_ptr<const GapTerm>>& terms() const { return terms_; }

  /// LAMMPS-style entry: local energy of a centre of species cs (eV, e0 included) from its
  /// neighbours' relative positions and species; grad (n x 3) += d energy / d rel_j, so the
  /// force on neighbour j is -grad_j and on the centre +sum_j grad_j.
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const {
    check_species(cs, n_species_, "centre");
    double e = e0_[cs];
    for (const auto& t : terms_) e += t->centre_energy(cs, rel, sp, n, grad);
    return e;
  }

  /// Kernel row of a centre over all terms' sparse points (length n_sparse()), accumulated.
  void centre_kernel_row(int cs, const double* rel, const int* sp, int n, double* row) const {
    for (std::size_t t = 0; t < terms_.size(); ++t)
      terms_[t]->centre_rows(cs, rel, sp, n, row + term_offsets_[t], nullptr);
  }

  /// Predictive variance of every force component (3n, eV^2 / Angstrom^2, atom-major): the
  /// prior variance of -dE/dr_kx minus g^T V g with g = d k_m(E) / d r_kx, the gradient of the
  /// structure's kernel row, times the square of the atom's species' uncertainty scale. Forces
  /// are what the model is used for, so this is the uncertainty that estimates a force error
  /// (eV/Angstrom after a square root).
  std::vector<double> force_variances(const Geometry& g) const {
    const int n = g.n;
    for (int i = 0; i < n; ++i) check_species(g.species[i], n_species_, "atom");
    if (variance_.empty())
      throw std::invalid_argument("this GAP model carries no variance matrix (trained without variance)");
    const CentreNeighbors nl = centre_neighbors(g, cutoff_);
    const int64_t m = n_sparse();
    const std::size_t rows = 3 * static_cast<std::size_t>(n);
    std::vector<double> prior(rows, 0.0), grad(rows * static_cast<std::size_t>(m), 0.0);
    for (const auto& t : terms_) t->structure_force_prior(nl, g.species, n, prior.data());
    // Rows of a chunk of centres in parallel, added to grad serially in centre order: the result
    // does not depend on the thread count, which matters because prior - g^T V g cancels to a
    // small difference. Chunks keep the rows' memory at O(chunk x neighbours x M).
    constexpr int kChunk = 32;
    std::vector<std::vector<double>> grad_rows(kChunk);
    for (int c0 = 0; c0 < n; c0 += kChunk) {
      const int nc = std::min(kChunk, n - c0);
      parallel_for(nc, [&](int64_t c) {
        const int i = c0 + static_cast<int>(c);
        const int64_t o = nl.offsets[i];
        const int nn = nl.count(i);
        std::vector<double>& rows_c = grad_rows[c];
        rows_c.assign(3 * static_cast<std::size_t>(nn) * m, 0.0);
        std::vector<double> row;
        for (std::size_t t = 0; t < terms_.size(); ++t) {
          const int64_t mt = terms_[t]->n_sparse();
          row.assign(static_cast<std::size_t>(mt), 0.0);
          // Term t's rows (3 nn x mt) sit at offset 3 nn term_offsets_[t] of the centre's block.
          terms_[t]->centre_rows(g.species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nn, row.data(),
                                 rows_c.data() + 3 * static_cast<std::size_t>(nn) * term_offsets_[t]);
        }
      });
      for (int c = 0; c < nc; ++c) {
        const int i = c0 + c;
        const int64_t o = nl.offsets[i];
        const int nn = nl.count(i);
        for (std::size_t t = 0; t < terms_.size(); ++t) {
          const int64_t mt = terms_[t]->n_sparse(), off = term_offsets_[t];
          const double* block = grad_rows[c].data() + 3 * static_cast<std::size_t>(nn) * off;
          for (int j = 0; j < nn; ++j) {
            const int64_t a = nl.index[o + j];
            for (int x = 0; x < 3; ++x) {
              const double* src = block + (3 * static_cast<int64_t>(j) + x) * mt;
              double* to_neighbour = grad.data() + (3 * a + x) * m + off;
              double* to_centre = grad.data() + (3 * static_cast<int64_t>(i) + x) * m + off;
              for (int64_t k = 0; k < mt; ++k) {
                to_neighbour[k] += src[k];
                to_centre[k] -= src[k];
              }
            }
          }
        }
      }
    }
    std::vector<double> out(rows);
    quadratic_forms(grad.data(), static_cast<int64_t>(rows), out.data());
    for (std::size_t c = 0; c < rows; ++c) {
      const double scale = uncertainty_scale_.empty() ? 1.0 : uncertainty_scale_[g.species[c / 3]];
      out[c] = scale * scale * std::max(0.0, prior[c] - out[c]);
    }
    return out;
  }

  /// Predictive variance (eV^2) of every atom's local energy (atoms, n) and of the total energy:
  /// prior - k^T V k. The kernel rows are made a chunk of atoms at a time, so memory stays
  /// O(chunk M) for large structures.
  void energy_variances(const Geometry& g, std::vector<double>& atoms, double& total_variance) const {
    const int n = g.n;
    const int* species = g.species;
    for (int i = 0; i < n; ++i) check_species(species[i], n_species_, "atom");
    if (variance_.empty())
      throw std::invalid_argument("this GAP model carries no variance matrix (trained without variance)");
    const CentreNeighbors nl = centre_neighbors(g, cutoff_);
    constexpr int kChunk = 256;
    const int64_t m = n_sparse();
    atoms.assign(n, 0.0);
    std::vector<double> total(m, 0.0), rows, priors;
    for (int c0 = 0; c0 < n; c0 += kChunk) {
      const int nc = std::min(kChunk, n - c0);
      rows.assign(static_cast<std::size_t>(nc) * m, 0.0);
      priors.assign(nc, 0.0);
      parallel_for(nc, [&](int64_t c) {
        const int i = c0 + static_cast<int>(c);
        const int64_t o = nl.offsets[i];
        const int nn = nl.count(i);
        const double* rel = nl.rel.data() + 3 * o;
        const int* sp = nl.species.data() + o;
        centre_kernel_row(species[i], rel, sp, nn, rows.data() + c * m);
        for (const auto& t : terms_) priors[c] += t->centre_self_covariance(species[i], rel, sp, nn);
      });
      // The total's row is summed in centre order, so the energy variance, a small difference
      // prior - k^T V k, does not change with the thread schedule from call to call.
      for (int c = 0; c < nc; ++c)
        for (int64_t k = 0; k < m; ++k) total[k] += rows[c * m + k];
      double* var = atoms.data() + c0;
      quadratic_forms(rows.data(), nc, var);
      for (int c = 0; c < nc; ++c) var[c] = std::max(0.0, priors[c] - var[c]);
    }
    double prior = 0.0, fixed = 0.0;
    for (const auto& t : terms_) prior += t->structure_self_covariance(nl, species, n);
    quadratic_forms(total.data(), 1, &fixed);
    total_variance = std::max(0.0, prior - fixed);
  }

 private:
  /// out[r] = k_r^T V k_r for n_rows kernel rows (or their derivatives), each n_sparse() long.
  void quadratic_forms(const double* rows, int64_t n_rows, double* out) const {
    clusterforce::quadratic_forms(variance_.data(), n_sparse(), rows, n_rows, out);
  }

  int n_species_;
  std::vector<double> e0_;
  std::vector<std::shared_ptr<const GapTerm>> terms_;
  std::vector<double> variance_;
  std::vector<double> uncertainty_scale_;
  std::vector<int64_t> term_offsets_;
  double cutoff_ = 0.0;
};

/// Kernel rows of one term for a whole structure, as training needs them:
/// energy_row[m] = d E / d alpha_m and force_rows[(a*3 + x)*M + m] = -d^2 E / d alpha_m d r_a[x].
inline void structure_rows(const GapTerm& term, const Geometry& g, double* energy_row, double* force_rows) {
  const int64_t m = term.n_sparse();
  const int n = g.n;
  const int* species = g.species;
  const CentreNeighbors nl = centre_neighbors(g, term.r_cut());
  std::fill(energy_row, energy_row + m, 0.0);
  std::fill(force_rows, force_rows + 3 * static_cast<int64_t>(n) * m, 0.0);
  std::vector<double> grad_rows;
  for (int i = 0; i < n; ++i) {
    const int64_t o = nl.offsets[i];
    const int nn = nl.count(i);
    grad_rows.assign(3 * static_cast<std::size_t>(nn) * m, 0.0);
    term.centre_rows(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nn, energy_row, grad_rows.data());
    for (int j = 0; j < nn; ++j) {
      const int64_t a = nl.index[o + j];
      for (int x = 0; x < 3; ++x) {
        const double* g = grad_rows.data() + (3 * static_cast<int64_t>(j) + x) * m;
        double* fa = force_rows + (3 * a + x) * m;
        double* fi = force_rows + (3 * static_cast<int64_t>(i) + x) * m;
        for (int64_t k = 0; k < m; ++k) {
          fa[k] -= g[k];
          fi[k] += g[k];
        }
      }
    }
  }
}

namespace gap_detail {

inline const Json& field(const Json& obj, const std::string& key, const std::string& where) {
  if (!obj.contains(key)) throw ModelFileError(where + ": metadata field '" + key + "' is missing");
  return obj.at(key);
}

inline double number(const Json& obj, const std::string& key, const std::string& where) {
  const Json& v = field(obj, key, where);
  if (!v.is_number()) throw ModelFileError(where + ": metadata field '" + key + "' is not a number");
  return v.as_double();
}

inline int integer(const Json& obj, const std::string& key, const std::string& where) {
  const double v = number(obj, key, where);
  if (v != static_cast<double>(static_cast<int>(v))) {
    throw ModelFileError(where + ": metadata field '" + key + "' must be an integer, got " + std::to_string(v));
  }
  return static_cast<int>(v);
}

}  // namespace gap_detail

/// Atomic numbers of a GAP model file's species, in species-index order (sorted).
inline std::vector<int> gap_atomic_numbers(const ModelFile& mf) {
  const std::string where = mf.path();
  const Json& numbers = gap_detail::field(mf.metadata(), "atomic_numbers", where);
  if (!numbers.is_array() || numbers.size() == 0)
    throw ModelFileError(where + ": 'atomic_numbers' must be a non-empty list");
  std::vector<int> z;
  for (std::size_t i = 0; i < numbers.size(); ++i) z.push_back(static_cast<int>(numbers.at(i).as_int()));
  if (!std::is_sorted(z.begin(), z.end()) || std::adjacent_find(z.begin(), z.end()) != z.end()) {
    throw ModelFileError(where + ": 'atomic_numbers' must be sorted and unique");
  }
  return z;
}

/// Replace the n-body terms that `clusterforce map` tabulated by their mapped form: metadata
/// "maps" lists {"term": i, ...}; arrays maps/i/knots_r, maps/i/knots_cos (3b) and
/// maps/i/coefficients (map channels x axes' sizes).
inline void read_maps(const ModelFile& mf, std::vector<std::shared_ptr<const GapTerm>>& terms) {
  const std::string& path = mf.path();
  const Json& maps = mf.metadata().at("maps");
  if (!maps.is_array()) throw ModelFileError(path + ": 'maps' must be a list");
  for (std::size_t k = 0; k < maps.size(); ++k) {
    const std::string where = path + ": map " + std::to_string(k);
    const int i = gap_detail::integer(maps.at(k), "term", where);
    if (i < 0 || i >= static_cast<int>(terms.size()))
      throw ModelFileError(where + ": term " + std::to_string(i) + " does not exist");
    auto exact = std::dynamic_pointer_cast<const NBodyTerm>(terms[i]);
    if (!exact)
      throw ModelFileError(where + ": term " + std::to_string(i) + " is not a 2b or 3b term (only those are mapped)");
    const std::string prefix = "maps/" + std::to_string(i) + "/";
    try {
      BSplineAxis r_axis(mf.f64(prefix + "knots_r", {-1}));
      BSplineAxis cos_axis;
      std::vector<int64_t> shape = {r_axis.size()};
      if (exact->order() == 3) {
        cos_axis = BSplineAxis(mf.f64(prefix + "knots_cos", {-1}));
        shape = {r_axis.size(), r_axis.size(), cos_axis.size()};
      }
      const int s = exact->n_species();
      shape.insert(shape.begin(), exact->order() == 2 ? n_pair_channels(s) : s * n_pair_channels(s));
      terms[i] = std::make_shared<MappedNBodyTerm>(exact, std::move(r_axis), std::move(cos_axis),
                                                   mf.f64(prefix + "coefficients", shape));
    } catch (const std::invalid_argument& e) {
      throw ModelFileError(where + ": " + e.what());
    }
  }
}

/// Build a GAP model from a .cfm file of kind "gap" (what the LAMMPS pair style calls).
inline GapModel read_gap_model(const ModelFile& mf) {
  const std::string& path = mf.path();
  if (mf.kind() != "gap") throw ModelFileError(path + ": model kind is '" + mf.kind() + "', expected 'gap'");
  const std::vector<int> z = gap_atomic_numbers(mf);
  const int n_species = static_cast<int>(z.size());
  const std::vector<double>& e0 = mf.f64("e0", {n_species});
  const Json& terms = gap_detail::field(mf.metadata(), "terms", path);
  if (!terms.is_array() || terms.size() == 0) throw ModelFileError(path + ": 'terms' must be a non-empty list");
  std::vector<std::shared_ptr<const GapTerm>> built;
  int64_t total = 0;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const Json& t = terms.at(i);
    const std::string prefix = "terms/" + std::to_string(i) + "/";
    const std::string where = path + ": term " + std::to_string(i);
    const std::string kind = gap_detail::field(t, "kind", where).as_string();
    const Tensor& sparse = mf.tensor(prefix + "sparse");
    if (sparse.shape.size() != 2) throw ModelFileError(path + ": field '" + prefix + "sparse' must be two-dimensional");
    const int64_t m = sparse.shape[0];
    try {
      if (kind == "2b" || kind == "3b") {
        NBodyParams p;
        p.order = kind == "2b" ? 2 : 3;
        p.r_cut = gap_detail::number(t, "r_cut", where);
        p.width = gap_detail::number(t, "width", where);
        p.theta = gap_detail::number(t, "theta", where);
        p.delta = gap_detail::number(t, "delta", where);
        p.sparse = mf.f64(prefix + "sparse", {m, nbody_dim(p.order)});
        p.offsets = mf.i64(prefix + "offsets", {nbody_n_channels(p.order, n_species) + 1});
        p.alpha = mf.f64(prefix + "alpha", {m});
        built.push_back(std::make_shared<NBodyTerm>(n_species, std::move(p)));
      } else if (kind == "soap") {
        // "atom_sigma" is the width's name in files written before SOAP settings had one schema.
        const char* sigma_key = t.contains("sigma") ? "sigma" : "atom_sigma";
        SoapWeighting smooth;  // files written before r_cut_width existed have no transition
        if (t.contains("r_cut_width")) smooth.cosine_width = gap_detail::number(t, "r_cut_width", where);
        SoapGTO soap(gap_detail::number(t, "r_cut", where), gap_detail::integer(t, "n_max", where),
                     gap_detail::integer(t, "l_max", where), gap_detail::number(t, sigma_key, where), z, smooth);
        const int64_t f = static_cast<int64_t>(soap.n_features());
        built.push_back(
            std::make_shared<SoapTerm>(std::move(soap), gap_detail::number(t, "delta", where),
                                       gap_detail::integer(t, "zeta", where), mf.f64(prefix + "sparse", {m, f}),
                                       mf.i64(prefix + "offsets", {n_species + 1}), mf.f64(prefix + "alpha", {m})));
      } else {
        throw ModelFileError(where + ": unknown term kind '" + kind + "' (known: 2b, 3b, soap)");
      }
    } catch (const std::invalid_argument& e) {
      throw ModelFileError(where + " (" + kind + "): " + e.what());
    }
    total += m;
  }
  if (mf.metadata().contains("maps")) read_maps(mf, built);
  std::vector<double> variance;
  if (mf.has("variance")) variance = mf.f64("variance", {total, total});
  std::vector<double> scale;  // files written before the calibration have none: unscaled
  if (mf.has("uncertainty_scale")) scale = mf.f64("uncertainty_scale", {n_species});
  return GapModel(n_species, e0, std::move(built), std::move(variance), std::move(scale));
}

}  // namespace clusterforce
