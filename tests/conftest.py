"""Shared fixtures: small structures and force-only model stand-ins made on the fly."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron


class EMTForceModel:
    """A force-only 'model' whose forces are ASE EMT's: an independent, exact reference."""

    kind = "dml"
    implemented_properties = ("forces",)

    def __init__(self, elements=("Au", "Ag", "Cu")):
        self.elements = list(elements)
        self.calls = 0

    def predict(self, atoms: Atoms) -> dict:
        self.calls += 1
        ref = atoms.copy()
        ref.calc = EMT()
        forces = ref.get_forces()
        return {"forces": forces, "uncertainty": np.zeros(len(atoms))}


@pytest.fixture
def emt_force_model():
    return EMTForceModel()


@pytest.fixture
def rattled_au13():
    atoms = Icosahedron("Au", noshells=2)
    atoms.center(vacuum=6.0)
    atoms.rattle(0.15, seed=3)
    return atoms
