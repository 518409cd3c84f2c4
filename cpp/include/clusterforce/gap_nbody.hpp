// GAP n-body terms: squared-exponential kernels on pair distances (2b) and on triangles summed
// over their species-preserving permutations (3b, review eq. 18), per species channel.
// Pairs carry weight fc/2 because a full neighbour list sees each pair from both ends.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gap_term.hpp"
#include "nbody.hpp"
#include "parallel.hpp"

namespace clusterforce {

struct NBodyParams {
  int order = 2;                 // 2 or 3
  double r_cut = 0.0;            // Angstrom
  double width = 0.0;            // cutoff transition width (Angstrom)
  double theta = 0.0;            // kernel length scale (Angstrom)
  double delta = 0.0;            // energy scale (eV)
  std::vector<double> sparse;    // M x dim sparse descriptors, grouped by channel
  std::vector<int64_t> offsets;  // n_channels + 1: channel c owns sparse[offsets[c] .. offsets[c+1])
  std::vector<double> alpha;     // M weights (eV / delta^2 units folded in); empty before training
};

class NBodyTerm : public GapTerm {
 public:
  NBodyTerm(int n_species, NBodyParams p)
      : n_species_(n_species), dim_(nbody_dim(p.order)), cut_(p.r_cut, p.width), p_(std::move(p)) {
    if (n_species < 1) throw std::invalid_argument("n_species must be >= 1, got " + std::to_string(n_species));
    if (!(p_.theta > 0.0))
      throw std::invalid_argument("kernel length scale theta must be > 0, got " + std::to_string(p_.theta));
    if (!(p_.delta > 0.0))
      throw std::invalid_argument("energy scale delta must be > 0, got " + std::to_string(p_.delta));
    const std::size_t nc = static_cast<std::size_t>(nbody_n_channels(p_.order, n_species));
    if (p_.offsets.size() != nc + 1) {
      throw std::invalid_argument(std::to_string(p_.order) + "b term: offsets must have n_channels + 1 = " +
                                  std::to_string(nc + 1) + " entries, got " + std::to_string(p_.offsets.size()));
    }
    if (p_.sparse.size() % dim_ != 0) {
      throw std::invalid_argument(std::to_string(p_.order) + "b term: sparse has " + std::to_string(p_.sparse.size()) +
                                  " values, not a multiple of the descriptor dimension " + std::to_string(dim_));
    }
    const int64_t m = static_cast<int64_t>(p_.sparse.size() / dim_);
    if (p_.offsets.front() != 0 || p_.offsets.back() != m || !std::is_sorted(p_.offsets.begin(), p_.offsets.end())) {
      throw std::invalid_argument(std::to_string(p_.order) +
                                  "b term: offsets must rise from 0 to the number of sparse points " +
                                  std::to_string(m));
    }
    if (!p_.alpha.empty() && static_cast<int64_t>(p_.alpha.size()) != m) {
      throw std::invalid_argument(std::to_string(p_.order) + "b term: alpha has " + std::to_string(p_.alpha.size()) +
                                  " entries for " + std::to_string(m) + " sparse points");
    }
    if (dim_ == 3) {
      for (const auto& t : triplet_channel_species(n_species)) symmetry_.push_back(triplet_symmetry(t));
    }
  }

  int order() const { return p_.order; }
  int dim() const { return dim_; }
  int n_species() const { return n_species_; }
  int n_sparse() const override { return static_cast<int>(p_.sparse.size() / dim_); }
  double r_cut() const override { return p_.r_cut; }
  const CosineCutoff& cutoff() const { return cut_; }
  const NBodyParams& params() const { return p_; }

  /// Weighted instances of a centre (pairs carry fc/2).
  void instances(int cs, const double* rel, const int* sp, int n, std::vector<NBodyInstance>& out) const {
    const std::size_t first = out.size();
    nbody_instances(p_.order, cut_, cs, rel, sp, n, n_species_, out);
    if (dim_ == 1) {
      for (std::size_t i = first; i < out.size(); ++i) {
        out[i].w *= 0.5;
        for (int x = 0; x < 3; ++x) out[i].dw[0][x] *= 0.5;
      }
    }
  }

  /// Kernel between two descriptors of the same channel.
  double kernel_between(int channel, const double* q, const double* q2) const {
    const double g = -0.5 / (p_.theta * p_.theta);
    const double d2 = p_.delta * p_.delta;
    if (dim_ == 1) return d2 * std::exp(g * (q[0] - q2[0]) * (q[0] - q2[0]));
    const TripletSymmetry& sym = symmetry_[channel];
    double k = 0.0;
    for (int s = 0; s < sym.n; ++s) {
      double r2 = 0.0;
      for (int d = 0; d < 3; ++d) {
        const double diff = q[d] - q2[sym.perms[s][d]];
        r2 += diff * diff;
      }
      k += std::exp(g * r2);
    }
    return d2 * k;
  }

  /// Kernel values k[m] and gradients dk[m*dim + d] = dk/dq[d] for the channel's sparse points.
  void kernel(int channel, const double* q, double* k, double* dk) const {
    const double g = -0.5 / (p_.theta * p_.theta);
    const double d2 = p_.delta * p_.delta;
    const int64_t lo = p_.offsets[channel], hi = p_.offsets[channel + 1];
    for (int64_t m = lo; m < hi; ++m) {
      const double* qm = p_.sparse.data() + m * dim_;
      double* g_out = dk + (m - lo) * dim_;
      if (dim_ == 1) {
        const double diff = q[0] - qm[0];
        const double e = d2 * std::exp(g * diff * diff);
        k[m - lo] = e;
        g_out[0] = 2.0 * g * diff * e;
        continue;
      }
      const TripletSymmetry& sym = symmetry_[channel];
      double kk = 0.0, gg[3] = {0.0, 0.0, 0.0};
      for (int s = 0; s < sym.n; ++s) {
        double diff[3], r2 = 0.0;
        for (int d = 0; d < 3; ++d) {
          diff[d] = q[d] - qm[sym.perms[s][d]];
          r2 += diff[d] * diff[d];
        }
        const double e = d2 * std::exp(g * r2);
        kk += e;
        for (int d = 0; d < 3; ++d) gg[d] += 2.0 * g * diff[d] * e;
      }
      k[m - lo] = kk;
      for (int d = 0; d < 3; ++d) g_out[d] = gg[d];
    }
  }

  /// The term's energy function of one descriptor, sum_m alpha_m k(q, q_m) over the channel's
  /// sparse points (eV, before the cutoff weight): what `clusterforce map` tabulates.
  double local_function(int channel, const double* q) const {
    if (p_.alpha.empty())
      throw std::invalid_argument(std::to_string(p_.order) + "b term has no weights (alpha): train it first");
    double f = 0.0;
    for (int64_t m = p_.offsets[channel]; m < p_.offsets[channel + 1]; ++m)
      f += p_.alpha[m] * kernel_between(channel, q, p_.sparse.data() + m * dim_);
    return f;
  }

  /// Local energy of this term for a centre; grad (n x 3) += d energy / d rel_j.
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const override {
    if (p_.alpha.empty())
      throw std::invalid_argument(std::to_string(p_.order) + "b term has no weights (alpha): train it first");
    std::vector<NBodyInstance> inst;
    instances(cs, rel, sp, n, inst);
    std::vector<double> k, dk;
    double energy = 0.0;
    for (const auto& s : inst) {
      const int64_t lo = p_.offsets[s.channel], mc = p_.offsets[s.channel + 1] - lo;
      if (mc == 0) continue;
      k.resize(mc);
      dk.resize(mc * dim_);
      kernel(s.channel, s.q, k.data(), dk.data());
      double f = 0.0, df[3] = {0.0, 0.0, 0.0};
      for (int64_t m = 0; m < mc; ++m) {
        const double a = p_.alpha[lo + m];
        f += a * k[m];
        for (int d = 0; d < dim_; ++d) df[d] += a * dk[m * dim_ + d];
      }
      energy += s.w * f;
      if (grad == nullptr) continue;
      for (int a = 0; a < s.n_atoms; ++a) {
        double* g = grad + 3 * s.atom[a];
        for (int x = 0; x < 3; ++x) {
          double v = f * s.dw[a][x];
          for (int d = 0; d < dim_; ++d) v += s.w * df[d] * s.dq[d][a][x];
          g[x] += v;
        }
      }
    }
    return energy;
  }

  /// Kernel rows of a centre: row[m] += d energy / d alpha_m, and, if grad_rows is given,
  /// grad_rows[(j*3 + x)*M + m] += d^2 energy / d alpha_m d rel_j[x].
  void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const override {
    std::vector<NBodyInstance> inst;
    instances(cs, rel, sp, n, inst);
    const int64_t big_m = n_sparse();
    std::vector<double> k, dk;
    for (const auto& s : inst) {
      const int64_t lo = p_.offsets[s.channel], mc = p_.offsets[s.channel + 1] - lo;
      if (mc == 0) continue;
      k.resize(mc);
      dk.resize(mc * dim_);
      kernel(s.channel, s.q, k.data(), dk.data());
      for (int64_t m = 0; m < mc; ++m) row[lo + m] += s.w * k[m];
      if (grad_rows == nullptr) continue;
      for (int a = 0; a < s.n_atoms; ++a) {
        for (int x = 0; x < 3; ++x) {
          double* out = grad_rows + (3 * static_cast<int64_t>(s.atom[a]) + x) * big_m + lo;
          double wdq[3];
          for (int d = 0; d < dim_; ++d) wdq[d] = s.w * s.dq[d][a][x];
          for (int64_t m = 0; m < mc; ++m) {
            double v = k[m] * s.dw[a][x];
            for (int d = 0; d < dim_; ++d) v += dk[m * dim_ + d] * wdq[d];
            out[m] += v;
          }
        }
      }
    }
  }

  double centre_self_covariance(int cs, const double* rel, const int* sp, int n) const override {
    std::vector<NBodyInstance> inst;
    instances(cs, rel, sp, n, inst);
    return self_covariance(inst);
  }

  double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const override {
    std::vector<NBodyInstance> inst;
    for (int i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      instances(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), inst);
    }
    return self_covariance(inst);
  }

  void structure_force_prior(const CentreNeighbors& nl, const int* species, int n, double* out) const override {
    // Local energy w_a eps(q_a) per instance; for one coordinate r its derivative is
    // L_a = dw_a eps + w_a grad eps . dq_a, and var(F) = sum_ab L_a L_b' k(q_a, q_b).
    struct Touch {
      int inst;
      double dw[3];
      double dq[3][3];  // dq[d][x]
    };
    std::vector<NBodyInstance> inst;
    std::vector<std::vector<Touch>> by_atom(n);
    for (int i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      const std::size_t first = inst.size();
      instances(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), inst);
      for (std::size_t t = first; t < inst.size(); ++t) {
        const NBodyInstance& s = inst[t];
        // The centre moves every relative position: its derivative is minus their sum.
        Touch local[3] = {};
        int atoms[3] = {i, -1, -1}, n_local = 1;
        local[0].inst = static_cast<int>(t);
        for (int a = 0; a < s.n_atoms; ++a) {
          const int atom = static_cast<int>(nl.index[o + s.atom[a]]);
          int slot = 0;
          while (slot < n_local && atoms[slot] != atom) ++slot;
          if (slot == n_local) {
            atoms[n_local] = atom;
            local[n_local].inst = static_cast<int>(t);
            ++n_local;
          }
          for (int x = 0; x < 3; ++x) {
            local[slot].dw[x] += s.dw[a][x];
            local[0].dw[x] -= s.dw[a][x];
            for (int d = 0; d < dim_; ++d) {
              local[slot].dq[d][x] += s.dq[d][a][x];
              local[0].dq[d][x] -= s.dq[d][a][x];
            }
          }
        }
        for (int l = 0; l < n_local; ++l) by_atom[atoms[l]].push_back(local[l]);
      }
    }
    parallel_for(n, [&](int64_t atom) {
      const int k = static_cast<int>(atom);
      for (const Touch& a : by_atom[k]) {
        const NBodyInstance& sa = inst[a.inst];
        for (const Touch& b : by_atom[k]) {
          const NBodyInstance& sb = inst[b.inst];
          if (sa.channel != sb.channel) continue;
          double kab, ga[3], gb[3], h[9];
          kernel_second(sa.channel, sa.q, sb.q, kab, ga, gb, h);
          for (int x = 0; x < 3; ++x) {
            double v = a.dw[x] * b.dw[x] * kab;
            for (int d = 0; d < dim_; ++d) {
              v += a.dw[x] * sb.w * gb[d] * b.dq[d][x] + sa.w * b.dw[x] * ga[d] * a.dq[d][x];
              for (int e = 0; e < dim_; ++e) v += sa.w * sb.w * a.dq[d][x] * h[d * 3 + e] * b.dq[e][x];
            }
            out[3 * k + x] += v;
          }
        }
      }
    });
  }

  /// k(q, q2), its gradients with respect to q (ga) and q2 (gb) and the mixed second
  /// derivatives h[d * 3 + e] = d^2 k / dq[d] dq2[e].
  void kernel_second(int channel, const double* q, const double* q2, double& k, double* ga, double* gb,
                     double* h) const {
    const double g = -0.5 / (p_.theta * p_.theta);
    const double d2 = p_.delta * p_.delta;
    k = 0.0;
    std::fill(ga, ga + 3, 0.0);
    std::fill(gb, gb + 3, 0.0);
    std::fill(h, h + 9, 0.0);
    const TripletSymmetry identity{1, {{0, 1, 2}}};
    const TripletSymmetry& sym = dim_ == 1 ? identity : symmetry_[channel];
    for (int s = 0; s < sym.n; ++s) {
      const auto& perm = sym.perms[s];
      double diff[3], r2 = 0.0;
      for (int d = 0; d < dim_; ++d) {
        diff[d] = q[d] - q2[perm[d]];
        r2 += diff[d] * diff[d];
      }
      const double e = d2 * std::exp(g * r2);
      k += e;
      for (int d = 0; d < dim_; ++d) {
        ga[d] += 2.0 * g * diff[d] * e;
        gb[perm[d]] -= 2.0 * g * diff[d] * e;
        h[d * 3 + perm[d]] -= 2.0 * g * e;
        for (int c = 0; c < dim_; ++c) h[d * 3 + perm[c]] -= 4.0 * g * g * diff[d] * diff[c] * e;
      }
    }
  }

  /// Kernel matrix between the sparse points (M x M, row-major; zero across channels).
  void sparse_covariance(double* out) const {
    const int64_t m = n_sparse();
    std::fill(out, out + m * m, 0.0);
    for (std::size_t c = 0; c + 1 < p_.offsets.size(); ++c) {
      for (int64_t a = p_.offsets[c]; a < p_.offsets[c + 1]; ++a) {
        for (int64_t b = p_.offsets[c]; b < p_.offsets[c + 1]; ++b) {
          out[a * m + b] =
              kernel_between(static_cast<int>(c), p_.sparse.data() + a * dim_, p_.sparse.data() + b * dim_);
        }
      }
    }
  }

  /// Prior covariance of the energy carried by a set of instances: sum_ab w_a w_b k(q_a, q_b).
  double self_covariance(const std::vector<NBodyInstance>& inst) const {
    double c = 0.0;
    for (std::size_t a = 0; a < inst.size(); ++a) {
      c += inst[a].w * inst[a].w * kernel_between(inst[a].channel, inst[a].q, inst[a].q);
      for (std::size_t b = a + 1; b < inst.size(); ++b) {
        if (inst[a].channel != inst[b].channel) continue;
        c += 2.0 * inst[a].w * inst[b].w * kernel_between(inst[a].channel, inst[a].q, inst[b].q);
      }
    }
    return c;
  }

 private:
  int n_species_;
  int dim_;
  CosineCutoff cut_;
  NBodyParams p_;
  std::vector<TripletSymmetry> symmetry_;
};

/// Descriptor instances (weight = cutoff fc, without the term's pair factor) of every centre of
/// a structure; centre[t] is the centre atom of instance t.
inline void structure_nbody_instances(int order, const CosineCutoff& cut, int n_species, const Geometry& g,
                                      std::vector<NBodyInstance>& out, std::vector<int>& centre) {
  for (int i = 0; i < g.n; ++i) check_species(g.species[i], n_species, "atom");
  const CentreNeighbors nl = centre_neighbors(g, cut.r_cut());
  for (int i = 0; i < g.n; ++i) {
    const int64_t o = nl.offsets[i];
    const std::size_t before = out.size();
    nbody_instances(order, cut, g.species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), n_species,
                    out);
    centre.insert(centre.end(), out.size() - before, i);
  }
}

}  // namespace clusterforce
