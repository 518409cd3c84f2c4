"""Calculators by name, as ``--reference`` takes them on every command that needs one.

``gfn1-xtb`` (tblite, settings of :mod:`clusterforce.references.methods`), ``emt`` (ASE),
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

from ase import Atoms
from ase.calculators.calculator import Calculator

from clusterforce.references.lj import LennardJones

#: Names ``--reference`` accepts besides a model file and ``module:factory``.
NAMES = ("gfn1-xtb", "emt", "lj")


def resolve(name: str, atoms: Atoms | None = None) -> Calculator:
    """A fresh ASE calculator for the reference ``name`` (see the module docstring).

    ``atoms`` decides element-dependent settings (GFN1-xTB electronic temperature, charge) and is
    checked against what the method covers; it is required for ``gfn1-xtb`` and ``emt``.
    """
    if name == "lj":
        return LennardJones()
    if name in ("gfn1-xtb", "emt"):
        from clusterforce.references.methods import make_reference
        from clusterforce.references.scf import LadderCalculator, ScfCounts

        if atoms is None:
            raise ValueError(f"--reference {name} needs the structure to choose its settings")
        ref = make_reference(name, atoms)
        # SCF failures are retried with a patient SCF (the datagen ladder); the rung that heats the
        # electrons changes the physics, so it is left out and every energy stays comparable.
        ref = dataclasses.replace(ref, rungs=tuple(r for r in ref.rungs if r.recordable))
        return LadderCalculator(ref, ScfCounts(), atoms.get_chemical_formula())
    if name.endswith(".cfm") or Path(name).is_file():
        from clusterforce.core.calculator import Calculator as ModelCalculator

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
