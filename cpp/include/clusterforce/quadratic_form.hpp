// Quadratic forms k^T V k of many rows with one symmetric matrix: the predictive variances of the
// gap kind (V = K_mm^-1 - (K_mm + A^T A)^-1, the rows kernel rows or their position derivatives)
// and of sann's last layer (V = Sigma_L, the rows d(energy or force) / d theta_L).
#pragma once

#include <algorithm>
#include <cstdint>

#include "parallel.hpp"

namespace clusterforce {

/// out[r] = k_r^T V k_r for the n_rows rows k_r (each m long, contiguous) and the symmetric
/// V (m x m, row-major), as sum_a k_a (V_aa k_a + 2 sum_{b>a} V_ab k_b). V (hundreds of MB for a
/// gap model with thousands of sparse points) is streamed once per block of rows instead of once
/// per row: a row of V stays in cache while the block's rows use it. The inner sums run in four
/// fixed lanes (so they vectorise) in an order that does not depend on the blocking or the threads.
inline void quadratic_forms(const double* V, int64_t m, const double* rows, int64_t n_rows, double* out) {
  constexpr int64_t kBlock = 16;
  // Arithmetic only (nothing throws): a plain OpenMP loop.
  CLUSTERFORCE_PRAGMA(omp parallel for schedule(dynamic))
  for (int64_t r0 = 0; r0 < n_rows; r0 += kBlock) {
    const int64_t nb = std::min(kBlock, n_rows - r0);
    const double* k = rows + r0 * m;
    double s[kBlock] = {};
    for (int64_t a = 0; a < m; ++a) {
      const double* va = V + a * m;
      for (int64_t r = 0; r < nb; ++r) {
        const double* kr = k + r * m;
        if (kr[a] == 0.0) continue;  // e.g. gap sparse points of species the row never sees
        double lane[4] = {0.0, 0.0, 0.0, 0.0};
        int64_t b = a + 1;
        for (; b + 4 <= m; b += 4)
          for (int l = 0; l < 4; ++l) lane[l] += va[b + l] * kr[b + l];
        for (; b < m; ++b) lane[0] += va[b] * kr[b];
        s[r] += kr[a] * (va[a] * kr[a] + 2.0 * ((lane[0] + lane[1]) + (lane[2] + lane[3])));
      }
    }
    for (int64_t r = 0; r < nb; ++r) out[r0 + r] = s[r];
  }
}

}  // namespace clusterforce
