// The one structure driver: runs a LocalModel (local_model.hpp) over the centres of a structure,
// for the Python bindings (centres from the shared neighbour list) and for the LAMMPS pair style
// (centres from its full neighbour list, ghosts as targets). It checks the input, evaluates the
// centres in parallel (exceptions captured per thread and rethrown after the loop, parallel.hpp),
// adds the repulsive wall of energy kinds, scatters the per-centre results serially in centre
// order (so sums do not depend on the thread count) and flags extrapolating centres.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "baseline.hpp"
#include "geometry.hpp"
#include "local_model.hpp"
#include "parallel.hpp"

namespace clusterforce {

/// Atoms closer than this (Angstrom) are "at the same position": no model is defined there.
constexpr double kCoincidentDistance = 1e-4;

/// Structures of fewer centres are evaluated on the calling thread: below it the OpenMP team
/// costs more than it saves (benchmarks/parallel_predict.py).
constexpr int kSerialCentres = 8;

/// Maps a target index (atom index, or LAMMPS local/ghost index) to the ID messages name it by.
using AtomId = std::function<int64_t(int64_t)>;

/// The centres to evaluate: their neighbours (index = target atoms), species, and the target
/// index of each centre (empty: centre c is target c, as for a whole structure).
struct Centres {
  CentreNeighbors nl;
  std::vector<int> species;
  std::vector<int64_t> atom;
  int size() const { return static_cast<int>(species.size()); }
  int64_t atom_of(int c) const { return atom.empty() ? c : atom[static_cast<std::size_t>(c)]; }
};

/// What the driver returns. forces: 3 per target (eV/Angstrom); energies (eV) and virial (eV,
/// 3 x 3 row-major, -sum_pairs rel (x) d energy / d rel) for energy kinds; uncertainty
/// (eV/Angstrom) and diagnostics (per centre x model.diagnostic_names()) for force-only kinds;
/// extrapolating per centre; centre_virial (6 per centre: xx, yy, zz, xy, xz, yz, eV) is each
/// centre's share of the virial (its pairs), as LAMMPS tallies per-atom virials.
struct CentreResults {
  std::vector<double> energies, forces, virial, centre_virial, uncertainty, diagnostics;
  std::vector<unsigned char> extrapolating;
};

/// Two neighbours closer than kCoincidentDistance: std::invalid_argument naming both atoms.
inline void check_coincident(const Centres& c, const AtomId& id) {
  const double limit2 = kCoincidentDistance * kCoincidentDistance;
  for (int i = 0; i < c.size(); ++i) {
    for (int64_t p = c.nl.offsets[i]; p < c.nl.offsets[i + 1]; ++p) {
      const double* d = c.nl.rel.data() + 3 * p;
      const double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
      if (!(r2 < limit2)) continue;
      int64_t a = id(c.atom_of(i)), b = id(c.nl.index[p]);
      if (b < a) std::swap(a, b);
      char distance[32];
      std::snprintf(distance, sizeof distance, "%.5f", std::sqrt(r2));
      throw std::invalid_argument("atoms " + std::to_string(a) + " and " + std::to_string(b) +
                                  " are at the same position (" + distance +
                                  " Angstrom apart); no model is defined there: remove one or move them apart");
    }
  }
}

/// Species of every centre and neighbour inside [0, n_species).
inline void check_species(const Centres& c, int n_species, const AtomId& id) {
  const auto bad = [&](int64_t atom, int s) {
    return std::invalid_argument("atom " + std::to_string(id(atom)) + ": species index " + std::to_string(s) +
                                 " outside [0, " + std::to_string(n_species) + ")");
  };
  for (int i = 0; i < c.size(); ++i) {
    if (c.species[i] < 0 || c.species[i] >= n_species) throw bad(c.atom_of(i), c.species[i]);
    for (int64_t p = c.nl.offsets[i]; p < c.nl.offsets[i + 1]; ++p)
      if (c.nl.species[p] < 0 || c.nl.species[p] >= n_species) throw bad(c.nl.index[p], c.nl.species[p]);
  }
}

/// Centre i is extrapolating when a neighbour is closer than the shortest training distance of
/// their element pair (with full neighbour lists both atoms of such a pair are flagged).
inline std::vector<unsigned char> extrapolating_centres(const Centres& c, const PairLimits& limits) {
  std::vector<unsigned char> flags(static_cast<std::size_t>(c.size()), 0);
  if (!limits.active()) return flags;
  for (int i = 0; i < c.size(); ++i) {
    for (int64_t p = c.nl.offsets[i]; p < c.nl.offsets[i + 1] && !flags[i]; ++p) {
      const double* d = c.nl.rel.data() + 3 * p;
      const double limit = limits.limit(c.species[i], c.nl.species[p]);
      flags[i] = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < limit * limit;
    }
  }
  return flags;
}

/// Positions finite and species in range for a whole structure (the centres' checks come after).
inline void check_geometry(const Geometry& g, int n_species) {
  if (g.n < 0) throw std::invalid_argument("number of atoms must be >= 0, got " + std::to_string(g.n));
  for (int i = 0; i < g.n; ++i) {
    const double* r = g.positions + 3 * static_cast<std::size_t>(i);
    if (!std::isfinite(r[0]) || !std::isfinite(r[1]) || !std::isfinite(r[2]))
      throw std::invalid_argument("atom " + std::to_string(i) + " has a non-finite position (" + std::to_string(r[0]) +
                                  ", " + std::to_string(r[1]) + ", " + std::to_string(r[2]) + ")");
    if (g.species[i] < 0 || g.species[i] >= n_species)
      throw std::invalid_argument("atom " + std::to_string(i) + ": species index " + std::to_string(g.species[i]) +
                                  " outside [0, " + std::to_string(n_species) + ")");
  }
}

/// Every atom of a structure as a centre, with its neighbours within cutoff (Angstrom).
inline Centres structure_centres(const Geometry& g, double cutoff) {
  Centres c;
  c.nl = centre_neighbors(g, std::max(cutoff, 2.0 * kCoincidentDistance));
  c.species.assign(g.species, g.species + g.n);
  return c;
}

namespace detail {

// An exception of a centre's evaluation, with the atom named in front.
[[noreturn]] inline void rethrow_for_atom(int64_t atom) {
  const std::string where = "atom " + std::to_string(atom) + ": ";
  try {
    throw;
  } catch (const std::out_of_range& e) {
    throw std::out_of_range(where + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + e.what());
  }
}

}  // namespace detail

/// Run `model` over the centres; `wall` (energy kinds only) is added to every centre's energy.
/// n_targets: atoms the neighbour indices point to (forces has 3 per target).
inline CentreResults evaluate_centres(const LocalModel& model, const PairWall& wall, const PairLimits& limits,
                                      const Centres& c, int64_t n_targets, const AtomId& id) {
  check_species(c, model.n_species(), id);
  check_coincident(c, id);
  const int nc = c.size();
  const CentreNeighbors& nl = c.nl;
  CentreResults out;
  out.forces.assign(3 * static_cast<std::size_t>(n_targets), 0.0);
  const auto scratch = [&] { return model.make_scratch(); };
  if (model.has_energy()) {
    out.energies.assign(nc, 0.0);
    out.virial.assign(9, 0.0);
    out.centre_virial.assign(6 * static_cast<std::size_t>(nc), 0.0);
    std::vector<double> grad(nl.rel.size(), 0.0);  // d energy_i / d rel, per pair
    parallel_for_with(
        nc, scratch,
        [&](std::unique_ptr<LocalScratch>& s, int64_t i) {
          const int64_t o = nl.offsets[i];
          const int nn = c.nl.count(static_cast<int>(i));
          const double* rel = nl.rel.data() + 3 * o;
          const int* sp = nl.species.data() + o;
          double* g = grad.data() + 3 * o;
          try {
            double e = model.centre_energy(c.species[i], rel, sp, nn, g, s.get());
            if (wall.active()) e += wall.centre_energy(c.species[i], rel, sp, nn, g);
            out.energies[i] = e;
          } catch (const std::logic_error&) {
            detail::rethrow_for_atom(id(c.atom_of(static_cast<int>(i))));
          }
        },
        Schedule::dynamic_chunks().serial_below(kSerialCentres));
    for (int i = 0; i < nc; ++i) {
      const int64_t ai = c.atom_of(i);
      for (int64_t p = nl.offsets[i]; p < nl.offsets[i + 1]; ++p) {
        const int64_t a = nl.index[p];
        const double* g = grad.data() + 3 * p;
        const double* rel = nl.rel.data() + 3 * p;
        for (int x = 0; x < 3; ++x) {
          out.forces[3 * a + x] -= g[x];
          out.forces[3 * ai + x] += g[x];
          for (int y = 0; y < 3; ++y) out.virial[3 * x + y] -= rel[x] * g[y];
        }
        double* v = out.centre_virial.data() + 6 * static_cast<std::size_t>(i);
        const double pair[6] = {-rel[0] * g[0], -rel[1] * g[1], -rel[2] * g[2],
                                -rel[0] * g[1], -rel[0] * g[2], -rel[1] * g[2]};
        for (int k = 0; k < 6; ++k) v[k] += pair[k];
      }
    }
  } else {
    const std::size_t n_diag = model.diagnostic_names().size();
    std::vector<CentreForce> force(static_cast<std::size_t>(nc));
    out.diagnostics.assign(nc * n_diag, 0.0);
    const auto one = [&](std::unique_ptr<LocalScratch>& s, int64_t i) {
      const int64_t o = nl.offsets[i];
      try {
        force[i] = model.centre_force(c.species[i], nl.rel.data() + 3 * o, nl.species.data() + o,
                                      c.nl.count(static_cast<int>(i)), s.get(), out.diagnostics.data() + i * n_diag);
      } catch (const std::logic_error&) {
        detail::rethrow_for_atom(id(c.atom_of(static_cast<int>(i))));
      }
    };
    if (model.has_centre_block() && nc > 0) {
      try {
        model.centre_forces(c.species.data(), nl.offsets.data(), nl.rel.data(), nl.species.data(), nc, force.data(),
                            out.diagnostics.data());
      } catch (const std::logic_error&) {
        // The block cannot say which centre failed; the per-centre path fails on the same
        // centre and names its atom.
        std::unique_ptr<LocalScratch> s = scratch();
        for (int64_t i = 0; i < nc; ++i) one(s, i);
        throw;
      }
    } else {
      parallel_for_with(nc, scratch, one, Schedule::dynamic_chunks().serial_below(kSerialCentres));
    }
    out.uncertainty.assign(nc, 0.0);
    for (int i = 0; i < nc; ++i) out.uncertainty[i] = force[i].uncertainty;
    for (int i = 0; i < nc; ++i)
      for (int x = 0; x < 3; ++x) out.forces[3 * c.atom_of(i) + x] += force[i].force[x];
  }
  out.extrapolating = extrapolating_centres(c, limits);
  return out;
}

}  // namespace clusterforce
