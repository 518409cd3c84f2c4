"""Hand-built structures for the alignment and OAMLM tests (made on the fly, no data files)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from clusterforce.workflows.datagen import gold_thiolate_ring
from scipy.spatial.transform import Rotation

AU_S, S_C, C_H, AU_AU = 2.40, 1.82, 1.09, 2.85


def _methyl(s: np.ndarray, direction: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[np.ndarray]]:
    """C bound to the S at ``s`` along ``direction``, with three H (tetrahedral, random spin)."""
    u = direction / np.linalg.norm(direction)
    c = s + S_C * u
    a = np.cross(u, rng.normal(size=3))
    a /= np.linalg.norm(a)
    b = np.cross(u, a)
    hs = []
    for k in range(3):
        phi = 2 * np.pi * k / 3
        hs.append(c + C_H * (np.cos(np.radians(70.5)) * u + np.sin(np.radians(70.5)) * (np.cos(phi) * a + np.sin(phi) * b)))
    return ["C", "H", "H", "H"], [c, *hs]


def bridge(rng: np.random.Generator) -> Atoms:
    """Au-S(CH3)-Au with Au-S-Au 100 degrees: each Au has one S and no Au within 3 A (half units)."""
    half = np.radians(50.0)
    s = np.zeros(3)
    au1 = AU_S * np.array([np.sin(half), -np.cos(half), 0.0])
    au2 = AU_S * np.array([-np.sin(half), -np.cos(half), 0.0])
    syms, pos = _methyl(s, np.array([0.0, 1.0, 0.6]), rng)
    return Atoms(["Au", "Au", "S", *syms], positions=[au1, au2, s, *pos])


def tetrahedron_with_thiolate(rng: np.random.Generator) -> Atoms:
    """Au4 tetrahedron, one Au bound to an S(CH3): one core Au with S, three without."""
    t = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float) * AU_AU / np.sqrt(8)
    u = t[0] / np.linalg.norm(t[0])
    s = t[0] + AU_S * u
    syms, pos = _methyl(s, u + 0.8 * np.cross(u, [0.0, 0.0, 1.0]), rng)
    return Atoms(["Au"] * 4 + ["S", *syms], positions=[*t, s, *pos])


def zoo(rng: np.random.Generator, noise: float = 0.05) -> Atoms:
    """Ring, bridge and tetrahedron 20 A apart, with small random displacements (no symmetry)."""
    parts = [gold_thiolate_ring(4), bridge(rng), tetrahedron_with_thiolate(rng)]
    atoms = Atoms()
    for k, part in enumerate(parts):
        part.translate([20.0 * k, 0.0, 0.0])
        atoms += part
    atoms.positions += rng.normal(scale=noise, size=atoms.positions.shape)
    return atoms


def metal_cluster(rng: np.random.Generator, n: int = 8, symbol: str = "Na", dmin: float = 3.0) -> Atoms:
    """Random compact cluster: atoms dropped into a sphere, none closer than dmin (packing ~0.3)."""
    radius = 0.75 * dmin * n ** (1 / 3)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        c = rng.uniform(-radius, radius, size=3)
        if np.linalg.norm(c) <= radius and (not pos or np.linalg.norm(np.array(pos) - c, axis=1).min() >= dmin):
            pos.append(c)
    return Atoms(f"{symbol}{n}", positions=pos)


def pair_forces(atoms: Atoms) -> np.ndarray:
    """Rotation-equivariant toy forces: a screened Lennard-Jones pair sum (eV/Angstrom)."""
    p = atoms.positions
    d = p[None, :, :] - p[:, None, :]
    r = np.linalg.norm(d, axis=2) + np.eye(len(p))
    f = (12 * (3.2 / r) ** 12 - 6 * (3.2 / r) ** 6) / r**2 * np.exp(-r / 4)
    np.fill_diagonal(f, 0.0)
    return -(f[:, :, None] * d).sum(axis=1)


def sorted_distances(atoms: Atoms, width: int) -> np.ndarray:
    """A rotation-invariant toy descriptor: each atom's sorted neighbour distances / 6 A."""
    p = atoms.positions
    r = np.sort(np.linalg.norm(p[None] - p[:, None], axis=2), axis=1)[:, 1 : width + 1]
    return np.minimum(r, 6.0) / 6.0


def rotated(atoms: Atoms, seed: int, permute: bool = True) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """A randomly rotated (and atom-permuted) copy; returns (copy, rotation, order) with
    copy[k] = R @ atoms[order[k]]."""
    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=seed).as_matrix()
    order = rng.permutation(len(atoms)) if permute else np.arange(len(atoms))
    out = atoms[order]
    out.positions = out.positions @ R.T + rng.normal(size=3) * 5.0
    return out, R, order


def compact_cluster(rng: np.random.Generator, n: int = 4, symbol: str = "Na", dmin: float = 3.0, dmax: float = 4.8) -> Atoms:
    """Random cluster whose atoms are all pairwise between dmin and dmax apart."""
    pos = [np.zeros(3)]
    while len(pos) < n:
        c = rng.uniform(-dmax, dmax, size=3)
        d = np.linalg.norm(np.array(pos) - c, axis=1)
        if d.min() >= dmin and d.max() <= dmax:
            pos.append(c)
    return Atoms(f"{symbol}{n}", positions=pos)
