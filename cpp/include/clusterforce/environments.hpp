// Atom classes and the neighbourhood records used to align local environments (OAMLM paper,
// section II C). Everything here works from "a centre atom, its element, and its neighbours
// (elements + positions relative to the centre)", so Python (from ase.Atoms) and the LAMMPS
// pair style (from a full neighbour list with ghosts) build identical records.
//
// The alignment schemes are DATA: one table of Scheme records (kSchemes) and one table of
// classification rules per chemistry. A new chemistry adds table entries, not code.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "parallel.hpp"

namespace clusterforce {

inline constexpr int kMaxAnchors = 6;              // unit gold: two S-C-Au blocks
inline constexpr int kMaxCloud = 12;               // neighbour cloud of core / generic atoms
inline constexpr double kEnvironmentCutoff = 6.0;  // Angstrom; covers S-C and S-Au of a unit's blocks
inline constexpr double kBondCutoff = 3.0;         // Angstrom; the paper's unit / half-unit / core rule

// Bit flags recorded per environment. Nothing here is fatal: the record is always complete
// and finite, the flags say how much to trust it.
enum EnvironmentFlag : int {
  kFlagStretched = 1,    // an anchor was found, but farther from its origin than its bond length
  kFlagSubstituted = 2,  // no atom of the wanted element: the nearest unused atom of any element
  kFlagMissing = 4,      // no unused atom at all: the anchor sits on its origin
  kFlagSparseCloud = 8,  // fewer than two cloud neighbours in range: the cloud was topped up
};

enum class Chemistry : int { Generic = 0, Thiolate = 1 };

enum class ErrorKind : int {
  Anchors = 0,  // g, eq. 12, over the anchor points
  Cloud = 1,    // g', eq. 13, nearest-neighbour distances over the larger neighbour cloud
};

// One anchor: the nearest not-yet-used neighbour of `element` to `origin` (-1 = the centre,
// k >= 0 = anchor k of this scheme). Beyond `bond` Angstrom the anchor is flagged stretched.
struct AnchorStep {
  int element;
  int origin;
  double bond;
};

// An alignment scheme. Anchor schemes: anchors = `prefix` fixed points followed by `n_blocks`
// blocks of `block_size` points; every ordering of the blocks is tried. Two anchor schemes can
// be aligned when prefix and block_size agree (unit vs half unit: over the common blocks).
// Cloud schemes: the neighbour cloud holds up to max_cloud atoms: first every `lead_element`
// atom within lead_cutoff (nearest first), then `cloud_element` atoms (0 = any) within
// cloud_cutoff, nearest first. Alignment uses the centre plus two cloud points (section II C).
struct Scheme {
  const char* name;
  const char* class_name;  // the class sharing one model; "" = the centre's element symbol
  ErrorKind error;
  int n_steps;
  std::array<AnchorStep, kMaxAnchors> steps;
  int prefix;
  int block_size;
  int n_blocks;
  int lead_element;
  double lead_cutoff;
  int cloud_element;
  double cloud_cutoff;
  int max_cloud;
  // Cloud schemes: the scheme of the smooth form (the same cloud, weighted; see
  // fill_cloud_smooth), -1 when the scheme is itself smooth or has no cloud.
  int smooth_twin = -1;
  bool smooth = false;
};

namespace element {
inline constexpr int H = 1, C = 6, S = 16, Au = 79;
}

// Bond lengths used only to flag stretched anchors (generous: hot MD stretches bonds).
inline constexpr double kBondCH = 1.35, kBondCS = 2.2, kBondAuS = 3.0;

inline constexpr int kSchemeH = 0, kSchemeC = 1, kSchemeS = 2, kSchemeAuUnit = 3, kSchemeAuHalfUnit = 4,
                     kSchemeAuCore = 5, kSchemeGeneric = 6, kSchemeAuCoreSmooth = 7, kSchemeGenericSmooth = 8;

// Smooth form of the cloud schemes (model files with smooth environments): a cloud atom has
// weight 1 up to cloud_cutoff, falling (cosine) to 0 at kEnvironmentCutoff, times a second
// cosine switch that fades it out over kCloudRankWidth below the distance of the first atom
// beyond the max_cloud nearest, so no atom enters or leaves the cloud with a nonzero weight.
inline constexpr double kCloudRankWidth = 0.5;  // Angstrom

inline constexpr std::array<Scheme, 9> kSchemes = {{
    // H: nearest C, then the two other H on that C; the two H are permuted (2 orderings).
    {"H",
     "H",
     ErrorKind::Anchors,
     3,
     {{{element::C, -1, kBondCH}, {element::H, 0, kBondCH}, {element::H, 0, kBondCH}}},
     1,
     1,
     2,
     0,
     0.0,
     0,
     0.0,
     0},
    // C: nearest S, then three nearest H; the H are permuted (6 orderings).
    {"C",
     "C",
     ErrorKind::Anchors,
     4,
     {{{element::S, -1, kBondCS}, {element::H, -1, kBondCH}, {element::H, -1, kBondCH}, {element::H, -1, kBondCH}}},
     1,
     1,
     3,
     0,
     0.0,
     0,
     0.0,
     0},
    // S: nearest C, then two nearest Au; the Au are permuted (2 orderings).
    {"S",
     "S",
     ErrorKind::Anchors,
     3,
     {{{element::C, -1, kBondCS}, {element::Au, -1, kBondAuS}, {element::Au, -1, kBondAuS}}},
     1,
     1,
     2,
     0,
     0.0,
     0,
     0.0,
     0},
    // Unit gold: two blocks (S within 3 A, the C on that S, the other Au on that S).
    {"Au_unit",
     "Au_unit",
     ErrorKind::Anchors,
     6,
     {{{element::S, -1, kBondCutoff},
       {element::C, 0, kBondCS},
       {element::Au, 0, kBondAuS},
       {element::S, -1, kBondCutoff},
       {element::C, 3, kBondCS},
       {element::Au, 3, kBondAuS}}},
     0,
     3,
     2,
     0,
     0.0,
     0,
     0.0,
     0},
    // Half-unit gold: one such block; shares the Au_unit model, aligned over the common block.
    {"Au_half_unit",
     "Au_unit",
     ErrorKind::Anchors,
     3,
     {{{element::S, -1, kBondCutoff}, {element::C, 0, kBondCS}, {element::Au, 0, kBondAuS}}},
     0,
     3,
     1,
     0,
     0.0,
     0,
     0.0,
     0},
    // Core gold: S within 3 A first, then Au within 5 A; g' over the clouds.
    {"Au_core",
     "Au_core",
     ErrorKind::Cloud,
     0,
     {},
     0,
     0,
     0,
     element::S,
     kBondCutoff,
     element::Au,
     5.0,
     kMaxCloud,
     kSchemeAuCoreSmooth},
    // Any other chemistry: the core-gold scheme without S, cloud of any element within 5 A.
    {"generic", "", ErrorKind::Cloud, 0, {}, 0, 0, 0, 0, 0.0, 0, 5.0, kMaxCloud, kSchemeGenericSmooth},
    // The smooth forms of the two cloud schemes (same classes, so the same models).
    {"Au_core_smooth",
     "Au_core",
     ErrorKind::Cloud,
     0,
     {},
     0,
     0,
     0,
     element::S,
     kBondCutoff,
     element::Au,
     5.0,
     kMaxCloud,
     -1,
     true},
    {"generic_smooth", "", ErrorKind::Cloud, 0, {}, 0, 0, 0, 0, 0.0, 0, 5.0, kMaxCloud, -1, true},
}};

// Classification: first matching rule wins; -1 = any count. Counts are of S and Au atoms
// within kBondCutoff of the centre (paper: 2 S = unit; 1 S and no Au = half unit; else core).
struct ClassRule {
  int centre_element;  // 0 = any
  int n_s;
  int n_au;
  int scheme;
};

inline constexpr std::array<ClassRule, 6> kThiolateRules = {{
    {element::H, -1, -1, kSchemeH},
    {element::C, -1, -1, kSchemeC},
    {element::S, -1, -1, kSchemeS},
    {element::Au, 2, -1, kSchemeAuUnit},
    {element::Au, 1, 0, kSchemeAuHalfUnit},
    {element::Au, -1, -1, kSchemeAuCore},
}};

inline constexpr std::array<ClassRule, 1> kGenericRules = {{{0, -1, -1, kSchemeGeneric}}};

inline int n_anchors(int scheme) {
  const Scheme& s = kSchemes[static_cast<std::size_t>(scheme)];
  return s.prefix + s.block_size * s.n_blocks;
}

// One atom's record. Positions are relative to the centre (Angstrom). Unused rows are zero.
struct Environment {
  int scheme = kSchemeGeneric;
  int element = 0;  // atomic number of the centre
  int n_cloud = 0;
  int n_lead = 0;  // the first n_lead cloud entries are lead (S) atoms
  int flags = 0;
  double anchors[kMaxAnchors][3] = {};
  double cloud[kMaxCloud][3] = {};
  // Smooth cloud schemes: the weight in [0, 1] of each cloud entry (lead atoms 1), and the
  // largest of them, by which the predictor scales the centre's force (an atom with no
  // neighbours left in the cloud has none). Other schemes: unused (weights 1).
  double weight[kMaxCloud] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  double presence = 1.0;
};

// Environments can be aligned with each other only within one class (one model): the class
// name of the scheme table, or the centre's element for schemes without one (generic).
inline int class_key(const Environment& e) {
  const char* name = kSchemes[static_cast<std::size_t>(e.scheme)].class_name;
  if (name[0] == '\0') return -1 - e.element;
  for (std::size_t s = 0; s < kSchemes.size(); ++s)
    if (std::strcmp(kSchemes[s].class_name, name) == 0) return static_cast<int>(s);
  return e.scheme;
}

inline void check_scheme(int scheme, const char* what) {
  if (scheme < 0 || scheme >= static_cast<int>(kSchemes.size()))
    throw std::out_of_range(std::string(what) + ": scheme id " + std::to_string(scheme) + " is not in [0, " +
                            std::to_string(kSchemes.size()) + ")");
}

namespace detail {

struct Neighbour {
  int element;
  double x, y, z, r2;
};

// Canonical order: by distance, ties by coordinates, so the choice of anchors does not depend
// on the order of the caller's neighbour list (ASE and LAMMPS list neighbours differently).
inline bool canonical_less(const Neighbour& a, const Neighbour& b) {
  if (a.r2 != b.r2) return a.r2 < b.r2;
  if (a.x != b.x) return a.x < b.x;
  if (a.y != b.y) return a.y < b.y;
  return a.z < b.z;
}

inline bool count_matches(int rule, int count) {
  return rule < 0 || rule == count;
}

template <std::size_t N>
int apply_rules(const std::array<ClassRule, N>& rules, int centre, int n_s, int n_au) {
  for (const ClassRule& r : rules) {
    if ((r.centre_element == 0 || r.centre_element == centre) && count_matches(r.n_s, n_s) &&
        count_matches(r.n_au, n_au))
      return r.scheme;
  }
  throw std::invalid_argument("element Z=" + std::to_string(centre) +
                              " is not part of the Au-S-C-H (thiolate) chemistry; "
                              "use the generic chemistry for this system");
}

// Index of the nearest unused neighbour to o with the given element (0 = any), or -1.
inline int nearest_unused(const std::vector<Neighbour>& nb, const std::vector<char>& used, const double* o, int elem) {
  int best = -1;
  double best_d2 = 0.0;
  for (std::size_t k = 0; k < nb.size(); ++k) {
    if (used[k] || (elem != 0 && nb[k].element != elem)) continue;
    const double dx = nb[k].x - o[0], dy = nb[k].y - o[1], dz = nb[k].z - o[2];
    const double d2 = dx * dx + dy * dy + dz * dz;
    // strict < keeps the canonically first of equally distant atoms
    if (best < 0 || d2 < best_d2) {
      best = static_cast<int>(k);
      best_d2 = d2;
    }
  }
  return best;
}

inline void fill_anchors(const Scheme& s, const std::vector<Neighbour>& nb, Environment& env) {
  std::vector<char> used(nb.size(), 0);
  const double origin0[3] = {0.0, 0.0, 0.0};
  for (int a = 0; a < s.n_steps; ++a) {
    const AnchorStep& st = s.steps[static_cast<std::size_t>(a)];
    const double* o = st.origin < 0 ? origin0 : env.anchors[st.origin];
    int k = nearest_unused(nb, used, o, st.element);
    if (k < 0) {
      k = nearest_unused(nb, used, o, 0);
      if (k >= 0) env.flags |= kFlagSubstituted;
    }
    if (k < 0) {
      env.flags |= kFlagMissing;
      for (int c = 0; c < 3; ++c) env.anchors[a][c] = o[c];
      continue;
    }
    used[static_cast<std::size_t>(k)] = 1;
    const Neighbour& n = nb[static_cast<std::size_t>(k)];
    env.anchors[a][0] = n.x;
    env.anchors[a][1] = n.y;
    env.anchors[a][2] = n.z;
    const double dx = n.x - o[0], dy = n.y - o[1], dz = n.z - o[2];
    if (dx * dx + dy * dy + dz * dz > st.bond * st.bond) env.flags |= kFlagStretched;
  }
}

inline void fill_cloud(const Scheme& s, const std::vector<Neighbour>& nb, Environment& env) {
  std::vector<char> used(nb.size(), 0);
  auto take = [&](std::size_t k) {
    const Neighbour& n = nb[k];
    env.cloud[env.n_cloud][0] = n.x;
    env.cloud[env.n_cloud][1] = n.y;
    env.cloud[env.n_cloud][2] = n.z;
    ++env.n_cloud;
    used[k] = 1;
  };
  // nb is in canonical (nearest-first) order, so scanning it picks nearest first.
  const double lead2 = s.lead_cutoff * s.lead_cutoff;
  for (std::size_t k = 0; k < nb.size() && env.n_cloud < s.max_cloud; ++k)
    if (s.lead_element != 0 && nb[k].element == s.lead_element && nb[k].r2 <= lead2) take(k);
  env.n_lead = env.n_cloud;
  const double cut2 = s.cloud_cutoff * s.cloud_cutoff;
  for (std::size_t k = 0; k < nb.size() && env.n_cloud < s.max_cloud; ++k)
    if (!used[k] && (s.cloud_element == 0 || nb[k].element == s.cloud_element) && nb[k].r2 <= cut2) take(k);
  // Alignment needs two non-lead points: top up from anything within the environment cutoff.
  const int wanted = std::min(env.n_lead + 2, s.max_cloud);
  for (std::size_t k = 0; k < nb.size() && env.n_cloud < wanted; ++k) {
    if (used[k]) continue;
    take(k);
    env.flags |= kFlagSparseCloud;
  }
  if (env.n_cloud < wanted) env.flags |= kFlagSparseCloud;
}

// Cosine switch: 1 up to r0, 0 from r1 on, (1 + cos(pi (r - r0) / (r1 - r0))) / 2 between.
inline double switch_down(double r, double r0, double r1) {
  if (r <= r0) return 1.0;
  if (r >= r1) return 0.0;
  return 0.5 * (1.0 + std::cos(3.14159265358979323846 * (r - r0) / (r1 - r0)));
}

// The smooth cloud (Scheme::smooth): lead atoms as fill_cloud, weight 1; then the nearest
// max_cloud - n_lead atoms of cloud_element within kEnvironmentCutoff, weighted (see
// kCloudRankWidth); no top-up, since the alignment blends its modes by the weights instead.
inline void fill_cloud_smooth(const Scheme& s, const std::vector<Neighbour>& nb, Environment& env) {
  std::vector<char> used(nb.size(), 0);
  const double lead2 = s.lead_cutoff * s.lead_cutoff;
  for (std::size_t k = 0; k < nb.size() && env.n_cloud < s.max_cloud; ++k)
    if (s.lead_element != 0 && nb[k].element == s.lead_element && nb[k].r2 <= lead2) {
      env.cloud[env.n_cloud][0] = nb[k].x;
      env.cloud[env.n_cloud][1] = nb[k].y;
      env.cloud[env.n_cloud][2] = nb[k].z;
      env.weight[env.n_cloud++] = 1.0;
      used[k] = 1;
    }
  env.n_lead = env.n_cloud;
  std::vector<std::size_t> eligible;
  for (std::size_t k = 0; k < nb.size(); ++k)
    if (!used[k] && (s.cloud_element == 0 || nb[k].element == s.cloud_element)) eligible.push_back(k);
  const auto slots = static_cast<std::size_t>(s.max_cloud - env.n_lead);
  const double r_cap = eligible.size() > slots ? std::sqrt(nb[eligible[slots]].r2) : kEnvironmentCutoff;
  for (std::size_t q = 0; q < std::min(slots, eligible.size()); ++q) {
    const Neighbour& n = nb[eligible[q]];
    const double r = std::sqrt(n.r2);
    const double w =
        switch_down(r, s.cloud_cutoff, kEnvironmentCutoff) * switch_down(r, r_cap - kCloudRankWidth, r_cap);
    if (!(w > 0.0)) continue;
    env.cloud[env.n_cloud][0] = n.x;
    env.cloud[env.n_cloud][1] = n.y;
    env.cloud[env.n_cloud][2] = n.z;
    env.weight[env.n_cloud++] = w;
  }
  for (int k = env.n_cloud; k < kMaxCloud; ++k) env.weight[k] = 0.0;
  env.presence = env.n_cloud > 0 ? *std::max_element(env.weight, env.weight + env.n_cloud) : 0.0;
  if (env.n_cloud - env.n_lead < 2) env.flags |= kFlagSparseCloud;
}

}  // namespace detail

// Build the record of one centre atom. `z` (n) are the neighbours' atomic numbers, `rel`
// (n x 3, row-major) their positions minus the centre's (Angstrom). Neighbours farther than
// kEnvironmentCutoff are ignored, so a longer list (e.g. LAMMPS with skin) gives the same record.
// smooth: cloud schemes take their smooth twin (weighted cloud; model files with smooth
// environments).
inline Environment build_environment(Chemistry chemistry, int centre_element, std::size_t n, const int* z,
                                     const double* rel, bool smooth = false) {
  std::vector<detail::Neighbour> nb;
  nb.reserve(n);
  const double cut2 = kEnvironmentCutoff * kEnvironmentCutoff;
  int n_s = 0, n_au = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const double x = rel[3 * k], y = rel[3 * k + 1], zz = rel[3 * k + 2];
    if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(zz))
      throw std::invalid_argument("neighbour " + std::to_string(k) + " has a non-finite relative position");
    const double r2 = x * x + y * y + zz * zz;
    if (r2 > cut2) continue;
    if (r2 == 0.0)
      throw std::invalid_argument("neighbour " + std::to_string(k) + " (Z=" + std::to_string(z[k]) +
                                  ") sits on the centre atom");
    nb.push_back({z[k], x, y, zz, r2});
    if (r2 <= kBondCutoff * kBondCutoff) {
      n_s += z[k] == element::S;
      n_au += z[k] == element::Au;
    }
  }
  std::sort(nb.begin(), nb.end(), detail::canonical_less);

  Environment env;
  env.element = centre_element;
  env.scheme = chemistry == Chemistry::Thiolate ? detail::apply_rules(kThiolateRules, centre_element, n_s, n_au)
                                                : detail::apply_rules(kGenericRules, centre_element, n_s, n_au);
  if (smooth && kSchemes[static_cast<std::size_t>(env.scheme)].smooth_twin >= 0)
    env.scheme = kSchemes[static_cast<std::size_t>(env.scheme)].smooth_twin;
  const Scheme& s = kSchemes[static_cast<std::size_t>(env.scheme)];
  if (s.error == ErrorKind::Anchors)
    detail::fill_anchors(s, nb, env);
  else if (s.smooth)
    detail::fill_cloud_smooth(s, nb, env);
  else
    detail::fill_cloud(s, nb, env);
  return env;
}

// Batch version over a CSR neighbour list: centre i has neighbours offsets[i]..offsets[i+1]-1
// of z / rel. Output `out` has n_centres entries (caller-allocated).
inline void build_environments(Chemistry chemistry, std::size_t n_centres, const int* centre_z,
                               const std::int64_t* offsets, std::size_t n_pairs, const int* z, const double* rel,
                               Environment* out, bool smooth = false) {
  if (offsets[0] != 0)
    throw std::invalid_argument("neighbour offsets must start at 0, got " + std::to_string(offsets[0]));
  for (std::size_t i = 0; i < n_centres; ++i)
    if (offsets[i + 1] < offsets[i])
      throw std::invalid_argument("neighbour offsets decrease at centre " + std::to_string(i));
  if (static_cast<std::size_t>(offsets[n_centres]) != n_pairs)
    throw std::invalid_argument("neighbour offsets end at " + std::to_string(offsets[n_centres]) + " but there are " +
                                std::to_string(n_pairs) + " neighbour entries");
  // Validation first: exceptions must not escape an OpenMP region.
  if (chemistry == Chemistry::Thiolate)
    for (std::size_t i = 0; i < n_centres; ++i) detail::apply_rules(kThiolateRules, centre_z[i], 0, 0);
  for (std::size_t k = 0; k < 3 * n_pairs; ++k)
    if (!std::isfinite(rel[k]))
      throw std::invalid_argument("neighbour entry " + std::to_string(k / 3) + " has a non-finite relative position");
  for (std::size_t k = 0; k < n_pairs; ++k)
    if (rel[3 * k] == 0.0 && rel[3 * k + 1] == 0.0 && rel[3 * k + 2] == 0.0)
      throw std::invalid_argument("neighbour entry " + std::to_string(k) + " (Z=" + std::to_string(z[k]) +
                                  ") sits on its centre atom");
  const auto n = static_cast<std::int64_t>(n_centres);
  parallel_for(
      n,
      [&](std::int64_t i) {
        const std::int64_t b = offsets[i];
        out[i] = build_environment(chemistry, centre_z[i], static_cast<std::size_t>(offsets[i + 1] - b), z + b,
                                   rel + 3 * b, smooth);
      },
      Schedule::dynamic_chunks(64));
}

// Rebuild a record from stored arrays (model file), validating every count.
// weight: the cloud weights (kMaxCloud) of a smooth scheme, nullptr = all 1.
inline Environment make_environment(int scheme, int element_z, int n_cloud, int n_lead, int flags,
                                    const double* anchors, const double* cloud, const double* weight = nullptr) {
  check_scheme(scheme, "environment");
  if (n_cloud < 0 || n_cloud > kMaxCloud)
    throw std::out_of_range("environment: n_cloud " + std::to_string(n_cloud) + " is not in [0, " +
                            std::to_string(kMaxCloud) + "]");
  if (n_lead < 0 || n_lead > n_cloud)
    throw std::out_of_range("environment: n_lead " + std::to_string(n_lead) +
                            " is not in [0, n_cloud=" + std::to_string(n_cloud) + "]");
  Environment env;
  env.scheme = scheme;
  env.element = element_z;
  env.n_cloud = n_cloud;
  env.n_lead = n_lead;
  env.flags = flags;
  for (int a = 0; a < kMaxAnchors; ++a)
    for (int c = 0; c < 3; ++c) env.anchors[a][c] = anchors[3 * a + c];
  for (int a = 0; a < kMaxCloud; ++a)
    for (int c = 0; c < 3; ++c) env.cloud[a][c] = cloud[3 * a + c];
  for (int k = 0; k < 3 * kMaxAnchors; ++k)
    if (!std::isfinite(anchors[k])) throw std::invalid_argument("environment: anchors contain a non-finite value");
  for (int k = 0; k < 3 * kMaxCloud; ++k)
    if (!std::isfinite(cloud[k])) throw std::invalid_argument("environment: cloud contains a non-finite value");
  if (weight) {
    for (int k = 0; k < kMaxCloud; ++k) {
      if (!(weight[k] >= 0.0 && weight[k] <= 1.0))
        throw std::invalid_argument("environment: cloud weights must lie in [0, 1]");
      env.weight[k] = weight[k];
    }
  }
  if (kSchemes[static_cast<std::size_t>(scheme)].smooth) {
    if (!weight) throw std::invalid_argument("environment: a smooth scheme needs its cloud weights");
    env.presence = n_cloud > 0 ? *std::max_element(env.weight, env.weight + n_cloud) : 0.0;
  }
  return env;
}

// Rebuild records from stored arrays (model file / Python): index i of `what` names the culprit.
inline std::vector<Environment> pack_environments(std::size_t n, const std::int64_t* scheme,
                                                  const std::int64_t* element_z, const std::int64_t* n_cloud,
                                                  const std::int64_t* n_lead, const std::int64_t* flags,
                                                  const double* anchors, const double* cloud, const std::string& what,
                                                  const double* weight = nullptr) {
  std::vector<Environment> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string label = what + " environment " + std::to_string(i);
    try {
      out[i] =
          make_environment(static_cast<int>(scheme[i]), static_cast<int>(element_z[i]), static_cast<int>(n_cloud[i]),
                           static_cast<int>(n_lead[i]), static_cast<int>(flags[i]), anchors + 3 * kMaxAnchors * i,
                           cloud + 3 * kMaxCloud * i, weight ? weight + kMaxCloud * i : nullptr);
    } catch (const std::out_of_range& e) {
      throw std::out_of_range(label + ": " + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(label + ": " + e.what());
    }
  }
  return out;
}

}  // namespace clusterforce
