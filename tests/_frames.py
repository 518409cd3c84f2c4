"""Small reference data made on the fly for the tests (no /work/shared, seconds to make)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron
from clusterforce.workflows.datagen import gold_thiolate_ring as ring


def _label(atoms: Atoms, calc) -> Atoms:
    atoms.calc = calc
    forces = atoms.get_forces()
    energy = atoms.get_potential_energy()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def emt_frames(n_frames: int, *, seed: int = 0, rattle: float = 0.15, element: str = "Au") -> list[Atoms]:
    """13-atom icosahedra of ``element`` with random displacements (Angstrom), EMT energies and forces."""
    rng = np.random.default_rng(seed)
    base = Icosahedron(element, 2)
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(_label(atoms, EMT()))
    return frames


def rattled_icosahedron(
    seed: int, element: str, *, shells: int = 2, substitute: dict[int, tuple[int, ...]] | None = None, amplitude: float = 0.1
) -> Atoms:
    """An icosahedron of ``element`` with atomic number Z put at each index of ``substitute[Z]``,
    every atom displaced by N(0, amplitude) Angstrom from ``default_rng(seed)``; no calculator."""
    atoms = Icosahedron(element, shells)
    for z, indices in (substitute or {}).items():
        atoms.numbers[list(indices)] = z
    atoms.positions += np.random.default_rng(seed).normal(0.0, amplitude, atoms.positions.shape)
    return atoms


def ring_frames(n_units: int, n_frames: int, *, seed: int = 0, rattle: float = 0.05) -> list[Atoms]:
    """Rattled [Au(SCH3)]n rings (the datagen builder) with smooth toy forces (Lennard-Jones, rotation-equivariant)."""
    rng = np.random.default_rng(seed)
    base = ring(n_units)
    frames = []
    for _ in range(n_frames):
        atoms = base.copy()
        atoms.positions += rng.normal(scale=rattle, size=atoms.positions.shape)
        frames.append(_label(atoms, LennardJones(sigma=0.95, epsilon=0.1, rc=5.0)))
    return frames
