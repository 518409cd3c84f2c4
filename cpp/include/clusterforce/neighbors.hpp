// Neighbour lists with a cell list, O(N), for finite clusters and periodic cells.
//
// For every ordered pair (i, j, S) with |D| < cutoff, where D = r_j + S . cell - r_i and S an
// integer image shift (zero along non-periodic axes), the list holds i, j, D, |D| and S;
// i == j only for a periodic image (S != 0). Any triclinic cell, any pbc combination, and
// cutoffs longer than the cell (several images of one atom) are handled. Pairs come sorted
// by i, then j, then S (lexicographic), independent of the thread count.
//
// Units: positions, cell, cutoff, D and |D| in Angstrom (any length unit, consistently).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu.hpp"
#include "parallel.hpp"

namespace clusterforce {

struct NeighborList {
  std::vector<std::int64_t> i, j;
  std::vector<double> D;        // 3 per pair: r_j + S . cell - r_i
  std::vector<double> d;        // |D|
  std::vector<std::int64_t> S;  // 3 per pair: image shift in units of the cell vectors
  std::size_t size() const { return i.size(); }
};

namespace detail::nl {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;  // rows are vectors

inline Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
inline double dot(const Vec3& a, const Vec3& b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
inline double norm(const Vec3& a) {
  return std::sqrt(dot(a, a));
}
inline Vec3 scaled(const Vec3& a, double s) {
  return {a[0] * s, a[1] * s, a[2] * s};
}

// Periodic rows this much closer to linear dependence than their lengths suggest are singular.
constexpr double kSingularTolerance = 1e-10;

inline std::string row_text(const Vec3& v) {
  return "[" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + "]";
}

// The periodic cell rows, completed by unit vectors orthogonal to them along non-periodic
// axes: those only lay out the bins, so any completion gives the same pairs.
inline Mat3 binning_basis(const double* cell, const std::array<bool, 3>& pbc) {
  std::vector<int> periodic;
  for (int a = 0; a < 3; ++a)
    if (pbc[a]) periodic.push_back(a);
  Mat3 basis{};
  for (int a : periodic) basis[a] = {cell[3 * a], cell[3 * a + 1], cell[3 * a + 2]};
  const auto singular = [&](double measure) {
    std::string rows;
    for (int a : periodic) rows += " cell[" + std::to_string(a) + "]=" + row_text(basis[a]);
    return std::invalid_argument("neighbor_list: cell is singular along its periodic axes (relative volume " +
                                 std::to_string(measure) + "):" + rows);
  };
  for (int a : periodic)
    if (!(norm(basis[a]) > 0.0)) throw singular(0.0);
  if (periodic.size() == 3) {
    const double vol = std::abs(dot(basis[0], cross(basis[1], basis[2])));
    const double rel = vol / (norm(basis[0]) * norm(basis[1]) * norm(basis[2]));
    if (!(rel > kSingularTolerance)) throw singular(rel);
  } else if (periodic.size() == 2) {
    const Vec3 c = cross(basis[periodic[0]], basis[periodic[1]]);
    const double rel = norm(c) / (norm(basis[periodic[0]]) * norm(basis[periodic[1]]));
    if (!(rel > kSingularTolerance)) throw singular(rel);
    basis[3 - periodic[0] - periodic[1]] = scaled(c, 1.0 / norm(c));
  } else if (periodic.size() == 1) {
    const Vec3& a = basis[periodic[0]];
    // The Cartesian axis least aligned with a gives a well-conditioned perpendicular.
    int axis = 0;
    for (int q = 1; q < 3; ++q)
      if (std::abs(a[q]) < std::abs(a[axis])) axis = q;
    Vec3 e{};
    e[axis] = 1.0;
    Vec3 u = cross(a, e);
    u = scaled(u, 1.0 / norm(u));
    Vec3 v = cross(a, u);
    v = scaled(v, 1.0 / norm(v));
    basis[(periodic[0] + 1) % 3] = u;
    basis[(periodic[0] + 2) % 3] = v;
  } else {
    basis = {Vec3{1.0, 0.0, 0.0}, Vec3{0.0, 1.0, 0.0}, Vec3{0.0, 0.0, 1.0}};
  }
  return basis;
}

// Columns g_a of the inverse: fractional coordinate s_a = r . g_a.
inline Mat3 fractional_gradients(const Mat3& b) {
  const Vec3 c12 = cross(b[1], b[2]), c20 = cross(b[2], b[0]), c01 = cross(b[0], b[1]);
  const double det = dot(b[0], c12);
  return {scaled(c12, 1.0 / det), scaled(c20, 1.0 / det), scaled(c01, 1.0 / det)};
}

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

struct Pair {
  std::int64_t i, j;
  std::array<std::int64_t, 3> S;
  Vec3 D;
  double d;
};

struct Grid {
  std::array<std::int64_t, 3> bins{1, 1, 1};    // bins per axis
  std::array<std::int64_t, 3> search{0, 0, 0};  // bins to scan on each side
  std::vector<std::int64_t> start;              // atoms of bin b: order[start[b] .. start[b+1])
  std::vector<std::int64_t> order;
  std::vector<std::array<std::int64_t, 3>> bin_of;  // per atom
  std::vector<std::array<std::int64_t, 3>> wrap;    // per atom: r_wrapped = r - wrap . cell
  std::vector<double> wrapped;                      // 3 per entry of order: r_wrapped, bin by bin
};

// Caps the bin count near the atom count, so a sparse system in a big box costs O(N) memory.
inline void limit_bins(std::array<std::int64_t, 3>& bins, std::size_t n) {
  const double limit = std::max<double>(8.0, 2.0 * static_cast<double>(n));
  while (static_cast<double>(bins[0]) * static_cast<double>(bins[1]) * static_cast<double>(bins[2]) > limit) {
    auto largest = std::max_element(bins.begin(), bins.end());
    *largest = (*largest + 1) / 2;
  }
}

inline Vec3 lattice_shift(const std::array<std::int64_t, 3>& S, const double* cell) {
  Vec3 shift{0.0, 0.0, 0.0};
  for (int a = 0; a < 3; ++a) {
    if (S[a] == 0) continue;  // rows of non-periodic axes may be anything
    for (int c = 0; c < 3; ++c) shift[c] += static_cast<double>(S[a]) * cell[3 * a + c];
  }
  return shift;
}

inline Grid build_grid(const double* r, const double* cell, std::size_t n, double cutoff, const Mat3& g,
                       const std::array<bool, 3>& pbc) {
  Grid grid;
  std::vector<Vec3> s(n);
  Vec3 lo{0.0, 0.0, 0.0}, hi{0.0, 0.0, 0.0};
  grid.wrap.assign(n, {0, 0, 0});
  for (std::size_t k = 0; k < n; ++k) {
    const Vec3 rk{r[3 * k], r[3 * k + 1], r[3 * k + 2]};
    for (int a = 0; a < 3; ++a) {
      double sa = dot(rk, g[a]);
      if (pbc[a]) {
        const double w = std::floor(sa);
        grid.wrap[k][a] = static_cast<std::int64_t>(w);
        sa -= w;
      }
      s[k][a] = sa;
    }
    for (int a = 0; a < 3; ++a) {
      lo[a] = k == 0 ? s[k][a] : std::min(lo[a], s[k][a]);
      hi[a] = k == 0 ? s[k][a] : std::max(hi[a], s[k][a]);
    }
  }
  // Thickness of the region to bin along each axis, measured perpendicular to the others.
  Vec3 thickness{};
  for (int a = 0; a < 3; ++a) {
    const double plane_spacing = 1.0 / norm(g[a]);
    thickness[a] = pbc[a] ? plane_spacing : (hi[a] - lo[a]) * plane_spacing;
    grid.bins[a] = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(thickness[a] / cutoff)));
  }
  limit_bins(grid.bins, n);
  for (int a = 0; a < 3; ++a) {
    if (thickness[a] > 0.0) {
      const double reach = cutoff * static_cast<double>(grid.bins[a]) / thickness[a];
      grid.search[a] = static_cast<std::int64_t>(std::ceil(reach * (1.0 + 1e-10)));
    }
    if (!pbc[a]) grid.search[a] = std::min(grid.search[a], grid.bins[a] - 1);
  }
  grid.bin_of.resize(n);
  std::vector<std::int64_t> flat(n);
  const std::int64_t total = grid.bins[0] * grid.bins[1] * grid.bins[2];
  grid.start.assign(static_cast<std::size_t>(total) + 1, 0);
  for (std::size_t k = 0; k < n; ++k) {
    for (int a = 0; a < 3; ++a) {
      const double u = pbc[a] ? s[k][a] : (hi[a] > lo[a] ? (s[k][a] - lo[a]) / (hi[a] - lo[a]) : 0.0);
      const auto b = static_cast<std::int64_t>(std::floor(u * static_cast<double>(grid.bins[a])));
      grid.bin_of[k][a] = std::clamp<std::int64_t>(b, 0, grid.bins[a] - 1);
    }
    flat[k] = (grid.bin_of[k][0] * grid.bins[1] + grid.bin_of[k][1]) * grid.bins[2] + grid.bin_of[k][2];
    ++grid.start[static_cast<std::size_t>(flat[k]) + 1];
  }
  for (std::int64_t b = 0; b < total; ++b) grid.start[b + 1] += grid.start[b];
  grid.order.resize(n);
  std::vector<std::int64_t> fill(grid.start.begin(), grid.start.end() - 1);
  for (std::size_t k = 0; k < n; ++k) grid.order[fill[flat[k]]++] = static_cast<std::int64_t>(k);
  grid.wrapped.resize(3 * n);
  for (std::size_t q = 0; q < n; ++q) {
    const auto k = static_cast<std::size_t>(grid.order[q]);
    const Vec3 back = lattice_shift(grid.wrap[k], cell);
    for (int c = 0; c < 3; ++c) grid.wrapped[3 * q + c] = r[3 * k + c] - back[c];
  }
  return grid;
}

// All pairs of atom i, sorted by (j, S), appended to out.
inline void pairs_of(std::size_t i, const double* r, const double* cell, double cutoff, const Grid& grid,
                     const std::array<bool, 3>& pbc, std::vector<Pair>& out) {
  const std::size_t first = out.size();
  const auto& bi = grid.bin_of[i];
  std::array<std::int64_t, 3> lo{}, hi{};
  for (int a = 0; a < 3; ++a) {
    lo[a] = bi[a] - grid.search[a];
    hi[a] = bi[a] + grid.search[a];
    if (!pbc[a]) {
      lo[a] = std::max<std::int64_t>(lo[a], 0);
      hi[a] = std::min<std::int64_t>(hi[a], grid.bins[a] - 1);
    }
  }
  const Vec3 ri{r[3 * i], r[3 * i + 1], r[3 * i + 2]};
  const Vec3 wi = [&] {
    const Vec3 back = lattice_shift(grid.wrap[i], cell);
    return Vec3{ri[0] - back[0], ri[1] - back[1], ri[2] - back[2]};
  }();
  // Candidates are screened in wrapped coordinates with a little slack; the kept pairs are
  // then recomputed from the caller's positions, so D matches r_j + S . cell - r_i exactly.
  const double screen = cutoff * cutoff * (1.0 + 1e-8) + 1e-12;
  std::array<std::int64_t, 3> image{}, bin{};
  for (std::int64_t x = lo[0]; x <= hi[0]; ++x) {
    image[0] = floor_div(x, grid.bins[0]);
    bin[0] = x - image[0] * grid.bins[0];
    for (std::int64_t y = lo[1]; y <= hi[1]; ++y) {
      image[1] = floor_div(y, grid.bins[1]);
      bin[1] = y - image[1] * grid.bins[1];
      for (std::int64_t z = lo[2]; z <= hi[2]; ++z) {
        image[2] = floor_div(z, grid.bins[2]);
        bin[2] = z - image[2] * grid.bins[2];
        const std::int64_t b = (bin[0] * grid.bins[1] + bin[1]) * grid.bins[2] + bin[2];
        const Vec3 offset = lattice_shift(image, cell);
        const Vec3 origin{wi[0] - offset[0], wi[1] - offset[1], wi[2] - offset[2]};
        for (std::int64_t q = grid.start[b]; q < grid.start[b + 1]; ++q) {
          const double* wj = &grid.wrapped[3 * static_cast<std::size_t>(q)];
          const double dx = wj[0] - origin[0], dy = wj[1] - origin[1], dz = wj[2] - origin[2];
          if (dx * dx + dy * dy + dz * dz >= screen) continue;
          const auto j = static_cast<std::size_t>(grid.order[q]);
          Pair p;
          p.i = static_cast<std::int64_t>(i);
          p.j = static_cast<std::int64_t>(j);
          for (int a = 0; a < 3; ++a) p.S[a] = image[a] - grid.wrap[j][a] + grid.wrap[i][a];
          if (j == i && p.S[0] == 0 && p.S[1] == 0 && p.S[2] == 0) continue;
          const Vec3 shift = lattice_shift(p.S, cell);
          for (int c = 0; c < 3; ++c) p.D[c] = (r[3 * j + c] - ri[c]) + shift[c];
          p.d = norm(p.D);
          if (p.d < cutoff) out.push_back(p);
        }
      }
    }
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const Pair& a, const Pair& b) { return a.j != b.j ? a.j < b.j : a.S < b.S; });
}

}  // namespace detail::nl

// positions: n x 3 row-major; cell: 3 x 3 with the lattice vectors as rows (may be null when
// no axis is periodic; rows of non-periodic axes are ignored). Throws std::invalid_argument
// for a non-positive or non-finite cutoff, a non-finite position, or a singular cell.
inline NeighborList neighbor_list(const double* positions, std::size_t n, double cutoff, const double* cell,
                                  const std::array<bool, 3>& pbc) {
  namespace nl = detail::nl;
  if (!std::isfinite(cutoff) || !(cutoff > 0.0)) {
    throw std::invalid_argument("neighbor_list: cutoff must be a positive finite length, got " +
                                std::to_string(cutoff));
  }
  const bool periodic = pbc[0] || pbc[1] || pbc[2];
  if (periodic && cell == nullptr) {
    throw std::invalid_argument("neighbor_list: a cell is required when any axis is periodic");
  }
  if (n > 0 && positions == nullptr) throw std::invalid_argument("neighbor_list: positions is null");
  for (std::size_t k = 0; k < 3 * n; ++k) {
    if (!std::isfinite(positions[k])) {
      throw std::invalid_argument("neighbor_list: position of atom " + std::to_string(k / 3) + " is not finite (" +
                                  std::to_string(positions[k]) + ")");
    }
  }
  if (periodic) {
    for (int k = 0; k < 9; ++k) {
      if (pbc[k / 3] && !std::isfinite(cell[k])) {
        throw std::invalid_argument("neighbor_list: cell[" + std::to_string(k / 3) + "] is not finite");
      }
    }
  }
  NeighborList result;
  if (n == 0) return result;
  const nl::Mat3 basis = nl::binning_basis(cell, pbc);
  const nl::Grid grid = nl::build_grid(positions, cell, n, cutoff, nl::fractional_gradients(basis), pbc);
  // Each thread takes a contiguous block of i, so concatenating blocks in thread order keeps
  // the list sorted by i.
  std::vector<std::vector<nl::Pair>> blocks;
  CLUSTERFORCE_PRAGMA(omp parallel) {
    const auto [me, threads] = team_slot();
    CLUSTERFORCE_PRAGMA(omp single)
    blocks.resize(threads);
    const std::size_t chunk = (n + threads - 1) / threads;
    for (std::size_t i = me * chunk; i < std::min(n, (me + 1) * chunk); ++i) {
      nl::pairs_of(i, positions, cell, cutoff, grid, pbc, blocks[me]);
    }
  }
  std::size_t total = 0;
  for (const auto& b : blocks) total += b.size();
  result.i.reserve(total);
  result.j.reserve(total);
  result.d.reserve(total);
  result.D.reserve(3 * total);
  result.S.reserve(3 * total);
  for (const auto& block : blocks) {
    for (const auto& p : block) {
      result.i.push_back(p.i);
      result.j.push_back(p.j);
      result.d.push_back(p.d);
      result.D.insert(result.D.end(), p.D.begin(), p.D.end());
      result.S.insert(result.S.end(), p.S.begin(), p.S.end());
    }
  }
  return result;
}

}  // namespace clusterforce
