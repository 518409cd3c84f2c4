// 2-body and 3-body descriptors of one centre atom, with smooth cosine cutoffs and analytic
// gradients with respect to the neighbours' relative positions.
//
// Conventions (shared by the GAP model, its training and the LAMMPS pair style):
// * A centre sees its neighbours through relative positions rel_j = r_j - r_i (Angstrom) and
//   species indices 0..n_species-1. Gradients are with respect to rel_j; the gradient with
//   respect to the centre itself is minus their sum (translation invariance).
// * Pair descriptor: q = r_ij, cutoff weight fc(r_ij). Channel = unordered species pair.
// * Triplet descriptor (review eq. 18): the triangle (i, j, k) with j < k both inside the
//   cutoff of i, described by its three side lengths. The atoms are put in order of species
//   (stable), q = (r_01, r_02, r_12) between the ordered atoms, and q is reduced to the
//   lexicographically smallest image under the species-preserving permutations of the
//   triangle. A kernel that sums over those permutations (gap.hpp) is then a smooth function
//   of the triangle alone, whichever atom is the centre. Weight fc(r_ij) fc(r_ik).
//   Channel = unordered species triple.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace clusterforce {

/// Cosine switch: 1 below r_cut - width, 0 from r_cut on, 0.5 (1 + cos(pi x)) in between.
class CosineCutoff {
 public:
  CosineCutoff(double r_cut, double width) : r_cut_(r_cut), width_(width) {
    if (!(r_cut > 0.0) || !std::isfinite(r_cut)) {
      throw std::invalid_argument("cutoff radius must be positive and finite, got " + std::to_string(r_cut));
    }
    if (!(width > 0.0) || width > r_cut) {
      throw std::invalid_argument("cutoff transition width must be in (0, r_cut=" + std::to_string(r_cut) + "], got " +
                                  std::to_string(width));
    }
  }
  double r_cut() const { return r_cut_; }
  double width() const { return width_; }

  /// Value f(r) and derivative df/dr.
  void eval(double r, double& f, double& df) const {
    const double r_in = r_cut_ - width_;
    if (r <= r_in) {
      f = 1.0;
      df = 0.0;
    } else if (r >= r_cut_) {
      f = 0.0;
      df = 0.0;
    } else {
      const double x = kPi * (r - r_in) / width_;
      f = 0.5 * (1.0 + std::cos(x));
      df = -0.5 * kPi / width_ * std::sin(x);
    }
  }

 private:
  static constexpr double kPi = 3.14159265358979323846;
  double r_cut_;
  double width_;
};

inline void check_species(int s, int n_species, const char* what) {
  if (s < 0 || s >= n_species) {
    throw std::out_of_range(std::string(what) + " species index " + std::to_string(s) + " outside [0, " +
                            std::to_string(n_species) + ")");
  }
}

inline int n_pair_channels(int n_species) {
  return n_species * (n_species + 1) / 2;
}
inline int n_triplet_channels(int n_species) {
  return n_species * (n_species + 1) * (n_species + 2) / 6;
}

/// Index of the unordered species pair {a, b}; pairs enumerated as (0,0), (0,1), ..., (1,1), ...
inline int pair_channel(int a, int b, int n_species) {
  if (a > b) std::swap(a, b);
  return a * n_species - a * (a - 1) / 2 + (b - a);
}

/// Species of every triplet channel, each sorted, in channel order (lexicographic a <= b <= c).
inline std::vector<std::array<int, 3>> triplet_channel_species(int n_species) {
  std::vector<std::array<int, 3>> out;
  for (int a = 0; a < n_species; ++a)
    for (int b = a; b < n_species; ++b)
      for (int c = b; c < n_species; ++c) out.push_back({a, b, c});
  return out;
}

/// Index of the unordered species triple {a, b, c}.
inline int triplet_channel(int a, int b, int c, int n_species) {
  if (a > b) std::swap(a, b);
  if (b > c) std::swap(b, c);
  if (a > b) std::swap(a, b);
  // channels with first species < a, then pairs (b, c) with a <= b <= c
  int idx = 0;
  for (int x = 0; x < a; ++x) idx += (n_species - x) * (n_species - x + 1) / 2;
  const int m = n_species - a;  // pairs among species a..S-1
  const int bb = b - a, cc = c - a;
  return idx + bb * m - bb * (bb - 1) / 2 + (cc - bb);
}

/// Side index of the triangle edge between ordered atoms x != y (0: 01, 1: 02, 2: 12).
inline int triangle_side(int x, int y) {
  if (x > y) std::swap(x, y);
  return x == 0 ? y - 1 : 2;
}

/// Species-preserving permutations of a triangle whose ordered atoms have species t (sorted),
/// expressed on the sides: (P q)[d] = q[perm[d]].
struct TripletSymmetry {
  int n = 0;
  std::array<std::array<int, 3>, 6> perms{};
};

inline TripletSymmetry triplet_symmetry(const std::array<int, 3>& t) {
  static const int atom_perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  TripletSymmetry sym;
  for (const auto& p : atom_perms) {
    if (t[p[0]] != t[0] || t[p[1]] != t[1] || t[p[2]] != t[2]) continue;
    auto& out = sym.perms[sym.n++];
    const int sides[3][2] = {{0, 1}, {0, 2}, {1, 2}};
    for (int d = 0; d < 3; ++d) out[d] = triangle_side(p[sides[d][0]], p[sides[d][1]]);
  }
  return sym;
}

/// A triangle in canonical form: its species channel, and which side of the original triangle
/// (0: centre-j, 1: centre-k, 2: j-k) is canonical side d.
struct CanonicalTriangle {
  int channel;
  int side[3];
};

/// Canonical form of the triangle with atoms 0 = centre, 1 = j, 2 = k of species sp and side
/// lengths len (centre-j, centre-k, j-k): atoms put in order of species (stable), then the
/// lexicographically smallest side image under the species-preserving permutations.
inline CanonicalTriangle canonical_triangle(const int sp[3], const double len[3], int n_species) {
  std::array<int, 3> ord = {0, 1, 2};
  for (int x = 1; x < 3; ++x)
    for (int y = x; y > 0 && sp[ord[y]] < sp[ord[y - 1]]; --y) std::swap(ord[y], ord[y - 1]);
  const int sides0[3] = {triangle_side(ord[0], ord[1]), triangle_side(ord[0], ord[2]), triangle_side(ord[1], ord[2])};
  const std::array<int, 3> t = {sp[ord[0]], sp[ord[1]], sp[ord[2]]};
  const TripletSymmetry sym = triplet_symmetry(t);
  int best = 0;
  for (int s = 1; s < sym.n; ++s) {
    const auto& p = sym.perms[s];
    const auto& pb = sym.perms[best];
    for (int d = 0; d < 3; ++d) {
      if (len[sides0[p[d]]] < len[sides0[pb[d]]]) {
        best = s;
        break;
      }
      if (len[sides0[p[d]]] > len[sides0[pb[d]]]) break;
    }
  }
  CanonicalTriangle out;
  out.channel = triplet_channel(t[0], t[1], t[2], n_species);
  for (int d = 0; d < 3; ++d) out.side[d] = sides0[sym.perms[best][d]];
  return out;
}

struct PairDescriptor {
  int neighbor;  // index into the neighbour arrays
  int channel;   // pair_channel(centre species, neighbour species)
  double r;      // q = r_ij (Angstrom)
  double dr[3];  // dr/d rel_j (unit vector)
  double fc;     // cutoff weight fc(r)
  double dfc;    // dfc/dr
};

struct TripletDescriptor {
  int j, k;            // neighbour indices, j < k
  int channel;         // triplet_channel of the three species
  double q[3];         // canonical side lengths (Angstrom)
  double dq_dj[3][3];  // dq[d] / d rel_j[x]
  double dq_dk[3][3];  // dq[d] / d rel_k[x]
  double w;            // fc(r_ij) fc(r_ik)
  double dw_dj[3], dw_dk[3];
};

/// Pairs of the centre with every neighbour closer than the cutoff; appended to out.
inline void pair_descriptors(const CosineCutoff& cut, int centre_species, const double* rel, const int* species, int n,
                             int n_species, std::vector<PairDescriptor>& out) {
  check_species(centre_species, n_species, "centre");
  const double rc2 = cut.r_cut() * cut.r_cut();
  for (int j = 0; j < n; ++j) {
    const double* d = rel + 3 * j;
    const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    if (r2 >= rc2) continue;
    check_species(species[j], n_species, "neighbour");
    if (r2 == 0.0) throw std::invalid_argument("neighbour " + std::to_string(j) + " sits on the centre atom (r = 0)");
    PairDescriptor p;
    p.neighbor = j;
    p.channel = pair_channel(centre_species, species[j], n_species);
    p.r = std::sqrt(r2);
    for (int x = 0; x < 3; ++x) p.dr[x] = d[x] / p.r;
    cut.eval(p.r, p.fc, p.dfc);
    out.push_back(p);
  }
}

/// Triangles of the centre with every pair of neighbours j < k inside the cutoff; appended to out.
inline void triplet_descriptors(const CosineCutoff& cut, int centre_species, const double* rel, const int* species,
                                int n, int n_species, std::vector<TripletDescriptor>& out) {
  std::vector<PairDescriptor> legs;
  pair_descriptors(cut, centre_species, rel, species, n, n_species, legs);
  for (std::size_t a = 0; a < legs.size(); ++a) {
    for (std::size_t b = a + 1; b < legs.size(); ++b) {
      const PairDescriptor& pj = legs[a];
      const PairDescriptor& pk = legs[b];
      const double* dj = rel + 3 * pj.neighbor;
      const double* dk = rel + 3 * pk.neighbor;
      double ujk[3];
      double rjk2 = 0.0;
      for (int x = 0; x < 3; ++x) {
        ujk[x] = dk[x] - dj[x];
        rjk2 += ujk[x] * ujk[x];
      }
      if (rjk2 == 0.0) {
        throw std::invalid_argument("neighbours " + std::to_string(pj.neighbor) + " and " +
                                    std::to_string(pk.neighbor) + " coincide");
      }
      const double rjk = std::sqrt(rjk2);
      for (int x = 0; x < 3; ++x) ujk[x] /= rjk;
      // Sides of the triangle (centre-j, centre-k, j-k) and their gradients w.r.t. rel_j, rel_k.
      const int sp[3] = {centre_species, species[pj.neighbor], species[pk.neighbor]};
      const double len[3] = {pj.r, pk.r, rjk};
      double gj0[3][3] = {}, gk0[3][3] = {};
      for (int x = 0; x < 3; ++x) {
        gj0[0][x] = pj.dr[x];
        gk0[1][x] = pk.dr[x];
        gj0[2][x] = -ujk[x];
        gk0[2][x] = ujk[x];
      }
      const CanonicalTriangle canon = canonical_triangle(sp, len, n_species);
      TripletDescriptor tr;
      tr.j = pj.neighbor;
      tr.k = pk.neighbor;
      tr.channel = canon.channel;
      for (int d = 0; d < 3; ++d) {
        tr.q[d] = len[canon.side[d]];
        for (int x = 0; x < 3; ++x) {
          tr.dq_dj[d][x] = gj0[canon.side[d]][x];
          tr.dq_dk[d][x] = gk0[canon.side[d]][x];
        }
      }
      tr.w = pj.fc * pk.fc;
      for (int x = 0; x < 3; ++x) {
        tr.dw_dj[x] = pj.dfc * pk.fc * pj.dr[x];
        tr.dw_dk[x] = pj.fc * pk.dfc * pk.dr[x];
      }
      out.push_back(tr);
    }
  }
}

/// A pair or triplet in the uniform form the n-body kernels consume.
struct NBodyInstance {
  int channel;
  int n_atoms;         // neighbours involved: 1 (pair) or 2 (triplet)
  int atom[2];         // their indices in the neighbour arrays
  double q[3];         // descriptor, first order-1 ... entries used (1 for pairs, 3 for triplets)
  double dq[3][2][3];  // dq[d] / d rel_{atom[a]}[x]
  double w;            // cutoff weight
  double dw[2][3];     // dw / d rel_{atom[a]}[x]
};

/// Descriptor dimension of an n-body order (2 -> 1, 3 -> 3).
inline int nbody_dim(int order) {
  if (order != 2 && order != 3)
    throw std::invalid_argument("n-body order must be 2 or 3, got " + std::to_string(order));
  return order == 2 ? 1 : 3;
}

inline int nbody_n_channels(int order, int n_species) {
  return nbody_dim(order) == 1 ? n_pair_channels(n_species) : n_triplet_channels(n_species);
}

/// Pair (order 2) or triplet (order 3) instances of one centre; appended to out.
inline void nbody_instances(int order, const CosineCutoff& cut, int centre_species, const double* rel,
                            const int* species, int n, int n_species, std::vector<NBodyInstance>& out) {
  if (nbody_dim(order) == 1) {
    std::vector<PairDescriptor> pairs;
    pair_descriptors(cut, centre_species, rel, species, n, n_species, pairs);
    for (const auto& p : pairs) {
      NBodyInstance s{};
      s.channel = p.channel;
      s.n_atoms = 1;
      s.atom[0] = p.neighbor;
      s.q[0] = p.r;
      s.w = p.fc;
      for (int x = 0; x < 3; ++x) {
        s.dq[0][0][x] = p.dr[x];
        s.dw[0][x] = p.dfc * p.dr[x];
      }
      out.push_back(s);
    }
    return;
  }
  std::vector<TripletDescriptor> triplets;
  triplet_descriptors(cut, centre_species, rel, species, n, n_species, triplets);
  for (const auto& t : triplets) {
    NBodyInstance s{};
    s.channel = t.channel;
    s.n_atoms = 2;
    s.atom[0] = t.j;
    s.atom[1] = t.k;
    s.w = t.w;
    for (int d = 0; d < 3; ++d) {
      s.q[d] = t.q[d];
      for (int x = 0; x < 3; ++x) {
        s.dq[d][0][x] = t.dq_dj[d][x];
        s.dq[d][1][x] = t.dq_dk[d][x];
      }
    }
    for (int x = 0; x < 3; ++x) {
      s.dw[0][x] = t.dw_dj[x];
      s.dw[1][x] = t.dw_dk[x];
    }
    out.push_back(s);
  }
}

}  // namespace clusterforce
