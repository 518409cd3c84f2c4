// OAMLM prediction step (OAMLM paper, section II B): force directions from predicted cosines
// d_c = d_in B_c and the references' unit forces rotated into the input frame, solved with the
// analytic loss (eqs. 15-17) or the numeric loss (eq. 14), minimised on the unit sphere from the
// analytic solution and the two best-aligned references' projected directions (deterministic
// starts, so every rank and every front end finds the same minimum).
//
// Per-atom uncertainties (both dimensionless or Angstrom, both 0 for a perfect fit):
//   spread      = 1 - |sum_j w_j d_c,j R_j t_j| / sum_j w_j |d_c,j|, in [0, 1]: 0 when all
//                 weighted projections agree, 1 when they cancel (no preferred direction);
//   g_residual  = sqrt(sum_j w_j (g^_j - g_j)^2 / sum_j w_j) in Angstrom, with g^ = d_in B_g the
//                 alignment error the model expected and g the one measured: large when the
//                 input does not resemble the references the way its descriptor suggests
//                 (NaN when the model has no B_g);
//   weight_sum  = sum_j w_j, the support of the estimate (tiny: no reference aligns well).
// w_j = exp(-(g_j / sigma2)^2) (eq. 16). Eq. 17 is a ratio, so it is evaluated with weights
// scaled by exp((g_min / sigma2)^2): identical result, no underflow to 0/0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "align.hpp"
#include "parallel.hpp"

namespace clusterforce {

enum class OamlmLoss { Analytic, Numeric };

// "analytic" or "numeric", as the model file and the Python estimator spell it.
inline OamlmLoss parse_loss(const std::string& name) {
  if (name == "analytic") return OamlmLoss::Analytic;
  if (name == "numeric") return OamlmLoss::Numeric;
  throw std::invalid_argument("OAMLM loss must be 'analytic' or 'numeric', got '" + name + "'");
}

// Non-owning view of a trained OAMLM of one class; the arrays outlive it.
struct OamlmModel {
  const ReferenceSet* refs = nullptr;  // K reference environments
  const double* B_c = nullptr;         // K x K, row-major
  const double* B_g = nullptr;         // K x K or nullptr
  const double* T = nullptr;           // K x 3 reference unit forces
  double sigma2 = 0.5;                 // Angstrom
  AlignOptions options{};
  OamlmLoss loss = OamlmLoss::Analytic;
  double sigma1 = 0.25;  // width of the cosine misfit of eq. 14, dimensionless
};

struct OamlmResult {
  double v[3];  // unit direction (zero vector when the weighted projections cancel exactly)
  double spread;
  double g_residual;
  double weight_sum;
};

inline void check_model(const OamlmModel& m) {
  if (!m.refs || !m.B_c || !m.T) throw std::invalid_argument("OAMLM model needs references, B_c and T");
  if (!(m.sigma2 > 0.0) || !std::isfinite(m.sigma2))
    throw std::invalid_argument("OAMLM sigma2 must be a positive finite number, got " + std::to_string(m.sigma2));
  if (!(m.sigma1 > 0.0) || !std::isfinite(m.sigma1))
    throw std::invalid_argument("OAMLM sigma1 must be a positive finite number, got " + std::to_string(m.sigma1));
  for (std::size_t j = 0; j < m.refs->size(); ++j) {
    const double* t = m.T + 3 * j;
    const double n = std::sqrt(t[0] * t[0] + t[1] * t[1] + t[2] * t[2]);
    if (!(std::abs(n - 1.0) < 1e-6))
      throw std::invalid_argument("OAMLM reference unit force T[" + std::to_string(j) + "] has norm " +
                                  std::to_string(n) + ", expected 1");
  }
}

// out (n x K) = d (n x K, row stride ld >= K; 0 = K) @ B (K x K); rows of B are streamed once
// per block of inputs. A single block runs on the calling thread (a centre of a structure loop
// that is itself parallel). B may be float when its values are float32 (as model files store
// it): each is widened exactly, so the result is that of the double matrix, from half the bytes.
template <class Real>
void project_distances(const double* d, std::size_t n, std::size_t K, const Real* B, double* out, std::size_t ld = 0) {
  constexpr std::size_t block = 16;
  if (ld == 0) ld = K;
  const auto nblocks = static_cast<std::int64_t>((n + block - 1) / block);
  // Arithmetic only (nothing throws): a plain OpenMP loop.
  CLUSTERFORCE_PRAGMA(omp parallel for schedule(static) if (nblocks > 1))
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::size_t i0 = static_cast<std::size_t>(b) * block, i1 = std::min(n, i0 + block);
    std::fill(out + i0 * K, out + i1 * K, 0.0);
    for (std::size_t k = 0; k < K; ++k) {
      const Real* row = B + k * K;
      for (std::size_t i = i0; i < i1; ++i) {
        const double a = d[i * ld + k];
        if (a == 0.0) continue;
        double* o = out + i * K;
        for (std::size_t j = 0; j < K; ++j) o[j] += a * static_cast<double>(row[j]);
      }
    }
  }
}

namespace detail {

// Eq. 14 as a minimisation over u in R^3 with v = u / |u|:
//   L(u) = -sum_j w_j exp(-((dc_j - rt_j . v) / sigma1)^2),
// returning L and its gradient dL/du (tangent to the sphere, scaled by 1 / |u|).
inline double eq14_loss(const double* u, const double* w, const double* dc, const double* rt, std::size_t K,
                        double sigma1, double* grad) {
  const double nu = norm(u);
  const double v[3] = {u[0] / nu, u[1] / nu, u[2] / nu};
  double f = 0.0, dv[3] = {0, 0, 0};
  for (std::size_t j = 0; j < K; ++j) {
    if (w[j] == 0.0) continue;
    const double a = (dc[j] - dot(rt + 3 * j, v)) / sigma1;
    const double e = w[j] * std::exp(-a * a);
    f -= e;
    for (int c = 0; c < 3; ++c) dv[c] -= (2.0 / sigma1) * e * a * rt[3 * j + c];
  }
  const double vdv = dot(v, dv);
  for (int c = 0; c < 3; ++c) grad[c] = (dv[c] - v[c] * vdv) / nu;
  return f;
}

// BFGS on eq14_loss from the unit vector u0 (Armijo backtracking, or a smaller gradient where
// L is flat to round-off; the update is skipped when the curvature condition fails). Returns the loss at the end; u0
// holds the unit minimiser.
inline double minimise_eq14(double* u0, const double* w, const double* dc, const double* rt, std::size_t K,
                            double sigma1) {
  constexpr int max_iter = 200;
  double H[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1}, g[3], u[3] = {u0[0], u0[1], u0[2]};
  double f = eq14_loss(u, w, dc, rt, K, sigma1, g);
  const double scale = std::max(1e-300, std::abs(f));
  for (int it = 0; it < max_iter && norm(g) > 1e-14 * scale; ++it) {
    double p[3];
    for (int r = 0; r < 3; ++r) p[r] = -(H[3 * r] * g[0] + H[3 * r + 1] * g[1] + H[3 * r + 2] * g[2]);
    double slope = dot(p, g);
    if (!(slope < 0)) {  // not a descent direction: restart from steepest descent
      for (int r = 0; r < 9; ++r) H[r] = r % 4 == 0 ? 1.0 : 0.0;
      for (int c = 0; c < 3; ++c) p[c] = -g[c];
      slope = -dot(g, g);
    }
    double step = 1.0, un[3], gn[3], fn = f;
    bool accepted = false;
    for (int back = 0; back < 40; ++back, step *= 0.5) {
      for (int c = 0; c < 3; ++c) un[c] = u[c] + step * p[c];
      if (norm(un) == 0.0) continue;
      fn = eq14_loss(un, w, dc, rt, K, sigma1, gn);
      // Near the minimum L changes by less than its round-off (|dv| ~ 1e-8 moves L by ~1e-16),
      // so there a smaller gradient decides: the direction converges to ~1e-15, not ~1e-8,
      // which keeps LAMMPS (ghost atoms) and Python on the same direction to 1e-9 eV/A.
      const bool flat = std::abs(fn - f) <= 1e-13 * scale && norm(gn) < norm(g);
      if (fn <= f + 1e-4 * step * slope || flat) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    double s[3], y[3];
    for (int c = 0; c < 3; ++c) {
      s[c] = un[c] - u[c];
      y[c] = gn[c] - g[c];
    }
    const double sy = dot(s, y);
    if (sy > 1e-300) {
      // H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T
      const double rho = 1.0 / sy;
      double Hy[3], yHy = 0;
      for (int r = 0; r < 3; ++r) Hy[r] = H[3 * r] * y[0] + H[3 * r + 1] * y[1] + H[3 * r + 2] * y[2];
      for (int r = 0; r < 3; ++r) yHy += y[r] * Hy[r];
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
          H[3 * r + c] += -rho * (Hy[r] * s[c] + s[r] * Hy[c]) + (rho * rho * yHy + rho) * s[r] * s[c];
    }
    std::copy(un, un + 3, u);
    std::copy(gn, gn + 3, g);
    f = fn;
  }
  const double nu = norm(u);
  for (int c = 0; c < 3; ++c) u0[c] = u[c] / nu;
  return f;
}

}  // namespace detail

// Eq. 14 from three starts: the analytic direction v (in/out) and sign(dc_j) R_j t_j of the
// two references with the smallest alignment error; w are the (scaled) weights of eq. 16.
inline void numeric_direction(const OamlmModel& m, const double* dc, const double* g, const double* w, const double* rt,
                              double* v) {
  const std::size_t K = m.refs->size();
  const auto argmin_g = [&](std::size_t skip) {
    std::size_t best = K;
    for (std::size_t j = 0; j < K; ++j)
      if (j != skip && (best == K || g[j] < g[best])) best = j;
    return best;
  };
  const std::size_t first = argmin_g(K), second = argmin_g(first);
  double starts[3][3];
  int n_starts = 0;
  if (detail::norm(v) > 0) std::copy(v, v + 3, starts[n_starts++]);
  for (std::size_t b : {first, second}) {
    if (b == K) continue;
    const double* r = rt + 3 * b;
    const double sign = dc[b] < 0 ? -1.0 : 1.0, nr = detail::norm(r);
    if (nr == 0) continue;
    for (int c = 0; c < 3; ++c) starts[n_starts][c] = sign * r[c] / nr;
    ++n_starts;
  }
  double best_f = std::numeric_limits<double>::infinity();
  for (int s = 0; s < n_starts; ++s) {
    const double f = detail::minimise_eq14(starts[s], w, dc, rt, K, m.sigma1);
    if (f < best_f) {
      best_f = f;
      std::copy(starts[s], starts[s] + 3, v);
    }
  }
}

// Direction of one input from its predicted cosines dc (K) and, if the model has B_g, its
// predicted alignment errors g_hat (K). scratch: 5K doubles.
inline OamlmResult oamlm_direction(const OamlmModel& m, const Environment& in, const double* dc, const double* g_hat,
                                   double* scratch) {
  const ReferenceSet& refs = *m.refs;
  const std::size_t K = refs.size();
  double* g = scratch;
  double* rt = scratch + K;     // K x 3
  double* w = scratch + 4 * K;  // eq. 16 weights, scaled as above
  double g_min = std::numeric_limits<double>::infinity();
  Alignment al[kAlignChunk];
  for (std::size_t j0 = 0; j0 < K; j0 += kAlignChunk) {
    const std::size_t n = std::min(kAlignChunk, K - j0);
    align_chunk(in, refs, j0, n, m.options, al);
    for (std::size_t r = 0; r < n; ++r) {
      const std::size_t j = j0 + r;
      g[j] = al[r].g;
      detail::apply(force_map(al[r]), m.T + 3 * j, rt + 3 * j);
      g_min = std::min(g_min, al[r].g);
    }
  }
  const double inv_s2 = 1.0 / (m.sigma2 * m.sigma2);
  double sw = 0, swabs = 0, v[3] = {0, 0, 0}, res = 0;
  for (std::size_t j = 0; j < K; ++j) {
    w[j] = std::exp(-(g[j] - g_min) * (g[j] + g_min) * inv_s2);
    sw += w[j];
    swabs += w[j] * std::abs(dc[j]);
    for (int c = 0; c < 3; ++c) v[c] += w[j] * dc[j] * rt[3 * j + c];
    if (g_hat) res += w[j] * (g_hat[j] - g[j]) * (g_hat[j] - g[j]);
  }
  OamlmResult out{};
  const double nv = detail::norm(v);
  for (int c = 0; c < 3; ++c) out.v[c] = nv > 0 ? v[c] / nv : 0.0;
  if (m.loss == OamlmLoss::Numeric && K > 0) numeric_direction(m, dc, g, w, rt, out.v);
  out.spread = swabs > 0 ? std::clamp(1.0 - nv / swabs, 0.0, 1.0) : 1.0;
  out.g_residual = g_hat && K > 0 ? std::sqrt(res / sw) : std::numeric_limits<double>::quiet_NaN();
  out.weight_sum = K > 0 ? std::exp(-g_min * g_min * inv_s2) * sw : 0.0;
  return out;
}

// Batch prediction: d_in (n x K) Euclidean distances of the inputs' scaled descriptors to the
// K references; out (n) caller-allocated.
inline void oamlm_predict(const OamlmModel& m, const Environment* in, std::size_t n, const double* d_in,
                          OamlmResult* out) {
  check_model(m);
  check_compatible(in, n, *m.refs, m.options);
  const std::size_t K = m.refs->size();
  for (std::size_t k = 0; k < n * K; ++k)
    if (!(d_in[k] >= 0.0) || !std::isfinite(d_in[k]))
      throw std::invalid_argument("OAMLM input distance d_in[" + std::to_string(k / K) + ", " + std::to_string(k % K) +
                                  "] = " + std::to_string(d_in[k]) + " is not a finite distance");
  constexpr std::size_t chunk = 256;  // bounds the n x K buffers
  std::vector<double> dc(std::min(n, chunk) * K), gh(m.B_g ? dc.size() : 0);
  for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
    const std::size_t len = std::min(chunk, n - i0);
    project_distances(d_in + i0 * K, len, K, m.B_c, dc.data());
    if (m.B_g) project_distances(d_in + i0 * K, len, K, m.B_g, gh.data());
    parallel_for_with(
        static_cast<std::int64_t>(len), [&] { return std::vector<double>(5 * K); },
        [&](std::vector<double>& scratch, std::int64_t i) {
          const std::size_t r = static_cast<std::size_t>(i) * K;
          out[i0 + static_cast<std::size_t>(i)] = oamlm_direction(
              m, in[i0 + static_cast<std::size_t>(i)], dc.data() + r, m.B_g ? gh.data() + r : nullptr, scratch.data());
        });
  }
}

}  // namespace clusterforce
