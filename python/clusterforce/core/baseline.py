"""Repulsive pair baseline: a wall below the shortest training distance of each element pair.

phi(r) = A [exp(x) - 1 - x], x = (r_s - r) / rho for r < r_s, 0 beyond (see
``cpp/include/clusterforce/baseline.hpp``, where it is evaluated for every kind and front end).
With r_s a margin (``WALL_MARGIN``) below the shortest distance of the pair in the training
data, the wall is exactly zero on every training frame: the machine-learned part is fitted to
the reference as it is (the residual after the baseline is the reference itself), and the wall
only acts well outside the data, pushing atoms apart instead of letting an extrapolating model
pull them together.

Model files store r_s as the array ``baseline/r_s`` (n_species x n_species, Angstrom, species in
the model's element order) and ``{"A": eV, "rho": Angstrom}`` as ``metadata["baseline"]``.

Every model file (every kind, wall or not) also stores the shortest distance of each element pair
in its training data, ``training/r_min`` (:func:`training_r_min`, NaN for a pair the data never
brought within ``SEARCH_RADIUS``): the C++ structure driver flags an atom in a shorter pair as
``extrapolating``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from clusterforce import _kernels
from clusterforce.descriptors.neighbors import shortest_pair_table, shortest_pairs_of

#: Wall height scale (eV) and decay length (Angstrom): 0.2 Angstrom inside r_s the pair energy is
#: 0.72 eV and the force 8.6 eV/Angstrom; 0.5 Angstrom inside, 8.7 eV and 56 eV/Angstrom.
A = 1.0
RHO = 0.2
#: The wall starts this fraction below the shortest training distance. Held-out thermal data
#: come a little closer than the training data (ring6 MD against a model of rings 4 and 5: with
#: the wall at the shortest distance itself, the held-out Au_unit norm RMSE is 0.497 eV/A, 0.239
#: without a wall; 0.290 / 0.243 / 0.239 with margins of 3 / 5 / 8 %), while the collapses the wall
#: is for (H-H at 0.74 A against 1.35 A in the data, S-C bonds broken) are far beyond 8 %.
WALL_MARGIN = 0.08
#: For element pairs the training data never brought within the search radius: this fraction of
#: the sum of covalent radii.
UNSEEN_FRACTION = 0.75
#: Pairs farther apart than this (Angstrom) are not searched for the shortest distance.
SEARCH_RADIUS = 4.0


def fit_pair_wall(frames: Iterable[Atoms], elements: Sequence[str]) -> np.ndarray:
    """r_s (n_species x n_species, Angstrom): ``1 - WALL_MARGIN`` times the shortest distance of
    each element pair in ``frames``."""
    r_s = _below_shortest(frames, elements)
    z = [atomic_numbers[e] for e in elements]
    unseen = UNSEEN_FRACTION * (covalent_radii[z][:, None] + covalent_radii[z][None, :])
    return np.where(np.isnan(r_s), unseen, r_s)


def lower_pair_wall(r_s: np.ndarray, frames: Iterable[Atoms], elements: Sequence[str]) -> np.ndarray:
    """``r_s`` of a model that learns ``frames`` too: each pair's wall moved below their shortest
    distance of the pair where they come closer, so it stays zero on every training frame."""
    return np.fmin(np.asarray(r_s, dtype=float), _below_shortest(frames, elements))  # fmin: NaN (pair not in frames) keeps r_s


def _below_shortest(frames: Iterable[Atoms], elements: Sequence[str]) -> np.ndarray:
    """``1 - WALL_MARGIN`` times the shortest distance of each element pair in ``frames``
    (n_species x n_species, Angstrom); NaN for a pair the frames never bring within SEARCH_RADIUS."""
    return (1 - WALL_MARGIN) * training_r_min(frames, elements)


#: Model-file array of the shortest training distances (n_species x n_species, Angstrom).
R_MIN_FIELD = "training/r_min"


def training_r_min(frames: Iterable[Atoms], elements: Sequence[str], known: np.ndarray | None = None) -> np.ndarray:
    """Shortest distance (Angstrom) of each element pair in ``frames`` (n_species x n_species, in the
    order of ``elements``), NaN for a pair never within ``SEARCH_RADIUS``; with ``known`` (the table
    of frames seen before) the smaller of the two per pair (``partial_fit``)."""
    table = shortest_pair_table(shortest_pairs_of(frames, SEARCH_RADIUS), elements)
    return table if known is None else np.fmin(np.asarray(known, dtype=float), table)


def file_entries(r_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and metadata entries that store the baseline in a model file."""
    return {"baseline/r_s": np.asarray(r_s, dtype=float)}, {"baseline": {"kind": "exponential-wall", "A": A, "rho": RHO}}


def energy_forces(r_s: np.ndarray, atoms: Atoms, species: np.ndarray, *, a: float = A, rho: float = RHO) -> tuple[float, np.ndarray]:
    """Baseline energy (eV) and forces (eV/Angstrom) of ``atoms`` (species = indices into the model's elements)."""
    periodic = bool(np.any(atoms.pbc))
    return _kernels.baseline_energy_forces(
        r_s,
        a,
        rho,
        atoms.positions,
        np.asarray(species, dtype=np.int32),
        np.asarray(atoms.cell.array) if periodic else None,
        tuple(bool(p) for p in atoms.pbc) if periodic else None,
    )
