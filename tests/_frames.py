"""Small reference data made on the fly for the dml tests (no /work/shared, seconds to make)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron


def _label(atoms: Atoms, calc) -> Atoms:
    atoms.calc = calc
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def emt_frames(n_frames: int, *, seed: int = 0, rattle: float = 0.15) -> list[Atoms]:
    """Au13 icosahedra with random displacements (Angstrom), EMT energies and forces."""
    rng = np.random.default_rng(seed)
    base = Icosahedron("Au", 2)
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(_label(atoms, EMT()))
    return frames


def ring(n_units: int) -> Atoms:
    """[Au(SCH3)]n ring: Au and S alternate on a polygon, S ±1 Angstrom out of plane, CH3 on S."""
    symbols, positions = [], []
    # Au and S on one circle; in-plane Au-S distance sqrt(2.3² - 1²) so that Au-S = 2.3 Angstrom.
    radius = np.sqrt(2.3**2 - 1.0) / (2 * np.sin(np.pi / (2 * n_units)))
    for k in range(n_units):
        phi_au = 2 * np.pi * k / n_units
        phi_s = phi_au + np.pi / n_units
        z = 1.0 if k % 2 == 0 else -1.0
        radial = np.array([np.cos(phi_s), np.sin(phi_s), 0.0])
        s = radius * radial + [0, 0, z]
        au = radius * np.array([np.cos(phi_au), np.sin(phi_au), 0.0])
        c = s + 1.82 * (0.6 * radial + 0.8 * np.array([0, 0, np.sign(z)]))
        axis = (c - s) / np.linalg.norm(c - s)
        perp = np.cross(axis, [0, 0, 1.0]) if abs(axis[2]) < 0.9 else np.cross(axis, [1.0, 0, 0])
        perp /= np.linalg.norm(perp)
        other = np.cross(axis, perp)
        hs = [c + 1.09 * (0.34 * axis + 0.94 * (np.cos(a) * perp + np.sin(a) * other)) for a in (0, 2.09, 4.19)]
        symbols += ["Au", "S", "C", "H", "H", "H"]
        positions += [au, s, c, *hs]
    return Atoms(symbols, positions=positions)


def ring_frames(n_units: int, n_frames: int, *, seed: int = 0, rattle: float = 0.05) -> list[Atoms]:
    """Rattled rings with smooth toy forces (Lennard-Jones, rotation-equivariant)."""
    rng = np.random.default_rng(seed)
    base = ring(n_units)
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(_label(atoms, LennardJones(sigma=0.95, epsilon=0.1, rc=5.0)))
    return frames
