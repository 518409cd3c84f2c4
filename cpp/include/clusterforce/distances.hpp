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
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.hpp"

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

// Blocking. A pass covers kKc feature columns: an A tile (kMc x kKc, 192 KiB) stays in L2
// and a B micro-panel (kKc x NR, <= 32 KiB) in L1 while the micro-kernel sweeps it.
constexpr std::size_t kKc = 256;
constexpr std::size_t kMc = 96;                 // rows of an output tile; multiple of every MR
constexpr std::size_t kNc = 256;                // columns of an output tile; multiple of every NR
// Below this many rows of X a register-tiled product cannot amortise packing: the work is
// memory-bound on Y, so distances are taken from differences directly (exact in both modes).
constexpr std::size_t kDirectRows = 8;
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
        for (std::size_t ir = 0; ir < t.mc; ir += MR) {
            const double* ap = t.a + ir * t.kc;
            const std::size_t mr = std::min<std::size_t>(MR, t.mc - ir);
            double acc[MR][NR];
            for (int i = 0; i < MR; ++i) {
                CLUSTERFORCE_PRAGMA(omp simd)
                for (int j = 0; j < NR; ++j) acc[i][j] = 0.0;
            }
            for (std::size_t q = 0; q < t.kc; ++q) {
                const double* aq = ap + q * MR;
                const double* bq = bp + q * NR;
                for (int i = 0; i < MR; ++i) {
                    const double ai = aq[i];
                    CLUSTERFORCE_PRAGMA(omp simd)
                    for (int j = 0; j < NR; ++j) acc[i][j] = Op::template step<Fma>(acc[i][j], ai, bq[j]);
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
                    for (std::size_t j = 0; j < nr; ++j) ci[j] = t.accumulate ? ci[j] + acc[i][j] : acc[i][j];
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
CLUSTERFORCE_TARGET_AVX2 inline void sqrt_clamped_avx2(double* v, std::size_t n) {
    std::size_t j = 0;
    const __m256d zero = _mm256_setzero_pd();
    for (; j + 4 <= n; j += 4) _mm256_storeu_pd(v + j, _mm256_sqrt_pd(_mm256_max_pd(_mm256_loadu_pd(v + j), zero)));
    sqrt_clamped_generic(v + j, n - j);
}
CLUSTERFORCE_TARGET_AVX512 inline void sqrt_clamped_avx512(double* v, std::size_t n) {
    std::size_t j = 0;
    const __m512d zero = _mm512_setzero_pd();  // maskz forms: GCC 12 warns on the others
    for (; j + 8 <= n; j += 8) _mm512_storeu_pd(v + j, _mm512_maskz_sqrt_pd(0xFF, _mm512_maskz_max_pd(0xFF, _mm512_loadu_pd(v + j), zero)));
    sqrt_clamped_generic(v + j, n - j);
}
#endif

struct TileKernels {
    std::size_t mr, nr;
    void (*dot)(const TileArgs&);
    void (*sqdiff)(const TileArgs&);
    void (*sqrt_clamped)(double*, std::size_t);
};

inline TileKernels tile_kernels(Isa requested) {
    switch (resolve_isa(requested)) {
#if CLUSTERFORCE_X86_DISPATCH
        case Isa::avx512: return {12, 16, &tile_avx512<DotOp>, &tile_avx512<SqDiffOp>, &sqrt_clamped_avx512};
        case Isa::avx2: return {6, 8, &tile_avx2<DotOp>, &tile_avx2<SqDiffOp>, &sqrt_clamped_avx2};
#endif
        default: return {4, 4, &tile_generic<DotOp>, &tile_generic<SqDiffOp>, &sqrt_clamped_generic};
    }
}

// 64-byte aligned scratch, so packed panels start on cache lines.
struct AlignedBuffer {
    explicit AlignedBuffer(std::size_t n)
        : data(static_cast<double*>(::operator new[](std::max<std::size_t>(n, 1) * sizeof(double),
                                                     std::align_val_t{64}))) {}
    ~AlignedBuffer() { ::operator delete[](data, std::align_val_t{64}); }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    double* data;
};

// Packs rows [r0, r0 + rows) x columns [p0, p0 + kc) of the row-major matrix m (row length
// ld) as one panel of width w: out[q * w + i] = m[r0 + i, p0 + q], zero for i >= rows.
inline void pack_panel(const double* m, std::size_t ld, std::size_t r0, std::size_t rows,
                       std::size_t p0, std::size_t kc, std::size_t w, double* out) {
    for (std::size_t i = 0; i < w; ++i) {
        if (i < rows) {
            const double* src = m + (r0 + i) * ld + p0;
            for (std::size_t q = 0; q < kc; ++q) out[q * w + i] = src[q];
        } else {
            for (std::size_t q = 0; q < kc; ++q) out[q * w + i] = 0.0;
        }
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

// Worksharing loop: called by every thread of a parallel region (or outside one).
inline void row_norms_shared(const double* x, std::size_t n, std::size_t f, double* out) {
    CLUSTERFORCE_PRAGMA(omp for schedule(static))
    for (std::int64_t ii = 0; ii < static_cast<std::int64_t>(n); ++ii) {
        const auto i = static_cast<std::size_t>(ii);
        out[i] = squared_norm(x + i * f, f);
    }
}

// Runs the blocked product c = sum_q op(x_iq, y_jq). Each output tile is one task: its
// thread packs the matching slices of X and Y pass by pass (repacking costs ~1/kMc + 1/kNc
// of the arithmetic) and finishes the tile with finish(i0, rows, j0, cols) while it is hot.
// Tasks share nothing, so there are no barriers to stall on when cores are oversubscribed,
// and every output element sees the same operation order whatever the thread count.
// prepare() runs first on every thread of the region; it may hold worksharing loops whose
// closing barrier completes it before any tile starts.
template <class Prepare, class Finish>
void blocked_pairwise(const double* x, std::size_t n, const double* y, std::size_t k, std::size_t f,
                      double* out, void (*tile)(const TileArgs&), std::size_t mr, std::size_t nr,
                      Prepare prepare, Finish finish) {
    const std::size_t tile_rows = (n + kMc - 1) / kMc;
    const std::size_t tile_cols = (k + kNc - 1) / kNc;
    const auto tiles = static_cast<std::int64_t>(tile_rows * tile_cols);
    const bool parallel = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(f) > kParallelWork;
    (void)parallel;
    CLUSTERFORCE_PRAGMA(omp parallel if (parallel))
    {
        prepare();
        AlignedBuffer apack(kMc * kKc), bpack(kNc * kKc);
        CLUSTERFORCE_PRAGMA(omp for schedule(dynamic))
        for (std::int64_t t = 0; t < tiles; ++t) {
            const std::size_t i0 = static_cast<std::size_t>(t) / tile_cols * kMc;
            const std::size_t j0 = static_cast<std::size_t>(t) % tile_cols * kNc;
            const std::size_t mc = std::min(kMc, n - i0), nc = std::min(kNc, k - j0);
            for (std::size_t p0 = 0; p0 < f; p0 += kKc) {
                const std::size_t kc = std::min(kKc, f - p0);
                for (std::size_t r = 0; r < mc; r += mr) pack_panel(x, f, i0 + r, std::min(mr, mc - r), p0, kc, mr, apack.data + r * kc);
                for (std::size_t r = 0; r < nc; r += nr) pack_panel(y, f, j0 + r, std::min(nr, nc - r), p0, kc, nr, bpack.data + r * kc);
                tile(TileArgs{mc, nc, kc, apack.data, bpack.data, out + i0 * k + j0, k, p0 > 0});
            }
            finish(i0, mc, j0, nc);
        }
    }
}

// Few rows of X: every Y row is read once from memory, and all rows of X (in L1/L2) are
// compared with it while it is in L1.
inline void direct_pairwise(const double* x, std::size_t n, const double* y, std::size_t k,
                            std::size_t f, double* out, bool squared) {
    const bool parallel = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(f) > kParallelWork;
    (void)parallel;
    CLUSTERFORCE_PRAGMA(omp parallel for schedule(static) if (parallel))
    for (std::int64_t jj = 0; jj < static_cast<std::int64_t>(k); ++jj) {
        const auto j = static_cast<std::size_t>(jj);
        for (std::size_t i = 0; i < n; ++i) {
            const double d2 = squared_distance(x + i * f, y + j * f, f);
            out[i * k + j] = squared ? d2 : std::sqrt(d2);
        }
    }
}

inline void check_pointer(const void* p, bool needed, const char* name) {
    if (needed && p == nullptr) {
        throw std::invalid_argument(std::string("euclidean_distances: ") + name +
                                    " is null but has a nonzero size");
    }
}

}  // namespace detail

// out[i] = |x_i|^2 for the n x f row-major matrix x.
inline void squared_row_norms(const double* x, std::size_t n, std::size_t f, double* out) {
    detail::check_pointer(x, n > 0 && f > 0, "x");
    detail::check_pointer(out, n > 0, "out");
    const bool parallel = static_cast<double>(n) * static_cast<double>(f) > detail::kParallelWork;
    (void)parallel;
    CLUSTERFORCE_PRAGMA(omp parallel if (parallel))
    detail::row_norms_shared(x, n, f, out);
}

// out (n x k, row-major) = distances between the rows of x (n x f) and y (k x f).
// x_sqnorms / y_sqnorms: optional |x_i|^2 and |y_j|^2 (gram mode only; computed when null),
// so a caller that keeps y fixed can reuse its norms across calls. out must not alias x or y.
inline void euclidean_distances(const double* x, std::size_t n, const double* y, std::size_t k,
                                std::size_t f, double* out, const DistanceOptions& options = {},
                                const double* x_sqnorms = nullptr, const double* y_sqnorms = nullptr) {
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
        detail::direct_pairwise(x, n, y, k, f, out, squared);
        return;
    }
    if (options.mode == DistanceMode::exact) {
        detail::blocked_pairwise(x, n, y, k, f, out, kernels.sqdiff, kernels.mr, kernels.nr, [] {},
                                 [=](std::size_t i0, std::size_t rows, std::size_t j0, std::size_t cols) {
                                     if (squared) return;
                                     for (std::size_t i = i0; i < i0 + rows; ++i) kernels.sqrt_clamped(out + i * k + j0, cols);
                                 });
        return;
    }
    // Missing norms are computed inside the kernel's parallel region (no second fork/join).
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
                int refine = 0;
                CLUSTERFORCE_PRAGMA(omp simd reduction(| : refine))
                for (std::size_t j = 0; j < cols; ++j) {
                    const double scale = xn + yn[j];
                    const double d2 = scale - 2.0 * oi[j];
                    refine |= static_cast<int>(d2 < detail::kGramRefine * scale);
                    oi[j] = d2;
                }
                if (refine) {
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
