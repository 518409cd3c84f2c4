// SVD (Arun/Kabsch) alignment of local environments, OAMLM paper eqs. 11-13 and 18.
//
// Convention: R maps a reference environment onto an input environment, p_k ~ R s_k, so
// R t_j is the reference's unit force seen in the input's frame (eq. 12, eq. 14-17). Eq. 11 as
// printed, A = sum p s^T with R = V U^T, would map the input onto the reference instead; we
// form A = sum s p^T (Arun's H with the reference as the source), whose R = V U^T is the map
// eq. 12 uses. Rotations are proper (det R = +1): the reflection is removed on the smallest
// singular value (Kabsch).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu.hpp"
#include "environments.hpp"
#include "parallel.hpp"

#if CLUSTERFORCE_X86_DISPATCH
#include <immintrin.h>
#endif

namespace clusterforce {

using Mat3 = std::array<double, 9>;  // row-major

struct Svd3 {
  Mat3 U;                   // columns are left singular vectors
  std::array<double, 3> s;  // descending, >= 0
  Mat3 V;                   // columns are right singular vectors; A = U diag(s) V^T
};

namespace detail {

inline double det3(const Mat3& m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

inline void cross(const double* a, const double* b, double* c) {
  c[0] = a[1] * b[2] - a[2] * b[1];
  c[1] = a[2] * b[0] - a[0] * b[2];
  c[2] = a[0] * b[1] - a[1] * b[0];
}

inline double dot(const double* a, const double* b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

inline double norm(const double* a) {
  return std::sqrt(dot(a, a));
}

}  // namespace detail

namespace detail {

// One-sided (Hestenes) Jacobi sweeps: orthogonalises the columns of W in place and
// accumulates the rotations in V (W = A V on return).
inline void jacobi3(double (&W)[3][3], double (&V)[3][3]) {
  for (int sweep = 0; sweep < 64; ++sweep) {
    bool rotated = false;
    for (int p = 0; p < 2; ++p) {
      for (int q = p + 1; q < 3; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (int i = 0; i < 3; ++i) {
          alpha += W[i][p] * W[i][p];
          beta += W[i][q] * W[i][q];
          gamma += W[i][p] * W[i][q];
        }
        if (gamma * gamma <= 1e-30 * alpha * beta) continue;
        rotated = true;
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::sqrt(1.0 + zeta * zeta));
        const double c = 1.0 / std::sqrt(1.0 + t * t), s = c * t;
        for (int i = 0; i < 3; ++i) {
          const double wp = W[i][p], wq = W[i][q];
          W[i][p] = c * wp - s * wq;
          W[i][q] = s * wp + c * wq;
          const double vp = V[i][p], vq = V[i][q];
          V[i][p] = c * vp - s * vq;
          V[i][q] = s * vp + c * vq;
        }
      }
    }
    if (!rotated) break;
  }
}

#if CLUSTERFORCE_X86_DISPATCH
// jacobi3 on four matrices at once, one per AVX2 lane (W[i][j][lane]): the sweeps are a chain
// of dependent square roots and divisions, which one matrix cannot keep the units busy with.
// A lane whose pair needs no rotation gets the identity (c = 1, s = 0 leave it unchanged), and
// a lane that stopped rotating stays unchanged until all have, so each lane ends as jacobi3
// would leave it (up to fused multiply-adds).
CLUSTERFORCE_TARGET_AVX2 inline void jacobi3_x4(double (&W)[3][3][4], double (&V)[3][3][4]) {
  __m256d w[3][3], v[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      w[i][j] = _mm256_loadu_pd(W[i][j]);
      v[i][j] = _mm256_loadu_pd(V[i][j]);
    }
  const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd(), tiny = _mm256_set1_pd(1e-30);
  const __m256d sign_bit = _mm256_set1_pd(-0.0);
  for (int sweep = 0; sweep < 64; ++sweep) {
    __m256d rotated = zero;
    for (int p = 0; p < 2; ++p) {
      for (int q = p + 1; q < 3; ++q) {
        __m256d alpha = zero, beta = zero, gamma = zero;
        for (int i = 0; i < 3; ++i) {
          alpha = _mm256_add_pd(alpha, _mm256_mul_pd(w[i][p], w[i][p]));
          beta = _mm256_add_pd(beta, _mm256_mul_pd(w[i][q], w[i][q]));
          gamma = _mm256_add_pd(gamma, _mm256_mul_pd(w[i][p], w[i][q]));
        }
        const __m256d skip =
            _mm256_cmp_pd(_mm256_mul_pd(gamma, gamma), _mm256_mul_pd(_mm256_mul_pd(tiny, alpha), beta), _CMP_LE_OQ);
        if (_mm256_movemask_pd(skip) == 0xF) continue;
        rotated = _mm256_or_pd(rotated, _mm256_andnot_pd(skip, _mm256_castsi256_pd(_mm256_set1_epi64x(-1))));
        const __m256d zeta = _mm256_div_pd(_mm256_sub_pd(beta, alpha), _mm256_add_pd(gamma, gamma));
        const __m256d abs_zeta = _mm256_andnot_pd(sign_bit, zeta);
        const __m256d sgn = _mm256_blendv_pd(_mm256_set1_pd(-1.0), one, _mm256_cmp_pd(zeta, zero, _CMP_GE_OQ));
        const __m256d t =
            _mm256_div_pd(sgn, _mm256_add_pd(abs_zeta, _mm256_sqrt_pd(_mm256_add_pd(one, _mm256_mul_pd(zeta, zeta)))));
        __m256d c = _mm256_div_pd(one, _mm256_sqrt_pd(_mm256_add_pd(one, _mm256_mul_pd(t, t))));
        __m256d s = _mm256_mul_pd(c, t);
        c = _mm256_blendv_pd(c, one, skip);
        s = _mm256_blendv_pd(s, zero, skip);
        for (int i = 0; i < 3; ++i) {
          const __m256d wp = w[i][p], wq = w[i][q], vp = v[i][p], vq = v[i][q];
          w[i][p] = _mm256_sub_pd(_mm256_mul_pd(c, wp), _mm256_mul_pd(s, wq));
          w[i][q] = _mm256_add_pd(_mm256_mul_pd(s, wp), _mm256_mul_pd(c, wq));
          v[i][p] = _mm256_sub_pd(_mm256_mul_pd(c, vp), _mm256_mul_pd(s, vq));
          v[i][q] = _mm256_add_pd(_mm256_mul_pd(s, vp), _mm256_mul_pd(c, vq));
        }
      }
    }
    if (_mm256_movemask_pd(rotated) == 0) break;
  }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      _mm256_storeu_pd(W[i][j], w[i][j]);
      _mm256_storeu_pd(V[i][j], v[i][j]);
    }
}
#endif

// The SVD from converged Jacobi sweeps (W = A V with orthogonal columns).
inline Svd3 svd3_finish(const double (&W)[3][3], const double (&V)[3][3]) {
  double sv[3];
  for (int k = 0; k < 3; ++k) sv[k] = std::sqrt(W[0][k] * W[0][k] + W[1][k] * W[1][k] + W[2][k] * W[2][k]);
  int order[3] = {0, 1, 2};
  std::sort(order, order + 3, [&](int a, int b) { return sv[a] > sv[b]; });

  Svd3 out;
  double u[3][3];  // u[k] = k-th left singular vector
  const double tol = sv[order[0]] * 1e-13;
  int rank = 0;
  for (int k = 0; k < 3; ++k) {
    const int c = order[k];
    out.s[static_cast<std::size_t>(k)] = sv[c];
    for (int i = 0; i < 3; ++i) out.V[static_cast<std::size_t>(3 * i + k)] = V[i][c];
    if (k < 2 && sv[c] > tol && sv[c] > 0.0) {
      for (int i = 0; i < 3; ++i) u[k][i] = W[i][c] / sv[c];
      ++rank;
    }
  }
  if (rank == 0) {
    u[0][0] = 1;
    u[0][1] = 0;
    u[0][2] = 0;
  }
  if (rank <= 1) {
    // the coordinate axis least aligned with u0 gives a well-conditioned perpendicular
    int axis = 0;
    for (int i = 1; i < 3; ++i)
      if (std::abs(u[0][i]) < std::abs(u[0][axis])) axis = i;
    double e[3] = {0, 0, 0};
    e[axis] = 1.0;
    detail::cross(u[0], e, u[1]);
    const double n = detail::norm(u[1]);
    for (int i = 0; i < 3; ++i) u[1][i] /= n;
  }
  // u2 = +-u0 x u1 exactly orthogonal; the sign follows A v2 when that is not negligible.
  detail::cross(u[0], u[1], u[2]);
  const int c2 = order[2];
  if (sv[c2] > tol && W[0][c2] * u[2][0] + W[1][c2] * u[2][1] + W[2][c2] * u[2][2] < 0)
    for (int i = 0; i < 3; ++i) u[2][i] = -u[2][i];
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) out.U[static_cast<std::size_t>(3 * i + k)] = u[k][i];
  return out;
}

}  // namespace detail

// SVD of a 3x3 matrix by one-sided (Hestenes) Jacobi: accurate singular vectors without
// forming A^T A. Singular vectors of (numerically) zero singular values are completed to an
// orthonormal basis deterministically (cross products), so U and V are always orthogonal.
inline Svd3 svd3(const Mat3& A) {
  double W[3][3], V[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) W[i][j] = A[3 * i + j];
  detail::jacobi3(W, V);
  return detail::svd3_finish(W, V);
}

// out[k] = svd3(A[k]) for n matrices; four at a time on CPUs with AVX2 (the same algorithm,
// so the same result up to fused multiply-adds).
inline void svd3_batch(const Mat3* A, std::size_t n, Svd3* out) {
  std::size_t k = 0;
#if CLUSTERFORCE_X86_DISPATCH
  static const bool avx2 = cpu_supports(Isa::avx2);
  for (; avx2 && k + 4 <= n; k += 4) {
    double W[3][3][4], V[3][3][4];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        for (int l = 0; l < 4; ++l) {
          W[i][j][l] = A[k + static_cast<std::size_t>(l)][static_cast<std::size_t>(3 * i + j)];
          V[i][j][l] = i == j ? 1.0 : 0.0;
        }
    detail::jacobi3_x4(W, V);
    for (int l = 0; l < 4; ++l) {
      double Wl[3][3], Vl[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          Wl[i][j] = W[i][j][l];
          Vl[i][j] = V[i][j][l];
        }
      out[k + static_cast<std::size_t>(l)] = detail::svd3_finish(Wl, Vl);
    }
  }
#endif
  for (; k < n; ++k) out[k] = svd3(A[k]);
}

// Optimal proper rotation of a point set and how well the points determine it.
struct KabschResult {
  Mat3 R;                      // det +1
  int rank;                    // 2: R is determined; 1: only up to a spin about `axis`; 0: not at all
  std::array<double, 3> axis;  // reference-frame unit axis when rank == 1
};

namespace detail {

// Two point pairs, each spanning a plane with the centre (the core / generic schemes' usual
// case): the optimal rotation maps the reference's plane onto the input's, keeping or flipping
// its normal, then turns in the plane by the closed-form 2-D Procrustes angle. Same result as
// the SVD, a fraction of the cost. Returns false for (nearly) collinear points.
inline bool kabsch_two(const double* p, const double* s, Mat3& R) {
  double np_[3], ns_[3];
  cross(p, p + 3, np_);
  cross(s, s + 3, ns_);
  const double lp = norm(p), ls = norm(s), nnp = norm(np_), nns = norm(ns_);
  if (!(nnp > 1e-4 * lp * norm(p + 3)) || !(nns > 1e-4 * ls * norm(s + 3))) return false;
  double P[3][3], S[3][3];  // columns: in-plane axis a, in-plane axis b, normal c
  for (int i = 0; i < 3; ++i) {
    P[i][0] = p[i] / lp;
    P[i][2] = np_[i] / nnp;
    S[i][0] = s[i] / ls;
    S[i][2] = ns_[i] / nns;
  }
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    P[i][1] = P[j][2] * P[k][0] - P[k][2] * P[j][0];
    S[i][1] = S[j][2] * S[k][0] - S[k][2] * S[j][0];
  }
  double x[2][2], y[2][2];  // in-plane coordinates of p_k and s_k
  for (int k = 0; k < 2; ++k)
    for (int a = 0; a < 2; ++a) {
      x[k][a] = p[3 * k] * P[0][a] + p[3 * k + 1] * P[1][a] + p[3 * k + 2] * P[2][a];
      y[k][a] = s[3 * k] * S[0][a] + s[3 * k + 1] * S[1][a] + s[3 * k + 2] * S[2][a];
    }
  double best = -1.0, cb = 1.0, sb = 0.0, flip = 1.0;
  for (const double f : {1.0, -1.0}) {  // f = -1: turn the reference plane over first
    double C = 0, Sn = 0;
    for (int k = 0; k < 2; ++k) {
      C += x[k][0] * y[k][0] + x[k][1] * f * y[k][1];
      Sn += x[k][1] * y[k][0] - x[k][0] * f * y[k][1];
    }
    const double h = std::hypot(C, Sn);
    if (h > best) {
      best = h;
      cb = C / h;
      sb = Sn / h;
      flip = f;
    }
  }
  // R = P M(theta) diag(1, flip, flip) S^T
  const double M[3][3] = {{cb, -sb * flip, 0.0}, {sb, cb * flip, 0.0}, {0.0, 0.0, flip}};
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      double r = 0;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) r += P[a][i] * M[i][j] * S[b][j];
      R[static_cast<std::size_t>(3 * a + b)] = r;
    }
  return true;
}

}  // namespace detail

namespace detail {

// A = sum_k s_k p_k^T (Arun's H with the reference as the source; see the top of this file).
inline Mat3 cross_covariance(std::size_t m, const double* p, const double* s) {
  Mat3 A{};
  for (std::size_t k = 0; k < m; ++k)
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) A[static_cast<std::size_t>(3 * a + b)] += s[3 * k + a] * p[3 * k + b];
  return A;
}

// The proper rotation V diag(1, 1, det) U^T of the SVD of cross_covariance.
inline KabschResult kabsch_from_svd(const Svd3& d) {
  KabschResult out{};
  const double sign = det3(d.U) * det3(d.V) < 0 ? -1.0 : 1.0;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) {
      double r = 0;
      for (int k = 0; k < 3; ++k)
        r +=
            d.V[static_cast<std::size_t>(3 * a + k)] * d.U[static_cast<std::size_t>(3 * b + k)] * (k == 2 ? sign : 1.0);
      out.R[static_cast<std::size_t>(3 * a + b)] = r;
    }
  out.rank = d.s[1] > 1e-10 * d.s[0] ? 2 : (d.s[0] > 0.0 ? 1 : 0);
  out.axis = {d.U[0], d.U[3], d.U[6]};
  return out;
}

}  // namespace detail

// Proper rotation R (det +1) minimising sum_k |p_k - R s_k|^2 over m point pairs given
// relative to the centre atom (no centroid shift: the centre atoms coincide). p = input, s =
// reference, both m x 3 row-major. When the points are collinear with the centre (rank 1) the
// spin about their axis is fixed deterministically by svd3's completion; see force_map.
inline KabschResult kabsch_rotation(std::size_t m, const double* p, const double* s) {
  KabschResult out{};
  if (m == 2 && detail::kabsch_two(p, s, out.R)) {
    out.rank = 2;
    return out;
  }
  return detail::kabsch_from_svd(svd3(detail::cross_covariance(m, p, s)));
}

inline Mat3 kabsch(std::size_t m, const double* p, const double* s) {
  return kabsch_rotation(m, p, s).R;
}

// References per align_chunk call.
inline constexpr std::size_t kAlignChunk = 8;

struct AlignOptions {
  int n_triangles = 10;  // eq. 18 prefilter keeps this many ordered pairs; 0 = try all
};

struct Alignment {
  KabschResult rot;  // maps the reference onto the input
  double g;          // g (eq. 12) for anchor schemes, g' (eq. 13) for cloud schemes
  // Smooth cloud schemes: the blend of the candidate alignments' force maps (force_map
  // returns it); rot is then unused.
  bool blended = false;
  Mat3 map{};
};

// The linear map taking a reference vector (its unit force) into the input frame: R when the
// aligned points determine the rotation; when they leave a spin about one axis free (a
// neighbourhood of one atom, collinear anchors), the average over that spin, (a.t) R a; when
// they determine nothing (all points on the centre), zero. Unlike a fixed choice of spin this
// keeps predictions rotation-equivariant in such degraded environments.
inline Mat3 force_map(const Alignment& al) {
  if (al.blended) return al.map;
  const KabschResult& k = al.rot;
  if (k.rank >= 2) return k.R;
  Mat3 M{};
  if (k.rank == 0) return M;
  double ra[3];
  for (int a = 0; a < 3; ++a) ra[a] = k.R[3 * a] * k.axis[0] + k.R[3 * a + 1] * k.axis[1] + k.R[3 * a + 2] * k.axis[2];
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 3; ++b) M[static_cast<std::size_t>(3 * a + b)] = ra[a] * k.axis[static_cast<std::size_t>(b)];
  return M;
}

// Triangle (centre, a, b) of an ordered pair of cloud points: side lengths (Angstrom)
// |a|, |b|, |b-a| and the angles (radians) at the centre, at a and at b.
struct Triangle {
  std::array<double, 6> f;
  int a, b;
};

namespace detail {

inline double angle(const double* u, const double* v) {
  double c[3];
  cross(u, v, c);
  return std::atan2(norm(c), dot(u, v));
}

inline std::array<double, 6> triangle_features(const double* a, const double* b) {
  const double ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
  const double ba[3] = {-ab[0], -ab[1], -ab[2]};
  const double ma[3] = {-a[0], -a[1], -a[2]};
  const double mb[3] = {-b[0], -b[1], -b[2]};
  return {norm(a), norm(b), norm(ab), angle(a, b), angle(ma, ab), angle(mb, ba)};
}

// The cloud points a pair search draws from: the non-lead (metal) entries, or every entry
// when fewer than two metal atoms are present.
// Smooth schemes always draw from the metal entries (a count-based switch would jump).
inline std::pair<int, int> pair_pool(const Environment& e) {
  if (e.n_cloud - e.n_lead >= 2 || kSchemes[static_cast<std::size_t>(e.scheme)].smooth)
    return {e.n_lead, e.n_cloud - e.n_lead};
  return {0, e.n_cloud};
}

inline void apply(const Mat3& R, const double* x, double* y) {
  for (int a = 0; a < 3; ++a) y[a] = R[3 * a] * x[0] + R[3 * a + 1] * x[1] + R[3 * a + 2] * x[2];
}

// eq. 12 over m anchor points (the centre contributes a zero term to the 1/(1+m) mean).
inline double anchor_error(int m, const double (*p)[3], const double (*s)[3], const Mat3& R) {
  double sum = 0;
  for (int k = 0; k < m; ++k) {
    double rs[3];
    apply(R, s[k], rs);
    const double d[3] = {p[k][0] - rs[0], p[k][1] - rs[1], p[k][2] - rs[2]};
    sum += norm(d);
  }
  return sum / (1.0 + m);
}

// eq. 13 with the paper's rule for clouds of different sizes: for every atom of the larger
// cloud (the input's on a tie), the distance to the nearest atom of the other, aligned cloud
// or to its centre atom (the common origin, so the distance is always defined).
// Stops early, returning a value above `bound`, once the partial sum shows the error exceeds
// `bound` (the best error so far), which skips most of the work for poor candidates.
inline double cloud_error(const Environment& in, const Environment& ref, const Mat3& R,
                          double bound = std::numeric_limits<double>::infinity()) {
  double rot[kMaxCloud][3];
  for (int k = 0; k < ref.n_cloud; ++k) apply(R, ref.cloud[k], rot[k]);
  const bool input_larger = in.n_cloud >= ref.n_cloud;
  const double (*L)[3] = input_larger ? in.cloud : rot;
  const double (*O)[3] = input_larger ? rot : in.cloud;
  const int nL = input_larger ? in.n_cloud : ref.n_cloud;
  const int nO = input_larger ? ref.n_cloud : in.n_cloud;
  const double limit = bound * (1.0 + nL) * bound * (1.0 + nL);
  double sum = 0;
  for (int a = 0; a < nL; ++a) {
    double best = dot(L[a], L[a]);
    for (int b = 0; b < nO; ++b) {
      const double d[3] = {L[a][0] - O[b][0], L[a][1] - O[b][1], L[a][2] - O[b][2]};
      best = std::min(best, dot(d, d));
    }
    sum += best;
    if (sum > limit) break;
  }
  return std::sqrt(sum) / (1.0 + nL);
}

// g' of the smooth cloud schemes: the symmetric, weighted form of eq. 13. Every atom a of one
// cloud (weight w_a) is matched to the nearest atom b of the other, aligned cloud, or to the
// centre: m_a = min(|a|^2, min_b [w_b |a - b|^2 + (1 - w_b) |a|^2]), so an atom of weight 0
// matches like the centre. g' = sqrt((E_in + E_ref) / 2) / (1 + (N_in + N_ref) / 2) with E the
// weighted sums of m over each cloud and N the sums of weights: for two full clouds of equal
// size it is eq. 13, and it changes continuously as atoms enter or leave either cloud.
inline double cloud_error_smooth(const Environment& in, const Environment& ref, const Mat3& R) {
  double rot[kMaxCloud][3];
  for (int k = 0; k < ref.n_cloud; ++k) apply(R, ref.cloud[k], rot[k]);
  const auto side = [](const double (*A)[3], const double* wa, int na, const double (*B)[3], const double* wb, int nb) {
    double sum = 0;
    for (int a = 0; a < na; ++a) {
      const double r2 = dot(A[a], A[a]);
      double best = r2;
      for (int b = 0; b < nb; ++b) {
        const double d[3] = {A[a][0] - B[b][0], A[a][1] - B[b][1], A[a][2] - B[b][2]};
        best = std::min(best, wb[b] * dot(d, d) + (1.0 - wb[b]) * r2);
      }
      sum += wa[a] * best;
    }
    return sum;
  };
  const double e = side(in.cloud, in.weight, in.n_cloud, rot, ref.weight, ref.n_cloud) +
                   side(rot, ref.weight, ref.n_cloud, in.cloud, in.weight, in.n_cloud);
  double n = 0;
  for (int k = 0; k < in.n_cloud; ++k) n += in.weight[k];
  for (int k = 0; k < ref.n_cloud; ++k) n += ref.weight[k];
  return std::sqrt(0.5 * e) / (1.0 + 0.5 * n);
}

inline Mat3 identity3() {
  return {1, 0, 0, 0, 1, 0, 0, 0, 1};
}

}  // namespace detail

// Reference environments plus what the alignment precomputes once per reference (the
// triangles of all ordered pairs of cloud points for the eq. 18 prefilter). Build it once per
// model; it is read-only afterwards and safe to share between threads.
class ReferenceSet {
 public:
  ReferenceSet(const Environment* refs, std::size_t k) : envs_(refs, refs + k), offset_(k + 1, 0) {
    for (std::size_t j = 0; j < k; ++j) {
      std::size_t n = 0;
      if (kSchemes[static_cast<std::size_t>(envs_[j].scheme)].error == ErrorKind::Cloud) {
        const auto pool = detail::pair_pool(envs_[j]);
        n = static_cast<std::size_t>(pool.second) * static_cast<std::size_t>(std::max(pool.second - 1, 0));
      }
      offset_[j + 1] = offset_[j] + n;
    }
    triangles_.resize(offset_[k]);
    for (std::size_t j = 0; j < k; ++j) {
      const Environment& e = envs_[j];
      if (offset_[j + 1] == offset_[j]) continue;
      const auto pool = detail::pair_pool(e);
      std::size_t t = offset_[j];
      for (int a = pool.first; a < pool.first + pool.second; ++a)
        for (int b = pool.first; b < pool.first + pool.second; ++b)
          if (a != b) triangles_[t++] = {detail::triangle_features(e.cloud[a], e.cloud[b]), a, b};
    }
  }

  std::size_t size() const { return envs_.size(); }
  const Environment& operator[](std::size_t j) const { return envs_[j]; }
  const Triangle* triangles_begin(std::size_t j) const { return triangles_.data() + offset_[j]; }
  const Triangle* triangles_end(std::size_t j) const { return triangles_.data() + offset_[j + 1]; }

 private:
  std::vector<Environment> envs_;
  std::vector<std::size_t> offset_;
  std::vector<Triangle> triangles_;
};

namespace detail {

// Calls f(m, p, s) with the m matched anchor points of the input (p) and the reference (s)
// for every ordered selection of k of the larger side's blocks against the smaller side's
// blocks in order: every permutation of the block indices whose unused tail is ascending, i.e.
// each selection once, always in the same order.
template <class F>
void for_each_anchor_match(const Environment& in, const Environment& ref, F&& f) {
  const Scheme& a = kSchemes[static_cast<std::size_t>(in.scheme)];
  const int pre = a.prefix, bs = a.block_size;
  const int mi = a.n_blocks, mr = kSchemes[static_cast<std::size_t>(ref.scheme)].n_blocks;
  const int k = std::min(mi, mr), big = std::max(mi, mr);
  const int m = pre + k * bs;
  int idx[kMaxAnchors];
  for (int i = 0; i < big; ++i) idx[i] = i;
  do {
    if (!std::is_sorted(idx + k, idx + big)) continue;
    double p[kMaxAnchors][3], s[kMaxAnchors][3];
    for (int r = 0; r < pre; ++r)
      for (int c = 0; c < 3; ++c) {
        p[r][c] = in.anchors[r][c];
        s[r][c] = ref.anchors[r][c];
      }
    for (int blk = 0; blk < k; ++blk) {
      const int bi = mi >= mr ? idx[blk] : blk;
      const int br = mi >= mr ? blk : idx[blk];
      for (int r = 0; r < bs; ++r)
        for (int c = 0; c < 3; ++c) {
          p[pre + blk * bs + r][c] = in.anchors[pre + bi * bs + r][c];
          s[pre + blk * bs + r][c] = ref.anchors[pre + br * bs + r][c];
        }
    }
    f(m, p, s);
  } while (std::next_permutation(idx, idx + big));
}

// The smallest eq. 12 error over the anchor matches; the first one wins a tie.
inline Alignment align_anchors(const Environment& in, const Environment& ref) {
  Alignment best{};
  bool have = false;
  for_each_anchor_match(in, ref, [&](int m, const double (*p)[3], const double (*s)[3]) {
    const KabschResult rot = kabsch_rotation(static_cast<std::size_t>(m), &p[0][0], &s[0][0]);
    const double g = anchor_error(m, p, s, rot.R);
    if (!have || g < best.g) best = {rot, g};
    have = true;
  });
  return best;
}

// align_anchors for references [j0, j0 + n) of refs, n <= kChunk, into out: the matches of all
// of them share batched SVDs (svd3_batch). Same choices as align_anchors.
inline void align_anchors_chunk(const Environment& in, const ReferenceSet& refs, std::size_t j0, std::size_t n,
                                Alignment* out) {
  constexpr std::size_t kCapacity = 32;  // matches per batch of SVDs
  struct Match {
    double p[kMaxAnchors][3], s[kMaxAnchors][3];
    int m;
    std::size_t ref;  // into out
  };
  Match matches[kCapacity];
  Mat3 A[kCapacity];
  Svd3 d[kCapacity];
  bool have[kAlignChunk] = {};
  std::size_t count = 0;
  const auto flush = [&] {
    svd3_batch(A, count, d);
    for (std::size_t t = 0; t < count; ++t) {
      const Match& x = matches[t];
      KabschResult rot{};
      if (x.m == 2 && kabsch_two(&x.p[0][0], &x.s[0][0], rot.R))
        rot.rank = 2;
      else
        rot = kabsch_from_svd(d[t]);
      const double g = anchor_error(x.m, x.p, x.s, rot.R);
      if (!have[x.ref] || g < out[x.ref].g) out[x.ref] = {rot, g};
      have[x.ref] = true;
    }
    count = 0;
  };
  for (std::size_t r = 0; r < n; ++r) {
    out[r] = Alignment{};
    for_each_anchor_match(in, refs[j0 + r], [&](int m, const double (*p)[3], const double (*s)[3]) {
      Match& x = matches[count];
      std::copy(&p[0][0], &p[0][0] + 3 * m, &x.p[0][0]);
      std::copy(&s[0][0], &s[0][0] + 3 * m, &x.s[0][0]);
      x.m = m;
      x.ref = r;
      A[count] = cross_covariance(static_cast<std::size_t>(m), &p[0][0], &s[0][0]);
      if (++count == kCapacity) flush();
    });
  }
  flush();
}

// Try reference point sets (centre + the given cloud rows) against the fixed input rows and
// keep the alignment with the smallest g'.
inline void try_cloud(const Environment& in, const Environment& ref, int m, const double (*p)[3], const int* ref_rows,
                      Alignment& best, bool& have) {
  double s[2][3];
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < 3; ++c) s[r][c] = ref.cloud[ref_rows[r]][c];
  const KabschResult rot = kabsch_rotation(static_cast<std::size_t>(m), &p[0][0], &s[0][0]);
  const double g = cloud_error(in, ref, rot.R, have ? best.g : std::numeric_limits<double>::infinity());
  if (!have || g < best.g) best = {rot, g};
  have = true;
}

// The smooth form (Scheme::smooth) replaces every hard choice of align_cloud by a weighted
// blend that a candidate enters and leaves with weight 0, so g' and the force map change
// continuously with the input's positions:
// - input pairs: every pair (a, b) of cloud atoms whose distance sum exceeds that of the two
//   nearest by less than kPairWidth, weighted by a cosine switch of the excess (the nearest
//   pair has weight 1; the paper takes only that one, which jumps when the 2nd and 3rd nearest
//   swap);
// - triangle prefilter: candidate q of the n_triangles smallest u gets the weight
//   1 - (u_q - u_1) / (u_{n+1} - u_1), 0 for the first one not kept;
// - best alignment: a soft minimum (SoftBlend, width kBlendWidth) instead of the argmin;
// - fewer than two cloud atoms: the pair mode, the one-atom mode (spin-averaged maps) and no
//   alignment (map 0) are mixed by the cloud weights: w1 w2 (the two largest), (1 - w1 w2) w1
//   and the rest. Lead (S) atoms within 3 A remain a hard rule (the class rules are too).
inline constexpr double kPairWidth = 0.2;  // Angstrom
// Angstrom. 0.05 left steps of 0.05 eV/A per 0.02 A in the conformance scan (Cu13): the blend
// turned over in g changes of 0.01 A; 0.15 and 0.3 pass it (docs/benchmarks.md, dml_smooth).
inline constexpr double kBlendWidth = 0.15;

// Soft minimum over candidate alignments with weights lambda, errors g and force maps M: the
// maps blended by lambda exp(-g^2 / tau^2), the error sqrt(-tau^2 log) of the lambda-weighted
// mean of exp(-g^2 / tau^2) (g itself for one candidate). Accumulated relative to the smallest
// g so far, so nothing underflows.
struct SoftBlend {
  double g2_min = std::numeric_limits<double>::infinity();
  double a = 0.0, lambda = 0.0;
  Mat3 M{};

  void add(double lam, double g, const Mat3& Mc) {
    if (!(lam > 0.0)) return;
    constexpr double inv_t2 = 1.0 / (kBlendWidth * kBlendWidth);
    lambda += lam;
    const double g2 = g * g;
    if (g2 < g2_min) {
      const double f = a > 0.0 ? std::exp(-(g2_min - g2) * inv_t2) : 0.0;
      a *= f;
      for (double& x : M) x *= f;
      g2_min = g2;
    }
    const double e = lam * std::exp(-(g2 - g2_min) * inv_t2);
    a += e;
    for (std::size_t k = 0; k < 9; ++k) M[k] += e * Mc[k];
  }
  double g() const { return std::sqrt(std::max(0.0, g2_min - kBlendWidth * kBlendWidth * std::log(a / lambda))); }
  void add_to(double c, double& g_out, Mat3& M_out) const {
    g_out += c * g();
    for (std::size_t k = 0; k < 9; ++k) M_out[k] += c * M[k] / a;
  }
};

inline Alignment align_cloud_smooth(const Environment& in, const ReferenceSet& refs, std::size_t j,
                                    const AlignOptions& opt) {
  const Environment& ref = refs[j];
  const auto candidate = [&](SoftBlend& blend, double lam, int m, const double (*p)[3], const double (*s)[3]) {
    Alignment al{kabsch_rotation(static_cast<std::size_t>(m), &p[0][0], &s[0][0]), 0.0};
    blend.add(lam, cloud_error_smooth(in, ref, al.rot.R), force_map(al));
  };
  Alignment out{};
  out.blended = true;
  double p[2][3], s[2][3];
  if (in.n_lead > 0 && ref.n_lead > 0) {
    SoftBlend blend;
    std::copy(in.cloud[0], in.cloud[0] + 3, p[0]);
    std::copy(ref.cloud[0], ref.cloud[0] + 3, s[0]);
    if (in.n_cloud > in.n_lead && ref.n_cloud > ref.n_lead) {
      std::copy(in.cloud[in.n_lead], in.cloud[in.n_lead] + 3, p[1]);
      for (int r = ref.n_lead; r < ref.n_cloud; ++r) {
        std::copy(ref.cloud[r], ref.cloud[r] + 3, s[1]);
        candidate(blend, 1.0, 2, p, s);
      }
    } else {
      candidate(blend, 1.0, 1, p, s);
    }
    blend.add_to(1.0, out.g, out.map);
    return out;
  }
  const auto pin = pair_pool(in);
  const auto pref = pair_pool(ref);
  const int n = pin.second;
  const double (*c)[3] = in.cloud + pin.first;
  const double* w = in.weight + pin.first;
  double r[kMaxCloud], r1 = 0, r2 = 0, w1 = 0, w2 = 0;
  for (int k = 0; k < n; ++k) {
    r[k] = norm(c[k]);
    if (k == 0 || r[k] < r1) {
      r2 = r1;
      r1 = r[k];
    } else if (k == 1 || r[k] < r2) {
      r2 = r[k];
    }
    if (w[k] > w1) {
      w2 = w1;
      w1 = w[k];
    } else if (w[k] > w2) {
      w2 = w[k];
    }
  }
  const double pair_mode = n >= 2 && pref.second >= 2 ? w1 * w2 : 0.0;
  const double one_mode = n >= 1 && pref.second >= 1 ? (1.0 - pair_mode) * w1 : 0.0;
  const double no_mode = 1.0 - pair_mode - one_mode;
  if (pair_mode > 0.0) {
    SoftBlend blend;
    const Triangle* t0 = refs.triangles_begin(j);
    const int nt = static_cast<int>(refs.triangles_end(j) - t0);
    const int keep = opt.n_triangles > 0 ? std::min(opt.n_triangles, nt) : nt;
    std::array<std::pair<double, int>, kMaxCloud*(kMaxCloud - 1)> u;
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b) {
        const double omega = switch_down(r[a] + r[b] - r1 - r2, 0.0, kPairWidth);
        if (!(omega > 0.0)) continue;
        std::copy(c[a], c[a] + 3, p[0]);
        std::copy(c[b], c[b] + 3, p[1]);
        const std::array<double, 6> f0 = triangle_features(p[0], p[1]);
        for (int t = 0; t < nt; ++t) {
          double d = 0;
          for (std::size_t q = 0; q < 6; ++q) d += (t0[t].f[q] - f0[q]) * (t0[t].f[q] - f0[q]);
          u[static_cast<std::size_t>(t)] = {d, t};
        }
        const int sorted = std::min(keep + 1, nt);
        std::partial_sort(u.begin(), u.begin() + sorted, u.begin() + nt);
        const double u1 = u[0].first, span = keep < nt ? u[static_cast<std::size_t>(keep)].first - u1 : 0.0;
        for (int q = 0; q < keep; ++q) {
          const double uq = u[static_cast<std::size_t>(q)].first;
          const double beta = keep == nt ? 1.0 : (span > 0.0 ? 1.0 - (uq - u1) / span : (uq == u1 ? 1.0 : 0.0));
          if (!(beta > 0.0)) continue;
          const Triangle& tr = t0[u[static_cast<std::size_t>(q)].second];
          std::copy(ref.cloud[tr.a], ref.cloud[tr.a] + 3, s[0]);
          std::copy(ref.cloud[tr.b], ref.cloud[tr.b] + 3, s[1]);
          candidate(blend, omega * beta, 2, p, s);
        }
      }
    blend.add_to(pair_mode, out.g, out.map);
  }
  if (one_mode > 0.0) {
    SoftBlend blend;
    for (int a = 0; a < n; ++a) {
      const double omega = switch_down(r[a] - r1, 0.0, kPairWidth);
      if (!(omega > 0.0)) continue;
      std::copy(c[a], c[a] + 3, p[0]);
      for (int q = pref.first; q < pref.first + pref.second; ++q) {
        std::copy(ref.cloud[q], ref.cloud[q] + 3, s[0]);
        candidate(blend, omega, 1, p, s);
      }
    }
    blend.add_to(one_mode, out.g, out.map);
  }
  if (no_mode > 0.0) out.g += no_mode * cloud_error_smooth(in, ref, identity3());
  return out;
}

inline Alignment align_cloud(const Environment& in, const ReferenceSet& refs, std::size_t j, const AlignOptions& opt) {
  if (kSchemes[static_cast<std::size_t>(in.scheme)].smooth) return align_cloud_smooth(in, refs, j, opt);
  const Environment& ref = refs[j];
  Alignment best{{identity3(), 0, {1.0, 0.0, 0.0}}, 0.0};
  bool have = false;
  double p[2][3];
  if (in.n_lead > 0 && ref.n_lead > 0) {
    // Both bound to S: centre, S, and the input's nearest metal neighbour against every
    // metal neighbour of the reference.
    for (int c = 0; c < 3; ++c) p[0][c] = in.cloud[0][c];
    const bool third = in.n_cloud > in.n_lead && ref.n_cloud > ref.n_lead;
    if (!third) {
      const int rows[1] = {0};
      try_cloud(in, ref, 1, p, rows, best, have);
      return best;
    }
    for (int c = 0; c < 3; ++c) p[1][c] = in.cloud[in.n_lead][c];
    for (int r = ref.n_lead; r < ref.n_cloud; ++r) {
      const int rows[2] = {0, r};
      try_cloud(in, ref, 2, p, rows, best, have);
    }
    return best;
  }
  // Otherwise: centre and the input's two nearest metal neighbours against ordered pairs of
  // the reference's, after the triangle prefilter (eq. 18).
  const auto pin = pair_pool(in);
  const auto pref = pair_pool(ref);
  const int m = std::min({2, pin.second, pref.second});
  if (m == 0) {
    best.g = cloud_error(in, ref, best.rot.R);
    return best;
  }
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < 3; ++c) p[r][c] = in.cloud[pin.first + r][c];
  if (m == 1) {
    for (int r = pref.first; r < pref.first + pref.second; ++r) {
      const int rows[1] = {r};
      try_cloud(in, ref, 1, p, rows, best, have);
    }
    return best;
  }
  const std::array<double, 6> f0 = triangle_features(p[0], p[1]);
  const Triangle* t0 = refs.triangles_begin(j);
  const int nt = static_cast<int>(refs.triangles_end(j) - t0);
  std::array<std::pair<double, int>, kMaxCloud*(kMaxCloud - 1)> u;
  for (int t = 0; t < nt; ++t) {
    double d = 0;
    for (int q = 0; q < 6; ++q)
      d += (t0[t].f[static_cast<std::size_t>(q)] - f0[static_cast<std::size_t>(q)]) *
           (t0[t].f[static_cast<std::size_t>(q)] - f0[static_cast<std::size_t>(q)]);
    u[static_cast<std::size_t>(t)] = {d, t};
  }
  const int keep = opt.n_triangles > 0 ? std::min(opt.n_triangles, nt) : nt;
  std::partial_sort(u.begin(), u.begin() + keep, u.begin() + nt);
  for (int q = 0; q < keep; ++q) {
    const Triangle& tr = t0[u[static_cast<std::size_t>(q)].second];
    const int rows[2] = {tr.a, tr.b};
    try_cloud(in, ref, 2, p, rows, best, have);
  }
  return best;
}

}  // namespace detail

// Best alignment of reference j onto the input over the schemes' permutations / candidates.
// The pair must be compatible (check_compatible); this function does not throw.
inline Alignment align_environments(const Environment& in, const ReferenceSet& refs, std::size_t j,
                                    const AlignOptions& opt) {
  if (kSchemes[static_cast<std::size_t>(in.scheme)].error == ErrorKind::Anchors)
    return detail::align_anchors(in, refs[j]);
  return detail::align_cloud(in, refs, j, opt);
}

namespace detail {

// These checks run on every prediction call: messages are built only on failure.
inline void check_scheme_of(const Environment& e, const char* what, std::size_t k) {
  if (e.scheme < 0 || e.scheme >= static_cast<int>(kSchemes.size()))
    check_scheme(e.scheme, (std::string(what) + " environment " + std::to_string(k)).c_str());
}

[[noreturn]] inline void incompatible(const char* what, std::size_t k, const Environment& e, const Environment& r0) {
  throw std::invalid_argument(std::string(what) + " environment " + std::to_string(k) + " (scheme " +
                              kSchemes[static_cast<std::size_t>(e.scheme)].name + ", Z=" + std::to_string(e.element) +
                              ") cannot be aligned with reference environment 0 (scheme " +
                              kSchemes[static_cast<std::size_t>(r0.scheme)].name + ", Z=" + std::to_string(r0.element) +
                              "): environments of different classes need separate models");
}

}  // namespace detail

// align_environments(in, refs, j, opt) for j in [j0, j0 + n), n <= kAlignChunk, into out;
// anchor schemes batch the SVDs of the whole range.
inline void align_chunk(const Environment& in, const ReferenceSet& refs, std::size_t j0, std::size_t n,
                        const AlignOptions& opt, Alignment* out) {
  if (n > kAlignChunk) throw std::invalid_argument("align_chunk: at most kAlignChunk references");
  if (kSchemes[static_cast<std::size_t>(in.scheme)].error == ErrorKind::Anchors) {
    detail::align_anchors_chunk(in, refs, j0, n, out);
    return;
  }
  for (std::size_t r = 0; r < n; ++r) out[r] = detail::align_cloud(in, refs, j0 + r, opt);
}

// Throws std::invalid_argument unless the references share one class (only environments of
// one class are aligned with each other) and n_triangles >= 0; std::out_of_range for an
// unknown scheme. Once per reference set; check_inputs then checks each batch of inputs.
inline void check_references(const ReferenceSet& refs, const AlignOptions& opt) {
  if (opt.n_triangles < 0)
    throw std::invalid_argument("n_triangles must be >= 0 (0 = no prefilter), got " + std::to_string(opt.n_triangles));
  for (std::size_t j = 0; j < refs.size(); ++j) detail::check_scheme_of(refs[j], "reference", j);
  if (refs.size() == 0) return;
  const int key = class_key(refs[0]);
  for (std::size_t j = 1; j < refs.size(); ++j)
    if (class_key(refs[j]) != key) detail::incompatible("reference", j, refs[j], refs[0]);
}

// Throws std::invalid_argument naming the first input of a class other than the references'
// (std::out_of_range for an unknown scheme); the references must have passed check_references.
inline void check_inputs(const Environment* in, std::size_t n, const ReferenceSet& refs) {
  for (std::size_t i = 0; i < n; ++i) detail::check_scheme_of(in[i], "input", i);
  if (refs.size() == 0) return;
  const int key = class_key(refs[0]);
  for (std::size_t i = 0; i < n; ++i)
    if (class_key(in[i]) != key) detail::incompatible("input", i, in[i], refs[0]);
}

// check_references, then check_inputs.
inline void check_compatible(const Environment* in, std::size_t n, const ReferenceSet& refs, const AlignOptions& opt) {
  check_references(refs, opt);
  check_inputs(in, n, refs);
}

// g (n x K) and optionally the force maps (n x K x 9, row-major; nullptr to skip) of every
// pair: the rotation R, except in degenerate alignments (see force_map).
inline void align_batch(const Environment* in, std::size_t n, const ReferenceSet& refs, const AlignOptions& opt,
                        double* g, double* R) {
  check_compatible(in, n, refs, opt);
  const std::size_t K = refs.size();
  const auto nn = static_cast<std::int64_t>(n);
  parallel_for(nn, [&](std::int64_t i) {
    for (std::size_t j = 0; j < K; ++j) {
      const Alignment al = align_environments(in[i], refs, j, opt);
      const std::size_t ij = static_cast<std::size_t>(i) * K + j;
      g[ij] = al.g;
      if (R) {
        const Mat3 M = force_map(al);
        std::copy(M.begin(), M.end(), R + 9 * ij);
      }
    }
  });
}

// Training matrices of OAMLM without storing N x K rotations: D_c[i,j] = y_i . (M_ij t_j)
// with M = force_map (the rotation R_ij unless the alignment is degenerate)
// and D_g[i,j] = g or g' of the best alignment. y (n x 3) and t (K x 3) are unit forces.
inline void alignment_cosines(const Environment* in, std::size_t n, const ReferenceSet& refs, const double* y,
                              const double* t, const AlignOptions& opt, double* Dc, double* Dg) {
  check_compatible(in, n, refs, opt);
  const std::size_t K = refs.size();
  const auto nn = static_cast<std::int64_t>(n);
  parallel_for(nn, [&](std::int64_t i) {
    const double* yi = y + 3 * i;
    for (std::size_t j = 0; j < K; ++j) {
      const Alignment al = align_environments(in[i], refs, j, opt);
      double rt[3];
      detail::apply(force_map(al), t + 3 * j, rt);
      const std::size_t ij = static_cast<std::size_t>(i) * K + j;
      Dc[ij] = detail::dot(yi, rt);
      Dg[ij] = al.g;
    }
  });
}

}  // namespace clusterforce
