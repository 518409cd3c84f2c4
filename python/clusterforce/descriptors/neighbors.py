"""Neighbour lists for clusters and periodic cells (compiled cell list, O(N)).

Thin validated wrappers around ``cpp/include/clusterforce/neighbors.hpp``; the same C++ code
serves the models' prediction paths, so ASE and LAMMPS see the same pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clusterforce import _kernels

if TYPE_CHECKING:
    from ase import Atoms

__all__ = [
    "NeighborList",
    "element_pairs",
    "neighbor_list",
    "neighbor_list_atoms",
    "pair_key",
    "shortest_pair_distances",
    "shortest_pair_table",
    "shortest_pairs_of",
]


@dataclass(frozen=True)
class NeighborList:
    """Ordered neighbour pairs ``(i, j, S)`` with ``|D| < cutoff``, sorted by i, j, then S.

    Attributes
    ----------
    i, j : ndarray of int64, shape (n_pairs,)
        Central and neighbour atom indices; ``i == j`` only for a periodic image.
    D : ndarray of float64, shape (n_pairs, 3)
        ``positions[j] + S @ cell - positions[i]`` in Angstrom.
    d : ndarray of float64, shape (n_pairs,)
        ``|D|`` in Angstrom.
    S : ndarray of int64, shape (n_pairs, 3)
        Image shift in units of the cell vectors (zero along non-periodic axes).
    """

    i: NDArray[np.int64]
    j: NDArray[np.int64]
    D: NDArray[np.float64]
    d: NDArray[np.float64]
    S: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.i.shape[0])


def _as_pbc(pbc: bool | ArrayLike) -> tuple[bool, bool, bool]:
    flags = np.asarray(pbc)
    if flags.ndim == 0:
        return (bool(flags),) * 3
    if flags.shape != (3,):
        raise ValueError(f"pbc must be a bool or three bools, got shape {flags.shape}")
    return tuple(bool(f) for f in flags)  # type: ignore[return-value]


def neighbor_list(
    positions: ArrayLike,
    cutoff: float,
    *,
    cell: ArrayLike | None = None,
    pbc: bool | ArrayLike = False,
) -> NeighborList:
    """All ordered pairs of atoms closer than ``cutoff``, including periodic images.

    Parameters
    ----------
    positions : array_like, shape (n_atoms, 3)
        Cartesian positions in Angstrom.
    cutoff : float
        Pair cutoff in Angstrom (> 0); pairs with ``d < cutoff`` are kept.
    cell : array_like, shape (3, 3), optional
        Lattice vectors as rows (ASE convention), in Angstrom. Required if any axis is
        periodic; rows of non-periodic axes are ignored (they may be zero).
    pbc : bool or sequence of 3 bools, default False
        Periodicity per cell axis. A cutoff longer than the cell gives several images of the
        same neighbour.

    Returns
    -------
    NeighborList
        Arrays ``i, j, D, d, S``, sorted by ``i``, then ``j``, then ``S``.

    Raises
    ------
    ValueError
        For a wrong shape, a non-finite position, a non-positive cutoff, a missing cell with
        periodic axes, or a cell that is singular along its periodic axes.
    """
    xyz = np.ascontiguousarray(positions, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"positions must have shape (n_atoms, 3), got {xyz.shape}")
    flags = _as_pbc(pbc)
    lattice = None if cell is None else np.ascontiguousarray(cell, dtype=np.float64)
    if lattice is None and any(flags):
        raise ValueError(f"pbc={flags} needs a cell: pass cell=(3, 3) lattice vectors in Angstrom")
    i, j, D, d, S = _kernels.neighbor_list(xyz, float(cutoff), lattice, flags)
    return NeighborList(i=i, j=j, D=D, d=d, S=S)


def neighbor_list_atoms(atoms: Atoms, cutoff: float) -> NeighborList:
    """:func:`neighbor_list` for an ``ase.Atoms`` (its positions, cell and pbc).

    Parameters
    ----------
    atoms : ase.Atoms
    cutoff : float
        Pair cutoff in Angstrom.
    """
    return neighbor_list(atoms.positions, cutoff, cell=atoms.cell.array, pbc=atoms.pbc)


def pair_key(a: int, b: int) -> str:
    """Element-pair label ``"Au-S"`` (lighter element last, so each pair has one label)."""
    from ase.data import chemical_symbols

    first, second = sorted((int(a), int(b)), reverse=True)
    return f"{chemical_symbols[first]}-{chemical_symbols[second]}"


def element_pairs(atoms: Atoms, nl: NeighborList) -> tuple[list[str], np.ndarray]:
    """The distinct element-pair labels (:func:`pair_key`) of the pairs in ``nl``, and for
    each pair the index of its label in that list."""
    zi, zj = atoms.numbers[nl.i], atoms.numbers[nl.j]
    codes, inverse = np.unique(np.maximum(zi, zj) * 256 + np.minimum(zi, zj), return_inverse=True)
    return [pair_key(c // 256, c % 256) for c in codes], inverse


def shortest_pair_distances(atoms: Atoms, cutoff: float) -> dict[str, float]:
    """Shortest distance (Angstrom) of every element pair closer than ``cutoff`` in ``atoms``."""
    nl = neighbor_list_atoms(atoms, cutoff)
    keys, inverse = element_pairs(atoms, nl)
    shortest = np.full(len(keys), np.inf)
    np.minimum.at(shortest, inverse, nl.d)
    return {key: float(d) for key, d in zip(keys, shortest)}


def shortest_pairs_of(frames: Iterable[Atoms], cutoff: float, known: Mapping[str, float] | None = None) -> dict[str, float]:
    """Shortest distance (Angstrom) of every element pair closer than ``cutoff`` over ``frames``,
    starting from ``known`` (the shortest of frames seen before), keyed by :func:`pair_key`."""
    shortest = dict(known or {})
    for atoms in frames:
        for key, d in shortest_pair_distances(atoms, cutoff).items():
            shortest[key] = min(d, shortest.get(key, np.inf))
    return shortest


def shortest_pair_table(shortest: Mapping[str, float], elements: Sequence[str]) -> np.ndarray:
    """``shortest`` (from :func:`shortest_pairs_of`) as a symmetric (n_species, n_species) array in
    the order of ``elements`` (Angstrom); NaN for a pair it does not hold."""
    from ase.data import atomic_numbers

    z = [atomic_numbers[e] for e in elements]
    return np.array([[shortest.get(pair_key(za, zb), np.nan) for zb in z] for za in z], dtype=float)
