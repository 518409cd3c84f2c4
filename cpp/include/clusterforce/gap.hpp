// GAP-style sparse Gaussian process prediction: sum of n-body terms (2b, 3b) and SOAP.
//
// Local energy of centre i: e0[s_i] + sum_t sum_{instances of i} w * sum_m alpha_{t,m} k_t(q, q_m),
// with k_t = delta_t^2 * (squared exponential in q, summed over the triangle's species-preserving
// permutations for 3b). Pairs carry weight fc/2 because a full neighbour list sees each pair
// from both ends. The same per-centre code serves training (kernel rows, one column per sparse
// point), prediction (rows contracted with alpha) and the LAMMPS pair style (centre plus its
// neighbours' relative positions; gradients scattered to the neighbours).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "modelfile.hpp"
#include "nbody.hpp"
#include "neighbors.hpp"
#include "soap.hpp"

namespace clusterforce {

struct NBodyParams {
  int order = 2;                  // 2 or 3
  double r_cut = 0.0;             // Angstrom
  double width = 0.0;             // cutoff transition width (Angstrom)
  double theta = 0.0;             // kernel length scale (Angstrom)
  double delta = 0.0;             // energy scale (eV)
  std::vector<double> sparse;     // M x dim sparse descriptors, grouped by channel
  std::vector<int64_t> offsets;   // n_channels + 1: channel c owns sparse[offsets[c] .. offsets[c+1])
  std::vector<double> alpha;      // M weights (eV / delta^2 units folded in); empty before training
};

/// A structure as the whole-structure entry points take it: positions (n x 3, Angstrom),
/// species indices (n), and a cell (3 x 3, rows = lattice vectors) with periodic flags;
/// cell may be null for a free cluster.
struct Geometry {
  const double* positions = nullptr;
  const int* species = nullptr;
  int n = 0;
  const double* cell = nullptr;
  std::array<bool, 3> pbc = {false, false, false};
};

/// Neighbours of every centre in CSR form: centre i sees index[offsets[i] .. offsets[i+1])
/// (atom indices, periodic images included) at relative positions rel (r_j + shift - r_i)
/// with species.
struct CentreNeighbors {
  std::vector<int64_t> offsets;
  std::vector<int64_t> index;
  std::vector<double> rel;
  std::vector<int> species;
  int count(int i) const { return static_cast<int>(offsets[i + 1] - offsets[i]); }
};

inline CentreNeighbors centre_neighbors(const Geometry& g, double cutoff) {
  const NeighborList pairs = neighbor_list(g.positions, static_cast<std::size_t>(g.n), cutoff, g.cell, g.pbc);
  CentreNeighbors out;
  out.offsets.assign(static_cast<std::size_t>(g.n) + 1, 0);
  for (std::size_t p = 0; p < pairs.size(); ++p) ++out.offsets[pairs.i[p] + 1];
  for (int i = 0; i < g.n; ++i) out.offsets[i + 1] += out.offsets[i];
  out.index = pairs.j;  // pairs come sorted by centre
  out.rel = pairs.D;
  out.species.resize(pairs.size());
  for (std::size_t p = 0; p < pairs.size(); ++p) out.species[p] = g.species[pairs.j[p]];
  return out;
}

/// One additive term of the GAP energy, seen from one centre at a time.
class GapTerm {
 public:
  virtual ~GapTerm() = default;
  virtual double r_cut() const = 0;
  virtual int n_sparse() const = 0;
  /// Local energy of the centre (eV); grad (n x 3) += d energy / d rel_j.
  virtual double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const = 0;
  /// row[m] += d energy / d alpha_m; grad_rows[(j*3 + x)*M + m] += its gradient (skipped if null).
  virtual void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const = 0;
  /// Prior covariance of the local energy of one centre with itself (eV^2).
  virtual double centre_self_covariance(int cs, const double* rel, const int* sp, int n) const = 0;
  /// Prior variance of the summed local energies of a whole structure (eV^2).
  virtual double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const = 0;
};

class NBodyTerm : public GapTerm {
 public:
  NBodyTerm(int n_species, NBodyParams p)
      : n_species_(n_species), dim_(nbody_dim(p.order)), cut_(p.r_cut, p.width), p_(std::move(p)) {
    if (n_species < 1) throw std::invalid_argument("n_species must be >= 1, got " + std::to_string(n_species));
    if (!(p_.theta > 0.0)) throw std::invalid_argument("kernel length scale theta must be > 0, got " + std::to_string(p_.theta));
    if (!(p_.delta > 0.0)) throw std::invalid_argument("energy scale delta must be > 0, got " + std::to_string(p_.delta));
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
    if (p_.offsets.front() != 0 || p_.offsets.back() != m ||
        !std::is_sorted(p_.offsets.begin(), p_.offsets.end())) {
      throw std::invalid_argument(std::to_string(p_.order) + "b term: offsets must rise from 0 to the number of sparse points " +
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

  /// Local energy of this term for a centre; grad (n x 3) += d energy / d rel_j.
  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const override {
    if (p_.alpha.empty()) throw std::invalid_argument(std::to_string(p_.order) + "b term has no weights (alpha): train it first");
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

  /// Kernel matrix between the sparse points (M x M, row-major; zero across channels).
  void sparse_covariance(double* out) const {
    const int64_t m = n_sparse();
    std::fill(out, out + m * m, 0.0);
    for (std::size_t c = 0; c + 1 < p_.offsets.size(); ++c) {
      for (int64_t a = p_.offsets[c]; a < p_.offsets[c + 1]; ++a) {
        for (int64_t b = p_.offsets[c]; b < p_.offsets[c + 1]; ++b) {
          out[a * m + b] = kernel_between(static_cast<int>(c), p_.sparse.data() + a * dim_, p_.sparse.data() + b * dim_);
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

/// SOAP term: k(p, p') = delta^2 (p_hat . p'_hat)^zeta between normalised power spectra of
/// centres of the same species (review eq. 16). Sparse points are stored normalised, grouped
/// by centre species (offsets has n_species + 1 entries).
class SoapTerm : public GapTerm {
 public:
  SoapTerm(SoapGTO soap, double delta, int zeta, std::vector<double> sparse, std::vector<int64_t> offsets,
           std::vector<double> alpha)
      : soap_(std::move(soap)), delta_(delta), zeta_(zeta), sparse_(std::move(sparse)), offsets_(std::move(offsets)),
        alpha_(std::move(alpha)) {
    const std::size_t f = soap_.n_features();
    if (!(delta > 0.0)) throw std::invalid_argument("SOAP term: delta must be > 0, got " + std::to_string(delta));
    if (zeta < 1) throw std::invalid_argument("SOAP term: zeta must be >= 1, got " + std::to_string(zeta));
    if (sparse_.size() % f != 0) {
      throw std::invalid_argument("SOAP term: sparse has " + std::to_string(sparse_.size()) +
                                  " values, not a multiple of the " + std::to_string(f) + " SOAP features");
    }
    const int64_t m = static_cast<int64_t>(sparse_.size() / f);
    if (offsets_.size() != static_cast<std::size_t>(soap_.n_species()) + 1 || offsets_.front() != 0 ||
        offsets_.back() != m || !std::is_sorted(offsets_.begin(), offsets_.end())) {
      throw std::invalid_argument("SOAP term: offsets must have n_species + 1 = " + std::to_string(soap_.n_species() + 1) +
                                  " entries rising from 0 to the number of sparse points " + std::to_string(m));
    }
    if (!alpha_.empty() && static_cast<int64_t>(alpha_.size()) != m) {
      throw std::invalid_argument("SOAP term: alpha has " + std::to_string(alpha_.size()) + " entries for " +
                                  std::to_string(m) + " sparse points");
    }
  }

  const SoapGTO& soap() const { return soap_; }
  double delta() const { return delta_; }
  int zeta() const { return zeta_; }
  double r_cut() const override { return soap_.cutoff(); }
  int n_sparse() const override { return static_cast<int>(sparse_.size() / soap_.n_features()); }

  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const override {
    if (alpha_.empty()) throw std::invalid_argument("SOAP term has no weights (alpha): train it first");
    Centre c = centre(cs, rel, sp, n, grad != nullptr);
    const std::size_t f = soap_.n_features();
    const double d2 = delta_ * delta_;
    // dE/dp_hat = delta^2 sum_m alpha_m zeta z_m^(zeta-1) p_hat_m
    std::vector<double> u(f, 0.0);
    double energy = 0.0;
    for (int64_t m = offsets_[cs]; m < offsets_[cs + 1]; ++m) {
      const double* pm = sparse_.data() + m * f;
      const double z = dot(c.p.data(), pm, f);
      energy += d2 * alpha_[m] * std::pow(z, zeta_);
      if (grad == nullptr) continue;
      const double coef = d2 * alpha_[m] * zeta_ * std::pow(z, zeta_ - 1);
      for (std::size_t k = 0; k < f; ++k) u[k] += coef * pm[k];
    }
    if (grad == nullptr) return energy;
    // Through the normalisation: dE/dp = (u - (u . p_hat) p_hat) / |p|.
    const double up = dot(u.data(), c.p.data(), f);
    for (std::size_t k = 0; k < f; ++k) u[k] = (u[k] - up * c.p[k]) / c.norm;
    for (int j = 0; j < n; ++j) {
      const double* g = c.grad.data() + (j + 1) * 3 * f;
      for (int x = 0; x < 3; ++x) grad[3 * j + x] += dot(g + x * f, u.data(), f);
    }
    return energy;
  }

  void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const override {
    Centre c = centre(cs, rel, sp, n, grad_rows != nullptr);
    const std::size_t f = soap_.n_features();
    const int64_t big_m = n_sparse();
    const double d2 = delta_ * delta_;
    for (int64_t m = offsets_[cs]; m < offsets_[cs + 1]; ++m) {
      const double* pm = sparse_.data() + m * f;
      const double z = dot(c.p.data(), pm, f);
      row[m] += d2 * std::pow(z, zeta_);
      if (grad_rows == nullptr) continue;
      const double coef = d2 * zeta_ * std::pow(z, zeta_ - 1) / c.norm;
      for (int j = 0; j < n; ++j) {
        for (int x = 0; x < 3; ++x) {
          const double* g = c.grad.data() + ((j + 1) * 3 + x) * f;
          grad_rows[(3 * static_cast<int64_t>(j) + x) * big_m + m] += coef * (dot(g, pm, f) - z * dot(g, c.p.data(), f));
        }
      }
    }
  }

  double centre_self_covariance(int, const double*, const int*, int) const override { return delta_ * delta_; }

  double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const override {
    const std::size_t f = soap_.n_features();
    std::vector<std::vector<double>> p(n);
    for (int i = 0; i < n; ++i) {
      const int64_t o = nl.offsets[i];
      p[i] = centre(species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), false).p;
    }
    double c = 0.0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        if (species[i] == species[j]) c += std::pow(dot(p[i].data(), p[j].data(), f), zeta_);
    return delta_ * delta_ * c;
  }

  /// Normalised power spectrum of a centre (length n_features).
  std::vector<double> normalised(int cs, const double* rel, const int* sp, int n) const {
    return centre(cs, rel, sp, n, false).p;
  }

 private:
  struct Centre {
    std::vector<double> p;     // normalised power spectrum
    double norm = 0.0;         // |p| before normalisation
    std::vector<double> grad;  // (n + 1, 3, F) raw gradients, row 0 = centre
  };

  static double dot(const double* a, const double* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t k = 0; k < n; ++k) s += a[k] * b[k];
    return s;
  }

  Centre centre(int cs, const double* rel, const int* sp, int n, bool with_grad) const {
    const std::size_t f = soap_.n_features();
    Centre c;
    c.p.resize(f);
    if (with_grad) c.grad.resize((static_cast<std::size_t>(n) + 1) * 3 * f);
    SoapGTO::Workspace ws = soap_.make_workspace();
    soap_.compute_center(cs, static_cast<std::size_t>(n), rel, sp, c.p.data(), with_grad ? c.grad.data() : nullptr, ws);
    c.norm = std::sqrt(dot(c.p.data(), c.p.data(), f));
    if (!(c.norm > 0.0)) throw std::invalid_argument("SOAP power spectrum of a centre is zero; cannot normalise");
    for (double& v : c.p) v /= c.norm;
    return c;
  }

  SoapGTO soap_;
  double delta_;
  int zeta_;
  std::vector<double> sparse_;
  std::vector<int64_t> offsets_;
  std::vector<double> alpha_;
};

/// Results for a whole structure. Forces = -dE/dr (eV/A); virial = -sum_pairs rel (x) dE/drel (eV),
/// row-major 3 x 3; variances in eV^2 (empty / zero unless requested).
struct GapResult {
  double energy = 0.0;
  std::vector<double> atom_energies;
  std::vector<double> forces;
  std::vector<double> virial;
  std::vector<double> atom_variances;
  double energy_variance = 0.0;
};

/// A trained GAP: isolated-atom energies plus terms; optional posterior matrix for variances.
class GapModel {
 public:
  /// variance: M x M matrix (K_mm^-1 - (K_mm + K_mn Sigma^-1 K_nm)^-1), row-major, M = sum of the
  /// terms' sparse points in term order; empty when the model carries no variance.
  GapModel(int n_species, std::vector<double> e0, std::vector<std::shared_ptr<const GapTerm>> terms,
           std::vector<double> variance)
      : n_species_(n_species), e0_(std::move(e0)), terms_(std::move(terms)), variance_(std::move(variance)) {
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
    for (std::size_t t = 0; t < terms_.size(); ++t) terms_[t]->centre_rows(cs, rel, sp, n, row + term_offsets_[t], nullptr);
  }

  /// Predictive variance (eV^2) of one centre's local energy, prior - k^T V k (the LAMMPS
  /// uncertainty compute calls this per atom; needs a model saved with variances).
  double centre_variance(int cs, const double* rel, const int* sp, int n) const {
    check_species(cs, n_species_, "centre");
    if (variance_.empty()) throw std::invalid_argument("this GAP model carries no variance matrix (trained without variance)");
    std::vector<double> row(static_cast<std::size_t>(n_sparse()), 0.0);
    centre_kernel_row(cs, rel, sp, n, row.data());
    double prior = 0.0;
    for (const auto& t : terms_) prior += t->centre_self_covariance(cs, rel, sp, n);
    return std::max(0.0, prior - quadratic_form(row));
  }

  /// Energy, per-atom energies, forces and virial of a structure; variances if asked.
  GapResult compute(const Geometry& g, bool with_variance) const {
    const int n = g.n;
    const int* species = g.species;
    if (n < 0) throw std::invalid_argument("number of atoms must be >= 0, got " + std::to_string(n));
    for (int i = 0; i < n; ++i) check_species(species[i], n_species_, "atom");
    if (with_variance && variance_.empty()) {
      throw std::invalid_argument("this GAP model carries no variance matrix (trained without variance)");
    }
    const CentreNeighbors nl = centre_neighbors(g, cutoff_);
    GapResult res;
    res.atom_energies.assign(n, 0.0);
    res.forces.assign(3 * static_cast<std::size_t>(n), 0.0);
    res.virial.assign(9, 0.0);
#pragma omp parallel
    {
      std::vector<double> forces(3 * static_cast<std::size_t>(n), 0.0), virial(9, 0.0), grad;
#pragma omp for schedule(dynamic)
      for (int i = 0; i < n; ++i) {
        const int64_t o = nl.offsets[i];
        const int nn = nl.count(i);
        const double* rel = nl.rel.data() + 3 * o;
        grad.assign(3 * static_cast<std::size_t>(nn), 0.0);
        res.atom_energies[i] = centre_energy(species[i], rel, nl.species.data() + o, nn, grad.data());
        for (int j = 0; j < nn; ++j) {
          const int64_t a = nl.index[o + j];
          for (int x = 0; x < 3; ++x) {
            forces[3 * a + x] -= grad[3 * j + x];
            forces[3 * i + x] += grad[3 * j + x];
            for (int y = 0; y < 3; ++y) virial[3 * x + y] -= rel[3 * j + x] * grad[3 * j + y];
          }
        }
      }
#pragma omp critical
      {
        for (std::size_t k = 0; k < forces.size(); ++k) res.forces[k] += forces[k];
        for (int k = 0; k < 9; ++k) res.virial[k] += virial[k];
      }
    }
    for (int i = 0; i < n; ++i) res.energy += res.atom_energies[i];
    if (with_variance) variances(nl, species, n, res);
    return res;
  }

 private:
  // var = prior - k^T V k, for each atom's local energy and for the total energy.
  void variances(const CentreNeighbors& nl, const int* species, int n, GapResult& res) const {
    const int64_t m = n_sparse();
    res.atom_variances.assign(n, 0.0);
    std::vector<double> total_row(m, 0.0);
#pragma omp parallel
    {
      std::vector<double> row(m), vk(m), local_total(m, 0.0);
#pragma omp for schedule(dynamic)
      for (int i = 0; i < n; ++i) {
        const int64_t o = nl.offsets[i];
        const int nn = nl.count(i);
        const double* rel = nl.rel.data() + 3 * o;
        const int* sp = nl.species.data() + o;
        std::fill(row.begin(), row.end(), 0.0);
        centre_kernel_row(species[i], rel, sp, nn, row.data());
        double prior = 0.0;
        for (const auto& t : terms_) prior += t->centre_self_covariance(species[i], rel, sp, nn);
        res.atom_variances[i] = std::max(0.0, prior - quadratic_form(row));
        for (int64_t k = 0; k < m; ++k) local_total[k] += row[k];
      }
#pragma omp critical
      for (int64_t k = 0; k < m; ++k) total_row[k] += local_total[k];
    }
    double prior = 0.0;
    for (const auto& t : terms_) prior += t->structure_self_covariance(nl, species, n);
    res.energy_variance = std::max(0.0, prior - quadratic_form(total_row));
  }

  double quadratic_form(const std::vector<double>& k) const {
    const int64_t m = static_cast<int64_t>(k.size());
    double s = 0.0;
    for (int64_t a = 0; a < m; ++a) {
      const double* va = variance_.data() + a * m;
      double t = 0.0;
      for (int64_t b = 0; b < m; ++b) t += va[b] * k[b];
      s += k[a] * t;
    }
    return s;
  }

  int n_species_;
  std::vector<double> e0_;
  std::vector<std::shared_ptr<const GapTerm>> terms_;
  std::vector<double> variance_;
  std::vector<int64_t> term_offsets_;
  double cutoff_ = 0.0;
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
    nbody_instances(order, cut, g.species[i], nl.rel.data() + 3 * o, nl.species.data() + o, nl.count(i), n_species, out);
    centre.insert(centre.end(), out.size() - before, i);
  }
}

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
  if (!numbers.is_array() || numbers.size() == 0) throw ModelFileError(where + ": 'atomic_numbers' must be a non-empty list");
  std::vector<int> z;
  for (std::size_t i = 0; i < numbers.size(); ++i) z.push_back(static_cast<int>(numbers.at(i).as_int()));
  if (!std::is_sorted(z.begin(), z.end()) || std::adjacent_find(z.begin(), z.end()) != z.end()) {
    throw ModelFileError(where + ": 'atomic_numbers' must be sorted and unique");
  }
  return z;
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
        SoapGTO soap(gap_detail::number(t, "r_cut", where), gap_detail::integer(t, "n_max", where),
                     gap_detail::integer(t, "l_max", where), gap_detail::number(t, "atom_sigma", where), z);
        const int64_t f = static_cast<int64_t>(soap.n_features());
        built.push_back(std::make_shared<SoapTerm>(std::move(soap), gap_detail::number(t, "delta", where),
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
  std::vector<double> variance;
  if (mf.has("variance")) variance = mf.f64("variance", {total, total});
  return GapModel(n_species, e0, std::move(built), std::move(variance));
}

}  // namespace clusterforce
