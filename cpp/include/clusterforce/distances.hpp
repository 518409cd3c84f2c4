// Euclidean distance matrices between two sets of float64 row vectors.
//
// out[i, j] = |x_i - y_j| for X (n x f) and Y (k x f), all row-major, out (n x k)
// caller-allocated. Two modes:
//   gram  - |x|^2 + |y|^2 - 2 x.y with the x.y part as a cache-blocked, register-tiled
//           matrix product (the BLIS loop structure: packed panels, a micro-kernel that the
//           compiler vectorises, OpenMP over output tiles);
//   exact - sum_q (x_q - y_q)^2 through the same blocked loops, no cancellation.
// In gram mode pairs closer than sqrt(kGramRefine) times their norm scale are recomputed
// from differences, so near-duplicates stay accurate and identical rows give exactly 0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu.hpp"
#include "parallel.hpp"

#if CLUSTERFORCE_X86_DISPATCH
#include <immintrin.h>
#endif

namespace clusterforce {

enum class DistanceMode { gram, exact };

struct DistanceOptions {
  DistanceMode mode = DistanceMode::gram;
  bool squared = false;  // return |x - y|^2 instead of |x - y|
  Isa isa = Isa::automatic;
};

namespace detail {

// Blocking. A pass covers kKc feature columns: an X block (kMc x kKc, 192 KiB) and the
// output tile (kMc x kNc, 192 KiB) stay in L2, a Y micro-panel (kKc x NR, <= 32 KiB) in L1
// while the micro-kernel sweeps the X block; the packed Y chunk (<= kPackedBytes) in L3.
constexpr std::size_t kKc = 256;
constexpr std::size_t kMc = 96;                              // rows of an output tile; multiple of every MR
constexpr std::size_t kNc = 256;                             // columns of an output tile; multiple of every NR
constexpr std::size_t kPackedBytes = std::size_t{16} << 20;  // packed Y shared by the threads
// Below this many rows of X, packing Y costs as much as the product it feeds: the rows are
// compared unpacked, from differences (exact in both modes). Measured crossover: 16-32 rows.
constexpr std::size_t kDirectRows = 32;
// Don't start threads for less work than this (multiply-adds).
constexpr double kParallelWork = 2.0e5;

// Cancellation in |x|^2 + |y|^2 - 2 x.y costs about eps * (|x|^2 + |y|^2) absolute in d^2;
// pairs with d^2 below this fraction of |x|^2 + |y|^2 are recomputed from differences.
constexpr double kGramRefine = 1e-4;

struct DotOp {
  template <bool Fma>
  static CLUSTERFORCE_ALWAYS_INLINE double step(double acc, double a, double b) {
    if constexpr (Fma) {
      return std::fma(a, b, acc);
    } else {
      return acc + a * b;
    }
  }
};

struct SqDiffOp {
  template <bool Fma>
  static CLUSTERFORCE_ALWAYS_INLINE double step(double acc, double a, double b) {
    const double t = a - b;
    if constexpr (Fma) {
      return std::fma(t, t, acc);
    } else {
      return acc + t * t;
    }
  }
};

// One output tile for one pass over kc features. `a` holds ceil(mc/MR) packed panels of
// kc x MR values (row i of the panel interleaved at stride MR), `b` ceil(nc/NR) panels of
// kc x NR; padding rows are zero and their results are discarded.
struct TileArgs {
  std::size_t mc, nc, kc;
  const double* a;
  const double* b;
  double* c;
  std::size_t ldc;
  bool accumulate;  // add this pass to c (later passes) instead of overwriting it
};

template <int MR, int NR, bool Fma, class Op>
CLUSTERFORCE_ALWAYS_INLINE void tile_kernel(const TileArgs& t) {
  for (std::size_t jr = 0; jr < t.nc; jr += NR) {
    const double* bp = t.b + jr * t.kc;
    const std::size_t nr = std::min<std::size_t>(NR, t.nc - jr);
    // Pull the next Y micro-panel from L3 during the first X micro-panel, and the next X
    // micro-panel from L2 during the others (measured: ~4% here).
    const double* b_next = jr + NR < t.nc ? bp + NR * t.kc : bp;
    for (std::size_t ir = 0; ir < t.mc; ir += MR) {
      const double* ap = t.a + ir * t.kc;
      const double* ahead = ir == 0 ? b_next : ap + MR * t.kc;
      const std::size_t mr = std::min<std::size_t>(MR, t.mc - ir);
      double acc[MR][NR];
      for (int i = 0; i < MR; ++i) {
        CLUSTERFORCE_PRAGMA(omp simd)
        for (int j = 0; j < NR; ++j) acc[i][j] = 0.0;
      }
      for (std::size_t q = 0; q < t.kc; ++q) {
        const double* aq = ap + q * MR;
        const double* bq = bp + q * NR;
        CLUSTERFORCE_PREFETCH(ahead + 16 * q);  // 2 cache lines per step covers NR <= 16
        CLUSTERFORCE_PREFETCH(ahead + 16 * q + 8);
        for (int i = 0; i < MR; ++i) {
          const double ai = aq[i];
          CLUSTERFORCE_PRAGMA(omp simd)
          for (int j = 0; j < NR; ++j) {
            acc[i][j] = Op::template step<Fma>(acc[i][j], ai, bq[j]);
          }
        }
      }
      double* c = t.c + ir * t.ldc + jr;
      if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; ++i) {
          double* ci = c + i * t.ldc;
          if (t.accumulate) {
            CLUSTERFORCE_PRAGMA(omp simd)
            for (int j = 0; j < NR; ++j) ci[j] += acc[i][j];
          } else {
            CLUSTERFORCE_PRAGMA(omp simd)
            for (int j = 0; j < NR; ++j) ci[j] = acc[i][j];
          }
        }
      } else {
        for (std::size_t i = 0; i < mr; ++i) {
          double* ci = c + i * t.ldc;
          for (std::size_t j = 0; j < nr; ++j) {
            ci[j] = t.accumulate ? ci[j] + acc[i][j] : acc[i][j];
          }
        }
      }
    }
  }
}

// Register tiles per instruction set: MR x NR accumulators fill most of the vector registers
// (SSE2 8 of 16, AVX2 12 of 16, AVX-512 24 of 32) with NR a multiple of the vector width.
template <class Op>
void tile_generic(const TileArgs& t) {
  tile_kernel<4, 4, false, Op>(t);
}

// Few rows of X (no packing: for small n, packing Y would cost as much as the arithmetic).
// out[i, j] = |x_i - y_j|^2 for all i < n and j in [j0, j1), out row length k. Blocks of R
// rows of X and C rows of Y keep R*C accumulators of W lanes in registers and read every
// row straight from the caller's array, W features at a time.
template <int R, int C, int W, bool Fma>
CLUSTERFORCE_ALWAYS_INLINE void rows_kernel(const double* x, std::size_t i0, std::size_t n, const double* y,
                                            std::size_t k, std::size_t f, double* out, std::size_t j0, std::size_t j1) {
  const std::size_t body = f / W * W;
  for (std::size_t j = j0; j < j1; j += C) {
    const std::size_t cols = std::min<std::size_t>(C, j1 - j);
    for (std::size_t i = i0; i < n; i += R) {
      const std::size_t rows = std::min<std::size_t>(R, n - i);
      double acc[R][C][W];
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
          CLUSTERFORCE_PRAGMA(omp simd)
          for (int w = 0; w < W; ++w) acc[r][c][w] = 0.0;
        }
      // Short blocks reuse the last valid row; their results are not stored.
      const double* xr[R];
      const double* yc[C];
      for (int r = 0; r < R; ++r) xr[r] = x + (i + std::min<std::size_t>(r, rows - 1)) * f;
      for (int c = 0; c < C; ++c) yc[c] = y + (j + std::min<std::size_t>(c, cols - 1)) * f;
      for (std::size_t q = 0; q < body; q += W) {
        for (int r = 0; r < R; ++r)
          for (int c = 0; c < C; ++c) {
            CLUSTERFORCE_PRAGMA(omp simd)
            for (int w = 0; w < W; ++w) {
              acc[r][c][w] = SqDiffOp::step<Fma>(acc[r][c][w], xr[r][q + w], yc[c][q + w]);
            }
          }
      }
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) {
          double d2 = 0.0;
          for (int w = 0; w < W; ++w) d2 += acc[r][c][w];
          for (std::size_t q = body; q < f; ++q) d2 = SqDiffOp::step<false>(d2, xr[r][q], yc[c][q]);
          out[(i + r) * k + j + c] = d2;
        }
    }
  }
}

inline void rows_generic(const double* x, std::size_t n, const double* y, std::size_t k, std::size_t f, double* out,
                         std::size_t j0, std::size_t j1) {
  rows_kernel<2, 2, 2, false>(x, 0, n, y, k, f, out, j0, j1);
}

// v[j] = sqrt(max(v[j], 0)). Written with intrinsics because compilers keep sqrt scalar
// (it may set errno) unless built with -fno-math-errno, which we cannot impose on LAMMPS.
inline void sqrt_clamped_generic(double* v, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) v[j] = std::sqrt(std::max(v[j], 0.0));
}

#if CLUSTERFORCE_X86_DISPATCH
template <class Op>
CLUSTERFORCE_TARGET_AVX2 void tile_avx2(const TileArgs& t) {
  tile_kernel<6, 8, true, Op>(t);
}
template <class Op>
CLUSTERFORCE_TARGET_AVX512 void tile_avx512(const TileArgs& t) {
  tile_kernel<12, 16, true, Op>(t);
}
CLUSTERFORCE_TARGET_AVX2 inline void rows_avx2(const double* x, std::size_t n, const double* y, std::size_t k,
                                               std::size_t f, double* out, std::size_t j0, std::size_t j1) {
  const std::size_t paired = n / 2 * 2;  // a lone last row gets a 1-row kernel, not a padded one
  rows_kernel<2, 3, 4, true>(x, 0, paired, y, k, f, out, j0, j1);
  rows_kernel<1, 6, 4, true>(x, paired, n, y, k, f, out, j0, j1);
}
CLUSTERFORCE_TARGET_AVX512 inline void rows_avx512(const double* x, std::size_t n, const double* y, std::size_t k,
                                                   std::size_t f, double* out, std::size_t j0, std::size_t j1) {
  const std::size_t quads = n / 4 * 4;  // leftover rows get a 1-row kernel, not padded ones
  rows_kernel<4, 4, 8, true>(x, 0, quads, y, k, f, out, j0, j1);
  rows_kernel<1, 8, 8, true>(x, quads, n, y, k, f, out, j0, j1);
}
CLUSTERFORCE_TARGET_AVX2 inline void sqrt_clamped_avx2(double* v, std::size_t n) {
  std::size_t j = 0;
  const __m256d zero = _mm256_setzero_pd();
  for (; j + 4 <= n; j += 4) {
    _mm256_storeu_pd(v + j, _mm256_sqrt_pd(_mm256_max_pd(_mm256_loadu_pd(v + j), zero)));
  }
  sqrt_clamped_generic(v + j, n - j);
}
CLUSTERFORCE_TARGET_AVX512 inline void sqrt_clamped_avx512(double* v, std::size_t n) {
  std::size_t j = 0;
  const __m512d zero = _mm512_setzero_pd();
  for (; j + 8 <= n; j += 8) {
    // maskz forms: the plain ones trip GCC 12's -Wmaybe-uninitialized in its own headers
    const __m512d clamped = _mm512_maskz_max_pd(0xFF, _mm512_loadu_pd(v + j), zero);
    _mm512_storeu_pd(v + j, _mm512_maskz_sqrt_pd(0xFF, clamped));
  }
  sqrt_clamped_generic(v + j, n - j);
}
#endif

struct TileKernels {
  std::size_t mr, nr;
  void (*dot)(const TileArgs&);
  void (*sqdiff)(const TileArgs&);
  void (*sqrt_clamped)(double*, std::size_t);
  void (*rows)(const double*, std::size_t, const double*, std::size_t, std::size_t, double*, std::size_t, std::size_t);
};

inline TileKernels tile_kernels(Isa requested) {
  switch (resolve_isa(requested)) {
#if CLUSTERFORCE_X86_DISPATCH
    case Isa::avx512:
      return {12, 16, &tile_avx512<DotOp>, &tile_avx512<SqDiffOp>, &sqrt_clamped_avx512, &rows_avx512};
    case Isa::avx2:
      return {6, 8, &tile_avx2<DotOp>, &tile_avx2<SqDiffOp>, &sqrt_clamped_avx2, &rows_avx2};
#endif
    default:
      return {4, 4, &tile_generic<DotOp>, &tile_generic<SqDiffOp>, &sqrt_clamped_generic, &rows_generic};
  }
}

// 64-byte aligned scratch, so packed panels start on cache lines.
struct AlignedBuffer {
  explicit AlignedBuffer(std::size_t n)
      : data(static_cast<double*>(
            ::operator new[](std::max<std::size_t>(n, 1) * sizeof(double), std::align_val_t{64}))) {}
  ~AlignedBuffer() { ::operator delete[](data, std::align_val_t{64}); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  double* data;
};

// Packs rows [r0, r0 + rows) x columns [p0, p0 + kc) of the row-major matrix m (row length
// ld) as one panel of width w: out[q * w + i] = m[r0 + i, p0 + q], zero for i >= rows.
inline void pack_panel(const double* m, std::size_t ld, std::size_t r0, std::size_t rows, std::size_t p0,
                       std::size_t kc, std::size_t w, double* out) {
  // Contiguous writes, w sequential read streams: a store per row-major source element
  // would touch a new cache line each time and cost as much as the arithmetic.
  const double* src = m + r0 * ld + p0;
  for (std::size_t q = 0; q < kc; ++q) {
    double* o = out + q * w;
    for (std::size_t i = 0; i < rows; ++i) o[i] = src[i * ld + q];
    for (std::size_t i = rows; i < w; ++i) o[i] = 0.0;
  }
}

inline double squared_distance(const double* a, const double* b, std::size_t f) {
  double s = 0.0;
  CLUSTERFORCE_PRAGMA(omp simd reduction(+ : s))
  for (std::size_t q = 0; q < f; ++q) {
    const double t = a[q] - b[q];
    s += t * t;
  }
  return s;
}

inline double squared_norm(const double* a, std::size_t f) {
  double s = 0.0;
  CLUSTERFORCE_PRAGMA(omp simd reduction(+ : s))
  for (std::size_t q = 0; q < f; ++q) s += a[q] * a[q];
  return s;
}

inline std::size_t round_up(std::size_t v, std::size_t m) {
  return (v + m - 1) / m * m;
}

inline double work(std::size_t n, std::size_t k, std::size_t f) {
  return static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(f);
}

// Worksharing loop without a closing barrier: called by every thread of a parallel region
// (or outside one); read out only after the region's next barrier.
inline void row_norms_shared(const double* x, std::size_t n, std::size_t f, double* out) {
    CLUSTERFORCE_PRAGMA(omp for schedule(static) nowait)
    for (std::int64_t ii = 0; ii < static_cast<std::int64_t>(n); ++ii) {
      const auto i = static_cast<std::size_t>(ii);
      out[i] = squared_norm(x + i * f, f);
    }
}

// Runs the blocked product c = sum_q op(x_iq, y_jq). The threads pack a chunk of Y (all
// features, pass by pass) once into shared panels, then take output tiles dynamically; a
// tile runs all its feature passes back to back, so its accumulators stay in L2 instead of
// travelling through memory once per pass. A thread packs the X strip of its tile once per
// strip (whole strips are handed out together). The last pass hands the tile to
// finish(i0, rows, j0, cols) while it is hot. Every output element sees the same operation
// order whatever the thread count.
// prepare() runs first on every thread of the region; what it writes may be read in
// finish(), which always follows the barrier closing the first packing loop.
template <class Prepare, class Finish>
void blocked_pairwise(const double* x, std::size_t n, const double* y, std::size_t k, std::size_t f, double* out,
                      void (*tile)(const TileArgs&), std::size_t mr, std::size_t nr, Prepare prepare, Finish finish) {
  // Columns per shared chunk: as many as the packing budget allows, in whole tiles.
  const std::size_t budget_cols = kPackedBytes / (f * sizeof(double)) / kNc * kNc;
  const std::size_t chunk = std::min(round_up(k, kNc), std::max(kNc, budget_cols));
  const std::size_t padded_chunk = round_up(chunk, nr);
  AlignedBuffer bpack(padded_chunk * f);
  const std::size_t tile_rows = (n + kMc - 1) / kMc;
  const std::size_t passes = (f + kKc - 1) / kKc;
  const bool parallel = work(n, k, f) > kParallelWork;
  (void)parallel;
  CLUSTERFORCE_PRAGMA(omp parallel if (parallel)) {
    prepare();
    AlignedBuffer apack(kMc * f);
    const std::size_t threads = team_slot().size;
    for (std::size_t j0 = 0; j0 < k; j0 += chunk) {
      const std::size_t ncols = std::min(chunk, k - j0);
      const std::size_t b_panels = (ncols + nr - 1) / nr;
      const auto pack_jobs = static_cast<std::int64_t>(passes * b_panels);
            CLUSTERFORCE_PRAGMA(omp for schedule(static))
            for (std::int64_t job = 0; job < pack_jobs; ++job) {
              const std::size_t p0 = static_cast<std::size_t>(job) / b_panels * kKc;
              const std::size_t r = static_cast<std::size_t>(job) % b_panels * nr;
              const std::size_t kc = std::min(kKc, f - p0);
              pack_panel(y, f, j0 + r, std::min(nr, ncols - r), p0, kc, nr, bpack.data + p0 * padded_chunk + r * kc);
            }
            const std::size_t tile_cols = (ncols + kNc - 1) / kNc;
            const auto tiles = static_cast<std::int64_t>(tile_rows * tile_cols);
            // Whole row strips per grab keep X packed; split strips when they are too few.
            const auto grab =
                static_cast<int>(std::max<std::size_t>(1, std::min(tile_cols, tile_rows * tile_cols / (2 * threads))));
            (void)grab;                   // unused without OpenMP
            std::size_t packed_rows = n;  // none yet
            CLUSTERFORCE_PRAGMA(omp for schedule(dynamic, grab))
            for (std::int64_t t = 0; t < tiles; ++t) {
              const std::size_t i0 = static_cast<std::size_t>(t) / tile_cols * kMc;
              const std::size_t tj = static_cast<std::size_t>(t) % tile_cols * kNc;
              const std::size_t mc = std::min(kMc, n - i0), nc = std::min(kNc, ncols - tj);
              if (packed_rows != i0) {
                for (std::size_t p0 = 0; p0 < f; p0 += kKc) {
                  const std::size_t kc = std::min(kKc, f - p0);
                  for (std::size_t r = 0; r < mc; r += mr) {
                    pack_panel(x, f, i0 + r, std::min(mr, mc - r), p0, kc, mr, apack.data + p0 * kMc + r * kc);
                  }
                }
                packed_rows = i0;
              }
              double* c = out + i0 * k + j0 + tj;
              for (std::size_t p0 = 0; p0 < f; p0 += kKc) {
                const std::size_t kc = std::min(kKc, f - p0);
                const double* b = bpack.data + p0 * padded_chunk + tj * kc;
                tile(TileArgs{mc, nc, kc, apack.data + p0 * kMc, b, c, k, p0 > 0});
              }
              finish(i0, mc, j0 + tj, nc);
            }
    }
  }
}

// Few rows of X: threads split Y into contiguous column ranges; exact differences in both
// modes (no norms needed, and no cancellation).
inline void few_rows(const TileKernels& kernels, const double* x, std::size_t n, const double* y, std::size_t k,
                     std::size_t f, double* out, bool squared) {
  const bool parallel = work(n, k, f) > kParallelWork;
  (void)parallel;
  CLUSTERFORCE_PRAGMA(omp parallel if (parallel)) {
    const auto [me, threads] = team_slot();
    const std::size_t chunk = round_up((k + threads - 1) / threads, 8);
    const std::size_t j0 = std::min(k, me * chunk), j1 = std::min(k, j0 + chunk);
    if (j0 < j1) {
      kernels.rows(x, n, y, k, f, out, j0, j1);
      if (!squared) {
        for (std::size_t i = 0; i < n; ++i) kernels.sqrt_clamped(out + i * k + j0, j1 - j0);
      }
    }
  }
}

inline void check_pointer(const void* p, bool needed, const char* name) {
  if (needed && p == nullptr) {
    throw std::invalid_argument(std::string("euclidean_distances: ") + name + " is null but has a nonzero size");
  }
}

}  // namespace detail

// out[i] = |x_i|^2 for the n x f row-major matrix x.
inline void squared_row_norms(const double* x, std::size_t n, std::size_t f, double* out) {
  detail::check_pointer(x, n > 0 && f > 0, "x");
  detail::check_pointer(out, n > 0, "out");
  const bool parallel = detail::work(n, 1, f) > detail::kParallelWork;
  (void)parallel;
  CLUSTERFORCE_PRAGMA(omp parallel if (parallel))
  detail::row_norms_shared(x, n, f, out);
}

// out (n x k, row-major) = x y^T: the dot products of the rows of x (n x f) and y (k x f), by the
// same blocked kernel as the distances (the same operation order whatever the thread count).
inline void dot_products(const double* x, std::size_t n, const double* y, std::size_t k, std::size_t f, double* out,
                         Isa isa = Isa::automatic) {
  detail::check_pointer(x, n > 0 && f > 0, "x");
  detail::check_pointer(y, k > 0 && f > 0, "y");
  detail::check_pointer(out, n > 0 && k > 0, "out");
  if (n == 0 || k == 0) return;
  if (f == 0) {
    std::fill(out, out + n * k, 0.0);
    return;
  }
  const detail::TileKernels kernels = detail::tile_kernels(isa);
  detail::blocked_pairwise(
      x, n, y, k, f, out, kernels.dot, kernels.mr, kernels.nr, [] {},
      [](std::size_t, std::size_t, std::size_t, std::size_t) {});
}

// out (n x k, row-major) = distances between the rows of x (n x f) and y (k x f).
// x_sqnorms / y_sqnorms: optional |x_i|^2 and |y_j|^2 (gram mode only; computed when null),
// so a caller that keeps y fixed can reuse its norms across calls. out must not alias x or y.
inline void euclidean_distances(const double* x, std::size_t n, const double* y, std::size_t k, std::size_t f,
                                double* out, const DistanceOptions& options = {}, const double* x_sqnorms = nullptr,
                                const double* y_sqnorms = nullptr) {
  detail::check_pointer(x, n > 0 && f > 0, "x");
  detail::check_pointer(y, k > 0 && f > 0, "y");
  detail::check_pointer(out, n > 0 && k > 0, "out");
  const detail::TileKernels kernels = detail::tile_kernels(options.isa);
  if (n == 0 || k == 0) return;
  if (f == 0) {
    std::fill(out, out + n * k, 0.0);
    return;
  }
  const bool squared = options.squared;
  if (n < detail::kDirectRows) {
    detail::few_rows(kernels, x, n, y, k, f, out, squared);
    return;
  }
  if (options.mode == DistanceMode::exact) {
    detail::blocked_pairwise(
        x, n, y, k, f, out, kernels.sqdiff, kernels.mr, kernels.nr, [] {},
        [=](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
          if (squared) return;
          for (std::size_t i = i0; i < i0 + rows; ++i) {
            kernels.sqrt_clamped(out + i * k + j0, cols);
          }
        });
    return;
  }
  // Missing norms are computed inside the kernel's parallel region: no second fork/join,
  // and no barrier of their own (they are first read in the epilogue).
  std::vector<double> own_x(x_sqnorms ? 0 : n), own_y(y_sqnorms ? 0 : k);
  if (!x_sqnorms) x_sqnorms = own_x.data();
  if (!y_sqnorms) y_sqnorms = own_y.data();
  double* fill_x = own_x.empty() ? nullptr : own_x.data();
  double* fill_y = own_y.empty() ? nullptr : own_y.data();
  detail::blocked_pairwise(
      x, n, y, k, f, out, kernels.dot, kernels.mr, kernels.nr,
      [=] {
        if (fill_x) detail::row_norms_shared(x, n, f, fill_x);
        if (fill_y) detail::row_norms_shared(y, k, f, fill_y);
      },
      [=](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
        for (std::size_t i = i0; i < i0 + rows; ++i) {
          double* oi = out + i * k + j0;
          const double* yn = y_sqnorms + j0;
          const double xn = x_sqnorms[i];
          double margin = 0.0;  // < 0 iff some pair needs recomputing
          CLUSTERFORCE_PRAGMA(omp simd reduction(min : margin))
          for (std::size_t j = 0; j < cols; ++j) {
            const double scale = xn + yn[j];
            const double d2 = scale - 2.0 * oi[j];
            margin = std::min(margin, d2 - detail::kGramRefine * scale);
            oi[j] = d2;
          }
          if (margin < 0.0) {
            for (std::size_t j = 0; j < cols; ++j) {
              if (oi[j] < detail::kGramRefine * (xn + yn[j])) {
                oi[j] = detail::squared_distance(x + i * f, y + (j0 + j) * f, f);
              }
            }
          }
          if (squared) {
            CLUSTERFORCE_PRAGMA(omp simd)
            for (std::size_t j = 0; j < cols; ++j) oi[j] = std::max(oi[j], 0.0);
          } else {
            kernels.sqrt_clamped(oi, cols);
          }
        }
      });
}

}  // namespace clusterforce
