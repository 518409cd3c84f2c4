// Mapped 2b and 3b GAP terms (the review's mapped force fields): the term's energy function,
// a sum over its sparse points, tabulated once on cubic B-splines, so a prediction costs a fixed
// few dozen multiply-adds per pair or triangle whatever the number of sparse points.
//
// * 2b: e(r) per species pair on one axis r; a centre's energy is sum_j fc(r_ij)/2 e(r_ij), as
//   the exact term.
// * 3b: tabulated as the centre sees a triangle, e(r_1, r_2, cos theta) per (centre species,
//   unordered neighbour species pair), r_1 the leg to the neighbour of lower species index; the
//   centre's energy is sum_{j<k} fc(r_ij) fc(r_ik) e(r_ij, r_ik, cos theta_jik). Legs and angle
//   span a box, where the exact term's canonical side lengths do not.
//
// The cutoff weights stay exact; only the smooth kernel sum is interpolated. The splines are
// scipy's (knots t, n coefficients, degree 3; outside the knots' base interval the end pieces
// continue), so the tables `clusterforce map` fits with scipy are evaluated here unchanged.
// Everything but the energy (kernel rows, variances) is delegated to the exact term the mapped
// one wraps: uncertainties of a mapped model are those of the unmapped one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gap_nbody.hpp"
#include "parallel.hpp"

namespace clusterforce {

/// One axis of a cubic B-spline: knots t (n + 4, non-decreasing) for n coefficients.
class BSplineAxis {
 public:
  BSplineAxis() = default;
  explicit BSplineAxis(std::vector<double> knots) : t_(std::move(knots)) {
    if (t_.size() < 8)
      throw std::invalid_argument("a cubic B-spline axis needs at least 8 knots, got " + std::to_string(t_.size()));
    if (!std::is_sorted(t_.begin(), t_.end())) throw std::invalid_argument("B-spline knots must be non-decreasing");
    for (double x : t_)
      if (!std::isfinite(x)) throw std::invalid_argument("B-spline knots must be finite");
    if (!(t_[3] < t_[size()])) throw std::invalid_argument("B-spline base interval is empty");
  }
  /// Number of coefficients.
  int size() const { return static_cast<int>(t_.size()) - 4; }
  double lo() const { return t_[3]; }
  double hi() const { return t_[size()]; }
  const std::vector<double>& knots() const { return t_; }

  /// The four basis functions that are non-zero at x and their derivatives (Cox-de Boor at the
  /// span holding x, the end spans outside the base interval); returns the index of the first.
  int basis(double x, double b[4], double db[4]) const {
    const int n = size();
    int mu = static_cast<int>(std::upper_bound(t_.begin() + 4, t_.begin() + n, x) - t_.begin()) - 1;
    mu = std::clamp(mu, 3, n - 1);
    double left[4], right[4], b2[3] = {};
    b[0] = 1.0;
    for (int j = 1; j <= 3; ++j) {
      left[j] = x - t_[mu + 1 - j];
      right[j] = t_[mu + j] - x;
      double saved = 0.0;
      for (int r = 0; r < j; ++r) {
        const double tmp = b[r] / (right[r + 1] + left[j - r]);
        b[r] = saved + right[r + 1] * tmp;
        saved = left[j - r] * tmp;
      }
      b[j] = saved;
      if (j == 2) std::copy(b, b + 3, b2);
    }
    // d/dx B_{i,3} = 3 (B_{i,2} / (t_{i+3} - t_i) - B_{i+1,2} / (t_{i+4} - t_{i+1})), i = mu-3 .. mu;
    // the quadratics nonzero at x are B_{mu-2..mu, 2} = b2[0..2].
    for (int r = 0; r < 4; ++r) {
      const int i = mu - 3 + r;
      const double lo_part = r >= 1 ? b2[r - 1] / (t_[i + 3] - t_[i]) : 0.0;
      const double hi_part = r <= 2 ? b2[r] / (t_[i + 4] - t_[i + 1]) : 0.0;
      db[r] = 3.0 * (lo_part - hi_part);
    }
    return mu - 3;
  }

 private:
  std::vector<double> t_;
};

/// A 2b or 3b term whose energy is tabulated on B-splines; the exact term serves the rest.
class MappedNBodyTerm : public GapTerm {
 public:
  /// coefficients: per map channel (2b: species pair; 3b: centre species x neighbour pair), the
  /// spline coefficients, row-major over the axes (2b: r; 3b: r_1, r_2, cos theta).
  MappedNBodyTerm(std::shared_ptr<const NBodyTerm> exact, BSplineAxis r_axis, BSplineAxis cos_axis,
                  std::vector<double> coefficients)
      : exact_(std::move(exact)), r_(std::move(r_axis)), cos_(std::move(cos_axis)), c_(std::move(coefficients)) {
    if (!exact_) throw std::invalid_argument("mapped term: the exact term is null");
    const int order = exact_->order();
    const int s = exact_->n_species();
    n_channels_ = order == 2 ? n_pair_channels(s) : s * n_pair_channels(s);
    stride_ = r_.size();
    if (order == 3) {
      if (cos_.knots().empty()) throw std::invalid_argument("mapped 3b term needs a cos(theta) axis");
      stride_ = r_.size() * r_.size() * cos_.size();
    }
    if (static_cast<int64_t>(c_.size()) != static_cast<int64_t>(n_channels_) * stride_) {
      throw std::invalid_argument("mapped " + std::to_string(order) + "b term: " + std::to_string(c_.size()) +
                                  " coefficients, expected " + std::to_string(n_channels_) + " channels x " +
                                  std::to_string(stride_));
    }
  }

  int n_channels() const { return n_channels_; }
  const NBodyTerm& exact() const { return *exact_; }
  double r_cut() const override { return exact_->r_cut(); }
  int n_sparse() const override { return exact_->n_sparse(); }

  /// The tabulated function of a map channel at one point (2b: {r}; 3b: {r_1, r_2, cos}) and its
  /// gradient with respect to the point's coordinates.
  double value(int channel, const double* x, double* grad) const {
    const double* c = c_.data() + static_cast<int64_t>(channel) * stride_;
    double b[3][4], db[3][4];
    if (exact_->order() == 2) {
      const int i0 = r_.basis(x[0], b[0], db[0]);
      double f = 0.0, df = 0.0;
      for (int a = 0; a < 4; ++a) {
        f += b[0][a] * c[i0 + a];
        df += db[0][a] * c[i0 + a];
      }
      grad[0] = df;
      return f;
    }
    const int i0 = r_.basis(x[0], b[0], db[0]);
    const int j0 = r_.basis(x[1], b[1], db[1]);
    const int k0 = cos_.basis(x[2], b[2], db[2]);
    const int nr = r_.size(), nc = cos_.size();
    double f = 0.0, g0 = 0.0, g1 = 0.0, g2 = 0.0;
    for (int a = 0; a < 4; ++a) {
      double fa = 0.0, g1a = 0.0, g2a = 0.0;
      for (int e = 0; e < 4; ++e) {
        const double* row = c + (static_cast<int64_t>(i0 + a) * nr + (j0 + e)) * nc + k0;
        double v = 0.0, dv = 0.0;
        for (int k = 0; k < 4; ++k) {
          v += b[2][k] * row[k];
          dv += db[2][k] * row[k];
        }
        fa += b[1][e] * v;
        g1a += db[1][e] * v;
        g2a += b[1][e] * dv;
      }
      f += b[0][a] * fa;
      g0 += db[0][a] * fa;
      g1 += b[0][a] * g1a;
      g2 += b[0][a] * g2a;
    }
    grad[0] = g0;
    grad[1] = g1;
    grad[2] = g2;
    return f;
  }

  double centre_energy(int cs, const double* rel, const int* sp, int n, double* grad) const override {
    const int s = exact_->n_species();
    check_species(cs, s, "centre");
    std::vector<PairDescriptor> legs;
    pair_descriptors(exact_->cutoff(), cs, rel, sp, n, s, legs);
    double energy = 0.0;
    if (exact_->order() == 2) {
      for (const auto& p : legs) {
        double de;
        const double e = value(p.channel, &p.r, &de);
        energy += 0.5 * p.fc * e;
        if (grad == nullptr) continue;
        const double d = 0.5 * (p.dfc * e + p.fc * de);
        for (int x = 0; x < 3; ++x) grad[3 * p.neighbor + x] += d * p.dr[x];
      }
      return energy;
    }
    for (std::size_t a = 0; a < legs.size(); ++a) {
      for (std::size_t b = a + 1; b < legs.size(); ++b) {
        const PairDescriptor* p1 = &legs[a];
        const PairDescriptor* p2 = &legs[b];
        if (sp[p1->neighbor] > sp[p2->neighbor]) std::swap(p1, p2);
        const double cos = std::clamp(p1->dr[0] * p2->dr[0] + p1->dr[1] * p2->dr[1] + p1->dr[2] * p2->dr[2], -1.0, 1.0);
        const double x[3] = {p1->r, p2->r, cos};
        double g[3];
        const int channel = cs * n_pair_channels(s) + pair_channel(sp[p1->neighbor], sp[p2->neighbor], s);
        const double e = value(channel, x, g);
        const double w = p1->fc * p2->fc;
        energy += w * e;
        if (grad == nullptr) continue;
        // d cos / d rel_1 = (u_2 - cos u_1) / r_1, and symmetrically for rel_2.
        const double along1 = p1->dfc * p2->fc * e + w * g[0], along2 = p1->fc * p2->dfc * e + w * g[1];
        for (int xx = 0; xx < 3; ++xx) {
          grad[3 * p1->neighbor + xx] += along1 * p1->dr[xx] + w * g[2] * (p2->dr[xx] - cos * p1->dr[xx]) / p1->r;
          grad[3 * p2->neighbor + xx] += along2 * p2->dr[xx] + w * g[2] * (p1->dr[xx] - cos * p2->dr[xx]) / p2->r;
        }
      }
    }
    return energy;
  }

  void centre_rows(int cs, const double* rel, const int* sp, int n, double* row, double* grad_rows) const override {
    exact_->centre_rows(cs, rel, sp, n, row, grad_rows);
  }
  double centre_self_covariance(int cs, const double* rel, const int* sp, int n) const override {
    return exact_->centre_self_covariance(cs, rel, sp, n);
  }
  double structure_self_covariance(const CentreNeighbors& nl, const int* species, int n) const override {
    return exact_->structure_self_covariance(nl, species, n);
  }
  void structure_force_prior(const CentreNeighbors& nl, const int* species, int n, double* out) const override {
    exact_->structure_force_prior(nl, species, n, out);
  }

 private:
  std::shared_ptr<const NBodyTerm> exact_;
  BSplineAxis r_, cos_;
  std::vector<double> c_;
  int n_channels_ = 0;
  int64_t stride_ = 0;
};

/// The exact term's energy function at points of a map channel, as MappedNBodyTerm tabulates it:
/// 2b points are distances r; 3b points are rows (r_1, r_2, cos theta) of the centre's legs to
/// neighbours of the channel's lower and higher species and the angle between them.
inline void mapped_profile(const NBodyTerm& term, int channel, const double* points, int64_t n, double* out) {
  const int s = term.n_species();
  const int n_channels = term.order() == 2 ? n_pair_channels(s) : s * n_pair_channels(s);
  if (channel < 0 || channel >= n_channels) {
    throw std::out_of_range("map channel " + std::to_string(channel) + " outside [0, " + std::to_string(n_channels) +
                            ")");
  }
  if (term.order() == 2) {
    for (int64_t i = 0; i < n; ++i) out[i] = term.local_function(channel, points + i);
    return;
  }
  // Neighbour species pair of the channel (pairs enumerated as pair_channel numbers them).
  const int cs = channel / n_pair_channels(s), pc = channel % n_pair_channels(s);
  int a = 0, b = 0;
  while (pair_channel(a, b, s) != pc) {
    if (++b == s) b = ++a;
  }
  const int sp[3] = {cs, a, b};
  parallel_for(
      n,
      [&](int64_t i) {
        const double r1 = points[3 * i], r2 = points[3 * i + 1], c = points[3 * i + 2];
        const double len[3] = {r1, r2, std::sqrt(std::max(0.0, r1 * r1 + r2 * r2 - 2.0 * r1 * r2 * c))};
        const CanonicalTriangle canon = canonical_triangle(sp, len, s);
        const double q[3] = {len[canon.side[0]], len[canon.side[1]], len[canon.side[2]]};
        out[i] = term.local_function(canon.channel, q);
      },
      Schedule::static_blocks());
}

}  // namespace clusterforce
