// Per-frame out-of-domain score: is this structure outside what the model was trained on?
//
// Three parts, each scaled so that 1 is the edge of the training domain (larger = farther out):
//   uncertainty: the largest per-atom uncertainty (eV/Angstrom) over the limit calibrated at fit
//                time on frames the model did not train on (where the prediction has one);
//   packing:     per species, the frame's mean nearest-neighbour distance m_s against its mean
//                mu_s and standard deviation sd_s over the training frames: |m_s - mu_s| / (z sd_s)
//                (stretched or squeezed structures, denser or sparser packing than trained on);
//   short_pair:  the largest r_min(a, b) / r over pairs (a pair closer than any of its elements in
//                training exceeds 1; the per-atom `extrapolating` flag says which atoms).
// The score is the largest part present; a frame is outside the domain when it exceeds 1.
// Written by clusterforce.core.domain (Python): array "domain/packing" (n_species x 2: mu_s, sd_s
// in Angstrom) and metadata "domain": {"radius": Angstrom, "z": tolerance in sd, "uncertainty_limit":
// eV/Angstrom (optional), ...}.
// Files without them get no score (docs/model-file.md).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "baseline.hpp"
#include "geometry.hpp"
#include "modelfile.hpp"

namespace clusterforce {

/// A frame's score and its parts; a part the prediction could not compute is NaN.
struct DomainScore {
  double score = std::numeric_limits<double>::quiet_NaN();
  double uncertainty = std::numeric_limits<double>::quiet_NaN();
  double packing = std::numeric_limits<double>::quiet_NaN();
  double short_pair = std::numeric_limits<double>::quiet_NaN();
  bool outside() const { return score > 1.0; }
};

/// Per species, the mean over its atoms of the nearest-neighbour distance (Angstrom), neighbours
/// searched within `radius` (an atom with none counts as `radius`); NaN for an absent species.
/// Also the largest r_min(a, b) / r over the pairs found (0 without limits or pairs).
inline std::vector<double> mean_nearest_neighbour(const Geometry& g, int n_species, double radius,
                                                  const PairLimits& limits, double* short_pair) {
  const CentreNeighbors nl = centre_neighbors(g, radius);
  std::vector<double> sum(static_cast<std::size_t>(n_species), 0.0), count(sum.size(), 0.0);
  double worst = 0.0;
  for (int i = 0; i < g.n; ++i) {
    double nearest = radius;
    for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
      const double* d = nl.rel.data() + 3 * p;
      const double r = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
      nearest = std::min(nearest, r);
      const double limit = limits.limit(g.species[i], nl.species[p]);
      if (limit > 0.0 && r > 0.0) worst = std::max(worst, limit / r);
    }
    sum[g.species[i]] += nearest;
    count[g.species[i]] += 1.0;
  }
  for (std::size_t s = 0; s < sum.size(); ++s)
    sum[s] = count[s] > 0 ? sum[s] / count[s] : std::numeric_limits<double>::quiet_NaN();
  if (short_pair) *short_pair = worst;
  return sum;
}

/// The training domain a frame is scored against (inactive for files without it).
class DomainReference {
 public:
  DomainReference() = default;
  DomainReference(int n_species, std::vector<double> packing, double radius, double z, double uncertainty_limit,
                  PairLimits limits)
      : n_species_(n_species),
        packing_(std::move(packing)),
        radius_(radius),
        z_(z),
        uncertainty_limit_(uncertainty_limit),
        limits_(std::move(limits)) {}

  bool active() const { return n_species_ > 0; }

  /// The score of a structure; `uncertainty` the per-atom uncertainties (eV/Angstrom) or empty.
  DomainScore score(const Geometry& g, const std::vector<double>& uncertainty) const {
    DomainScore out;
    if (!active()) return out;
    double short_pair = 0.0;
    const std::vector<double> m = mean_nearest_neighbour(g, n_species_, radius_, limits_, &short_pair);
    out.packing = 0.0;
    for (int s = 0; s < n_species_; ++s) {
      const double mean = packing_[2 * s], sd = packing_[2 * s + 1];
      if (!std::isfinite(m[s]) || !std::isfinite(mean) || !(sd > 0.0)) continue;  // absent here or in training
      out.packing = std::max(out.packing, std::abs(m[s] - mean) / (z_ * sd));
    }
    if (limits_.active()) out.short_pair = short_pair;
    if (!uncertainty.empty() && uncertainty_limit_ > 0.0)
      out.uncertainty = *std::max_element(uncertainty.begin(), uncertainty.end()) / uncertainty_limit_;
    out.score = out.packing;
    for (double part : {out.short_pair, out.uncertainty})
      if (std::isfinite(part)) out.score = std::max(out.score, part);
    return out;
  }

 private:
  int n_species_ = 0;
  std::vector<double> packing_;  // n_species x (mean, standard deviation), Angstrom
  double radius_ = 0.0;
  double z_ = 1.0;
  double uncertainty_limit_ = 0.0;
  PairLimits limits_;
};

/// The domain reference of a model file; inactive without "domain/packing".
inline DomainReference read_domain_reference(const ModelFile& mf, int n_species) {
  if (!mf.has("domain/packing")) return {};
  const Json& meta = mf.metadata();
  if (!meta.contains("domain") || !meta.at("domain").contains("radius") || !meta.at("domain").contains("z"))
    throw ModelFileError(mf.path() + ": field 'domain/packing' without metadata domain.radius and domain.z");
  const Json& d = meta.at("domain");
  const double radius = d.at("radius").as_double(), z = d.at("z").as_double();
  if (!(radius > 0.0) || !(z > 0.0))
    throw ModelFileError(mf.path() + ": metadata domain.radius (Angstrom) and domain.z must be positive");
  const double limit = d.contains("uncertainty_limit") ? d.at("uncertainty_limit").as_double() : 0.0;
  return DomainReference(n_species, mf.f64("domain/packing", {n_species, 2}), radius, z, limit,
                         read_pair_limits(mf, n_species));
}

}  // namespace clusterforce
