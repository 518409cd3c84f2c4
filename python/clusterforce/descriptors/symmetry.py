"""Point groups of clusters (Schoenflies symbols), for labelling isomers.

Symmetry operations are searched among the directions a finite structure offers: principal axes
of inertia, atoms, midpoints of pairs of like atoms at the same distance from the centre, and
normals of the planes through the centre and two atoms. An operation belongs to the group when it
maps every atom onto an atom of the same element within ``tol`` (Angstrom). The symbol follows the
usual flow chart: linear groups, the cubic and icosahedral groups (several axes of order >= 3),
then D, C and S groups about the highest-order axis.

Every candidate operation is tested at once (numpy), atom by atom from the outermost inwards, and an
operation is dropped at the first atom it does not map: most candidates fail at the first atom, so
the cost is about O(N^2) candidate directions times a few atoms, rather than O(N^4) (about 20 ms for
a Lennard-Jones 38-atom minimum; an isomer search labels thousands of minima).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

ORDERS = (6, 5, 4, 3, 2)


class _Structure:
    def __init__(self, atoms: Atoms, tol: float) -> None:
        masses = atoms.get_masses()
        self.x = atoms.positions - masses @ atoms.positions / masses.sum()
        self.numbers = atoms.numbers
        self.tol = tol
        # Outermost atoms first: an operation that is not a symmetry moves them the most.
        self._order = np.argsort(-np.linalg.norm(self.x, axis=1), kind="stable")
        self._like = {z: self.x[self.numbers == z] for z in np.unique(self.numbers)}

    def maps_onto_itself(self, matrices: np.ndarray) -> np.ndarray:
        """For each 3x3 matrix of ``matrices`` (m, 3, 3), or one matrix: does it map every atom
        within ``tol`` onto an atom of the same element?"""
        matrices = np.asarray(matrices)
        single = matrices.ndim == 2
        matrices = matrices.reshape(-1, 3, 3)
        alive = np.arange(len(matrices))
        for k in self._order:
            image = matrices[alive] @ self.x[k]
            like = self._like[self.numbers[k]]
            nearest = np.sqrt(((image[:, None, :] - like[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
            alive = alive[nearest < self.tol]
            if not alive.size:
                break
        ok = np.zeros(len(matrices), dtype=bool)
        ok[alive] = True
        return bool(ok[0]) if single else ok


def _rotations(axes: np.ndarray, n: int) -> np.ndarray:
    """Rotation matrices (m, 3, 3) by 2 pi / n about each unit vector of ``axes`` (m, 3)."""
    return Rotation.from_rotvec(np.asarray(axes).reshape(-1, 3) * 2 * np.pi / n).as_matrix().reshape(-1, 3, 3)


def _reflections(normals: np.ndarray) -> np.ndarray:
    """Reflection matrices (m, 3, 3) through the planes with unit ``normals`` (m, 3)."""
    normals = np.asarray(normals).reshape(-1, 3)
    return np.eye(3) - 2 * normals[:, :, None] * normals[:, None, :]


def _unique(directions: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Unit vectors of ``directions`` (k, 3), dropping near-zero ones and any parallel or
    antiparallel (within ``tol`` in |cos|) to an earlier one kept."""
    norms = np.linalg.norm(directions, axis=1)
    units = directions[norms >= 1e-6] / norms[norms >= 1e-6, None]
    keep = np.ones(len(units), dtype=bool)
    for i in range(len(units)):
        if keep[i]:
            later = keep[i + 1 :]
            later &= np.abs(np.abs(units[i + 1 :] @ units[i]) - 1.0) >= tol
    return units[keep]


def _candidates(s: _Structure) -> np.ndarray:
    inertia = (s.x**2).sum() * np.eye(3) - s.x.T @ s.x
    i, j = np.triu_indices(len(s.x), k=1)
    radius = np.linalg.norm(s.x, axis=1)
    shell = (s.numbers[i] == s.numbers[j]) & (np.abs(radius[i] - radius[j]) < s.tol)
    # Per pair, in the order the directions were once listed one pair at a time: the midpoint and
    # the difference of two like atoms at the same distance from the centre, then the normal of
    # the plane through the centre and the pair (the order decides which of two near-parallel
    # directions is kept, so it is kept as it was).
    per_pair = np.stack([s.x[i] + s.x[j], s.x[i] - s.x[j], np.cross(s.x[i], s.x[j])], axis=1)
    mask = np.stack([shell, shell, np.ones_like(shell)], axis=1)
    directions = np.concatenate([np.linalg.eigh(inertia)[1].T, s.x, per_pair[mask]])
    return _unique(directions)


def point_group(atoms: Atoms, tol: float = 0.1) -> str:
    """Schoenflies symbol of a free cluster ('C1', 'Cs', 'C2v', 'D3h', 'Td', 'Ih', 'D*h', ...)."""
    if len(atoms) == 1:
        return "Kh"
    s = _Structure(atoms, tol)
    inversion = s.maps_onto_itself(-np.eye(3))
    _, _, vt = np.linalg.svd(s.x)
    if np.all(np.linalg.norm(np.cross(s.x, vt[0]), axis=1) < tol):  # all atoms on one line
        return "D*h" if inversion else "C*v"
    candidates = _candidates(s)
    # ok[k, c]: the rotation by 2 pi / ORDERS[k] about candidate c is a symmetry operation.
    ok = s.maps_onto_itself(np.concatenate([_rotations(candidates, n) for n in ORDERS])).reshape(len(ORDERS), -1)
    axes = [(ORDERS[int(np.argmax(ok[:, c]))], v) for c, v in enumerate(candidates) if ok[:, c].any()]  # highest order per axis
    mirrors = list(candidates[s.maps_onto_itself(_reflections(candidates))])
    high = [a for a in axes if a[0] >= 3]
    if len(high) > 1:  # several axes of order >= 3: cubic or icosahedral
        top = max(n for n, _ in high)
        if top == 5:
            return "Ih" if inversion else "I"
        if top == 4:
            return "Oh" if inversion else "O"
        return "Th" if inversion else ("Td" if mirrors else "T")
    if not axes:
        return "Cs" if mirrors else ("Ci" if inversion else "C1")
    n, main = max(axes, key=lambda a: a[0])
    if n == 2:  # several C2 axes: the main one is the one the others are perpendicular to, if any
        for _, v in axes:
            if sum(abs(u @ v) < 1e-2 for _, u in axes) >= 2:
                main = v
                break
    perpendicular_c2 = [v for m, v in axes if m >= 2 and abs(v @ main) < 1e-2]
    horizontal = any(abs(abs(m @ main) - 1) < 1e-2 for m in mirrors)
    vertical = sum(abs(m @ main) < 1e-2 for m in mirrors)
    if len(perpendicular_c2) >= n:
        return f"D{n}h" if horizontal else (f"D{n}d" if vertical >= n else f"D{n}")
    if horizontal:
        return f"C{n}h"
    if vertical >= n:
        return f"C{n}v"
    if s.maps_onto_itself(_reflections(main)[0] @ _rotations(main, 2 * n)[0]):
        return f"S{2 * n}"
    return f"C{n}"
