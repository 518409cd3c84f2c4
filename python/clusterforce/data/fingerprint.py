"""A reproducible fingerprint of a data set, stored in model files to name what they were trained on."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from ase import Atoms

from clusterforce.data.io import get_energy, get_forces


def dataset_hash(frames: Iterable[Atoms]) -> str:
    """SHA-256 hex digest of a data set, identical across runs and machines.

    Covers, per frame and in order: atomic numbers, positions, cell, pbc, energy and forces
    (as little-endian int64/float64 bytes). ``info`` metadata such as the source file is not
    included, so the same data read from another path hashes the same.
    """
    digest = hashlib.sha256(b"clusterforce-dataset-v1")
    for atoms in frames:
        energy = get_energy(atoms)
        forces = get_forces(atoms)
        parts = [
            np.array([len(atoms)], dtype="<i8"),
            np.asarray(atoms.numbers, dtype="<i8"),
            np.asarray(atoms.positions, dtype="<f8"),
            np.asarray(atoms.cell[:], dtype="<f8"),
            np.asarray(atoms.pbc, dtype="u1"),
            np.array([0.0 if energy is None else energy, energy is not None], dtype="<f8"),
            np.array([forces is not None], dtype="u1"),
        ]
        if forces is not None:
            parts.append(np.array(forces.shape, dtype="<i8"))
            parts.append(forces.astype("<f8"))
        for part in parts:
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()
