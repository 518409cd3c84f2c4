"""Calculators by name, as ``--reference`` takes them on every command that needs one.

``gfn1-xtb`` (tblite, settings of :mod:`clusterforce.datagen.references`), ``emt`` (ASE),
``lj`` (Lennard-Jones, epsilon = sigma = 1, no cutoff: energies in epsilon, lengths in sigma),
a trained model file (``*.cfm``, through :class:`clusterforce.Calculator`), or
``module:factory`` — a user's own: ``factory()`` (or ``factory(atoms)`` if it takes an argument)
returns an ASE calculator.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

#: Names ``--reference`` accepts besides a model file and ``module:factory``.
NAMES = ("gfn1-xtb", "emt", "lj")


class LennardJones(Calculator):
    """Lennard-Jones cluster, every pair, no cutoff: E = 4 eps sum_{i<j} ((sig/r)^12 - (sig/r)^6).

    Reduced units (eps = sig = 1 by default): energies in eps, lengths in sig, forces in eps/sig.
    All pairs in numpy, which is what global optimisation of LJ clusters (Cambridge Cluster
    Database energies are for this form) needs; ASE's own ``LennardJones`` is truncated and shifted.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]
    default_parameters = {"epsilon": 1.0, "sigma": 1.0}
    nolabel = True

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        eps, sig = self.parameters.epsilon, self.parameters.sigma
        d = pos[:, None, :] - pos[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", d, d)
        np.fill_diagonal(r2, np.inf)
        if np.any(r2 < 1e-12):
            i, j = np.argwhere(r2 < 1e-12)[0]
            raise ValueError(f"atoms {i} and {j} coincide; the Lennard-Jones energy is infinite")
        s6 = (sig * sig / r2) ** 3
        pair = 4.0 * eps * (s6 * s6 - s6)
        self.results["energies"] = 0.5 * pair.sum(axis=1)
        self.results["energy"] = self.results["free_energy"] = float(self.results["energies"].sum())
        # -dE/dr_i = sum_j 24 eps (2 s12 - s6) / r^2 (r_i - r_j)
        coef = 24.0 * eps * (2.0 * s6 * s6 - s6) / r2
        self.results["forces"] = np.einsum("ij,ijk->ik", coef, d)


def resolve(name: str, atoms: Atoms | None = None) -> Calculator:
    """A fresh ASE calculator for the reference ``name`` (see the module docstring).

    ``atoms`` decides element-dependent settings (GFN1-xTB electronic temperature, charge) and is
    checked against what the method covers; it is required for ``gfn1-xtb`` and ``emt``.
    """
    if name == "lj":
        return LennardJones()
    if name in ("gfn1-xtb", "emt"):
        from .datagen.references import make_reference
        from .datagen.scf import LadderCalculator, ScfCounts

        if atoms is None:
            raise ValueError(f"--reference {name} needs the structure to choose its settings")
        ref = make_reference(name, atoms)
        # SCF failures are retried with a patient SCF (the datagen ladder); the rung that heats the
        # electrons changes the physics, so it is left out and every energy stays comparable.
        ref = dataclasses.replace(ref, rungs=tuple(r for r in ref.rungs if r.recordable))
        return LadderCalculator(ref, ScfCounts(), atoms.get_chemical_formula())
    if name.endswith(".cfm") or Path(name).is_file():
        from .calculator import Calculator as ModelCalculator

        if not Path(name).is_file():
            raise FileNotFoundError(f"--reference {name}: model file not found")
        return ModelCalculator(name)
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"unknown reference '{name}': give one of {', '.join(NAMES)}, a model file (.cfm) or module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--reference {name}: cannot import {attr} from {module_name} ({exc})") from None
    takes_atoms = bool(inspect.signature(factory).parameters)
    calc = factory(atoms) if takes_atoms else factory()
    if not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate"):
        raise TypeError(f"--reference {name}: {attr}() returned {type(calc).__name__}, not an ASE calculator")
    return calc
