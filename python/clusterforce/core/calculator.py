"""ASE calculator for trained clusterforce models (``atoms.calc = Calculator("model.cfm")``).

Predictions go through the model's compiled path (the C++ core shared with LAMMPS). The
calculator knows no kinds: it offers what the model says it implements
(``model.implemented_properties``; stress only for fully periodic cells). A force-only model
defines no energy (asking for one raises :class:`PropertyNotImplementedError` that says so).
Per-atom uncertainties (eV/Angstrom, the expected size of each atom's force error) land in
``calc.results["uncertainty"]`` when the model provides them: on every call when
``uncertainty=True``, or by default (``uncertainty=None``) when the model declares them cheap
(``model.uncertainty_is_cheap``; the measured costs are in docs/adding-a-kind.md), otherwise when
``"uncertainty"`` is asked for (``calc.get_property("uncertainty", atoms)``). Atoms outside the
training distances are flagged in ``calc.results["extrapolating"]``; models fitted with a domain
reference also put the frame's out-of-domain score in ``calc.results["domain_score"]`` (1 = the
edge of the training domain), ``["outside_domain"]`` (bool) and ``["domain_parts"]`` (its
uncertainty part only when the call computed the uncertainty; :mod:`clusterforce.core.domain`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from clusterforce.core.estimator import UNCERTAINTY, UNCERTAINTY_KEYS
from clusterforce.data import species_indices

_ENERGY_PROPERTIES = ("energy", "free_energy", "energies")


class Calculator(_AseCalculator):
    """ASE calculator driven by a trained clusterforce model.

    Parameters
    ----------
    model
        Path of a ``.cfm`` model file, or a loaded model: an object with ``elements``,
        ``implemented_properties`` and ``predict(atoms, *, properties=None) -> dict``
        (:class:`clusterforce.core.estimator.Estimator`), optionally ``provides_uncertainty`` and
        ``uncertainty_is_cheap``.
    uncertainty
        True: compute the per-atom uncertainty on every call (ValueError if the model has none);
        False: never (``"uncertainty"`` is then not a property of this calculator); None
        (default): on every call when the model declares it cheap, else only when asked for.
    """

    default_parameters: dict[str, Any] = {}
    nolabel = True

    def __init__(self, model: str | os.PathLike | Any, *, uncertainty: bool | None = None, **kwargs):
        if isinstance(model, (str, os.PathLike)):
            from clusterforce.core.registry import load_model

            model = load_model(model)
        self.model = model
        provided = bool(getattr(model, "provides_uncertainty", False))
        if uncertainty and not provided:
            raise ValueError(f"this clusterforce model ({self._described()}) provides no per-atom uncertainty")
        self.implemented_properties = list(model.implemented_properties)
        if provided and uncertainty is not False:
            self.implemented_properties.append(UNCERTAINTY)
        cheap = bool(getattr(model, "uncertainty_is_cheap", False))
        #: Whether every call computes the uncertainty.
        self.uncertainty = provided and (cheap if uncertainty is None else uncertainty)
        self._checked_numbers: np.ndarray | None = None
        super().__init__(**kwargs)

    def _described(self) -> str:
        return f"kind '{getattr(self.model, 'kind', type(self.model).__name__)}'"

    def get_property(self, name: str, atoms: Atoms | None = None, allow_calculation: bool = True):
        if name in _ENERGY_PROPERTIES and name not in self.implemented_properties:
            raise PropertyNotImplementedError(
                f"this clusterforce model ({self._described()}) is force-only: it predicts forces directly "
                f"and defines no {name}; use an optimiser or MD integrator that needs only forces "
                "(clusterforce.workflows.optimize.ForceOnlyOptimizer, ase.md.VelocityVerlet, ase.md.Langevin), "
                "or train a model of a kind that predicts energies"
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
        wanted = [UNCERTAINTY] if self.uncertainty or UNCERTAINTY in properties else []
        predicted = self.model.predict(self.atoms, properties=wanted)
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
        for extra in UNCERTAINTY_KEYS if wanted else ():  # a kind may return them unasked (dml: free)
            if extra in predicted:
                results[extra] = np.array(predicted[extra], dtype=float)
        if "extrapolating" in predicted:
            results["extrapolating"] = np.array(predicted["extrapolating"], dtype=bool)
        if "domain_score" in predicted:
            results["domain_score"] = float(predicted["domain_score"])
            results["outside_domain"] = bool(predicted["outside_domain"])
            results["domain_parts"] = dict(predicted["domain_parts"])
        self.results = results
