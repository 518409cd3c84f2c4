"""ASE calculator for trained clusterforce models (``atoms.calc = Calculator("model.cfm")``).

Predictions go through the model's compiled path (the C++ core shared with LAMMPS).
What the calculator offers depends on the model kind: ``dml`` models predict forces directly
and define no energy (asking for one raises :class:`PropertyNotImplementedError` that says so);
``gap`` models give energy, per-atom energies, forces and, for periodic cells, stress.
Per-atom uncertainties land in ``calc.results["uncertainty"]`` when the model provides them
(``calc.get_property("uncertainty", atoms)``; gap: the predictive standard deviation of each atom's
force in eV/Angstrom, computed only when asked for; dml: the force error its OAMLM direction spread
implies, |F| sqrt(2 spread), eV/Angstrom),
and ``dml`` models flag atoms outside their training distances in ``calc.results["extrapolating"]``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from .data import species_indices

_ENERGY_PROPERTIES = ("energy", "free_energy", "energies")


class Calculator(_AseCalculator):
    """ASE calculator driven by a trained clusterforce model.

    Parameters
    ----------
    model
        Path of a ``.cfm`` model file, or a loaded model (an object with ``kind``,
        ``elements``, ``implemented_properties`` and ``predict(atoms) -> dict``).
    """

    default_parameters: dict[str, Any] = {}
    nolabel = True

    def __init__(self, model: str | os.PathLike | Any, **kwargs):
        if isinstance(model, (str, os.PathLike)):
            from .kinds import load_model

            model = load_model(model)
        self.model = model
        self.implemented_properties = list(model.implemented_properties)
        if getattr(model, "provides_uncertainty", False):
            self.implemented_properties.append("uncertainty")
        self._checked_numbers: np.ndarray | None = None
        super().__init__(**kwargs)

    @property
    def kind(self) -> str:
        return self.model.kind

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True):
        if name in _ENERGY_PROPERTIES and name not in self.implemented_properties:
            raise PropertyNotImplementedError(
                f"this clusterforce model (kind '{self.kind}') is force-only: it predicts forces directly "
                f"and defines no {name}; use an optimiser or MD integrator that needs only forces "
                "(clusterforce.optimize.ForceOnlyOptimizer, ase.md.VelocityVerlet, ase.md.Langevin), "
                "or train a 'gap' model for energies"
            )
        if name == "stress" and atoms is not None and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress is defined only for fully periodic cells; this structure is a finite cluster")
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms: Atoms | None = None, properties=("forces",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        # Species are checked only when the atomic numbers change, as ASE calculators do; the
        # model's own predict checks them too, but a duck-typed model need not.
        if self._checked_numbers is None or not np.array_equal(self._checked_numbers, self.atoms.numbers):
            species_indices(self.atoms, self.model.elements)
            self._checked_numbers = self.atoms.numbers.copy()
        # gap and sann variances cost a second pass over the structure: computed only when asked for.
        wants_variance = "uncertainty" in properties and self.kind in ("gap", "sann")
        predicted = self.model.predict(self.atoms, variance=True) if wants_variance else self.model.predict(self.atoms)
        results: dict[str, Any] = {"forces": np.array(predicted["forces"], dtype=float)}
        if "energy" in predicted:
            results["energy"] = results["free_energy"] = float(predicted["energy"])
        if "energies" in predicted:
            results["energies"] = np.array(predicted["energies"], dtype=float)
        if "virial" in predicted and self.atoms.pbc.all():
            # Voigt order xx, yy, zz, yz, xz, xy; stress = -virial / volume (eV/Angstrom^3).
            virial = np.asarray(predicted["virial"], dtype=float).reshape(3, 3)
            stress = -virial / self.atoms.get_volume()
            results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
        for extra in ("uncertainty", "variance", "energy_variance", "forces_variance"):
            if extra in predicted:
                results[extra] = np.array(predicted[extra], dtype=float)
        if "extrapolating" in predicted:
            results["extrapolating"] = np.array(predicted["extrapolating"], dtype=bool)
        self.results = results
