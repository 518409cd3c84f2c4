"""Shared fixtures: fast stand-in references and small structures made on the fly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from clusterforce.references import Reference, Rung


class Morse(Calculator):
    """All-pairs Morse potential (eV, Angstrom): a fast, exact stand-in reference for MD tests."""

    implemented_properties = ["energy", "free_energy", "forces"]
    nolabel = True

    def __init__(self, depth=0.5, alpha=1.5, r0=2.9):
        super().__init__()
        self.depth, self.alpha, self.r0 = depth, alpha, r0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = self.atoms.positions
        diff = x[:, None, :] - x[None, :, :]
        r = np.linalg.norm(diff, axis=-1) + np.eye(len(x))
        e = np.exp(-self.alpha * (r - self.r0))
        pair = self.depth * (e * e - 2 * e)
        np.fill_diagonal(pair, 0.0)
        dpair = self.depth * (-2 * self.alpha * e * e + 2 * self.alpha * e)
        np.fill_diagonal(dpair, 0.0)
        forces = -np.sum((dpair / r)[:, :, None] * diff, axis=1)
        self.results = {"energy": 0.5 * pair.sum(), "free_energy": 0.5 * pair.sum(), "forces": forces}


class FlakyMorse(Morse):
    """Morse whose evaluations fail (CalculationFailed, like tblite's SCF) when ``fails(level, atoms)``."""

    def __init__(self, level, fails):
        super().__init__()
        self.level = level
        self.fails = fails

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.fails(self.level, atoms):
            raise CalculationFailed("SCF not converged in 250 cycles (fake)")
        super().calculate(atoms, properties, system_changes)


@pytest.fixture()
def morse_reference():
    """A one-rung Morse reference; ``make(hook)`` calls ``hook()`` before every evaluation."""

    class HookedMorse(Morse):
        def __init__(self, hook):
            super().__init__()
            self.hook = hook

        def calculate(self, *args, **kwargs):
            self.hook()
            super().calculate(*args, **kwargs)

    def make(hook=None):
        return Reference("morse", lambda: Morse() if hook is None else HookedMorse(hook))

    return make


@pytest.fixture()
def flaky_reference():
    """A Morse reference with GFN1-xTB's three rungs whose failures ``fails(level, atoms)`` decides."""

    def make(fails):
        rungs = (
            Rung("normal", {"level": 0}),
            Rung("patient-scf", {"level": 1}),
            Rung("hot-electrons", {"level": 2}, recordable=False),
        )
        return Reference("morse", lambda level: FlakyMorse(level, fails), rungs)

    return make


def geometric_coin(atoms, level):
    """Deterministic pseudo-random number in [0, 1) from the exact positions (history-independent, like SCF)."""
    digest = hashlib.sha256(atoms.positions.tobytes() + bytes([level])).digest()
    return int.from_bytes(digest[:4], "little") / 2**32


class EMTForceModel:
    """A force-only 'model' whose forces are ASE EMT's: an independent, exact reference."""

    kind = "emt-forces"
    implemented_properties = ("forces",)
    provides_uncertainty = uncertainty_is_cheap = True

    def __init__(self, elements=("Au", "Ag", "Cu")):
        self.elements = list(elements)
        self.calls = 0

    def predict(self, atoms: Atoms, *, properties=None) -> dict:
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


@pytest.fixture(scope="session")
def cu13_gap_model(tmp_path_factory) -> str:
    """Path of a small 2-body gap model of Cu13 (EMT energies of 4 rattled icosahedra), for workflow tests."""
    from _frames import emt_frames
    from clusterforce.kinds.gap import TwoBody
    from clusterforce.kinds.gap.model import GAPModel

    frames = emt_frames(4, seed=0, rattle=0.1, element="Cu")
    model = tmp_path_factory.mktemp("cu13_gap") / "cu.cfm"
    GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12)], progress=False).fit(frames).save(model)
    return str(model)
