"""Point groups of clusters (Schoenflies symbols), for labelling isomers.

Symmetry operations are searched among the directions a finite structure offers: principal axes
of inertia, atoms, midpoints of pairs of like atoms at the same distance from the centre, and
normals of the planes through the centre and two atoms. An operation belongs to the group when it
maps every atom onto an atom of the same element within ``tol`` (Angstrom). The symbol follows the
usual flow chart: linear groups, the cubic and icosahedral groups (several axes of order >= 3),
then D, C and S groups about the highest-order axis. Cost O(N^3) for N atoms (candidate directions
times operations times atoms), a fraction of a second for the clusters isomer searches make.
"""

from __future__ import annotations

import itertools

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

    def maps_onto_itself(self, matrix: np.ndarray) -> bool:
        y = self.x @ matrix.T
        d = np.linalg.norm(y[:, None, :] - self.x[None, :, :], axis=2)
        d[self.numbers[:, None] != self.numbers[None, :]] = np.inf
        return bool(np.all(d.min(axis=1) < self.tol))


def _rotation(axis: np.ndarray, n: int) -> np.ndarray:
    return Rotation.from_rotvec(axis * 2 * np.pi / n).as_matrix()


def _reflection(normal: np.ndarray) -> np.ndarray:
    return np.eye(3) - 2 * np.outer(normal, normal)


def _unique(directions: list[np.ndarray], tol: float = 1e-3) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for v in directions:
        norm = np.linalg.norm(v)
        if norm < 1e-6:
            continue
        v = v / norm
        if not any(abs(abs(v @ u) - 1.0) < tol for u in out):
            out.append(v)
    return out


def _candidates(s: _Structure) -> list[np.ndarray]:
    inertia = (s.x**2).sum() * np.eye(3) - s.x.T @ s.x
    directions = list(np.linalg.eigh(inertia)[1].T)
    radius = np.linalg.norm(s.x, axis=1)
    directions += list(s.x)
    for i, j in itertools.combinations(range(len(s.x)), 2):
        if s.numbers[i] == s.numbers[j] and abs(radius[i] - radius[j]) < s.tol:
            directions.append(s.x[i] + s.x[j])
            directions.append(s.x[i] - s.x[j])
        directions.append(np.cross(s.x[i], s.x[j]))
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
    axes = []  # (order, axis) of the highest proper rotation about each direction
    for v in candidates:
        n = next((n for n in ORDERS if s.maps_onto_itself(_rotation(v, n))), 1)
        if n > 1:
            axes.append((n, v))
    mirrors = [v for v in candidates if s.maps_onto_itself(_reflection(v))]
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
    if s.maps_onto_itself(_reflection(main) @ _rotation(main, 2 * n)):
        return f"S{2 * n}"
    return f"C{n}"
