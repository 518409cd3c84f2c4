"""Per-element isolated-atom energies e0 and the compositions an energy model was trained on.

Every energy kind (gap, sann, dart) predicts E = sum_i e0[Z_i] + learned local energies. The
learned part is fitted to the reference energies minus sum_i e0[Z_i] (:func:`isolated_energy`), and
the compiled model adds e0 back per atom, so Python, ASE and LAMMPS share it. Where e0 comes from
(:func:`resolve`, the estimators' ``e0`` parameter, ``clusterforce train --e0``):

``{"Au": -2.137, ...}`` (source ``given``)
    Isolated-atom energies in eV, one per element of the data.
``"reference"`` or ``"reference:NAME"`` (source ``reference:NAME``)
    Computed here: one isolated atom per element with the reference NAME (default: the
    ``info['method']`` the frames record), in its ground-state spin (ASE's
    ``ground_state_magnetic_moments``) and, for GFN1-xTB, at the data's electronic temperature
    (``info['electronic_temperature_K']``, else the project's default for the data's elements).
``None`` or ``"fit"`` (source ``fit``, the default)
    Single-atom frames if every element has one, else least squares of the frame energies on the
    element counts. One composition (or any set of rank below the number of elements) does not
    determine them: :func:`resolve` warns, and energies of other compositions carry an offset.

The model file records ``e0`` (eV per element), ``e0_source``, and in ``training``
``compositions`` (distinct element-count vectors, species order) and ``charges`` (distinct
``info['charge']``, default 0, in e). The compiled Predictor checks each structure against them
and returns one warning text naming what is outside; the estimator base
(:mod:`clusterforce.core.estimator`) shows each text once per model.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, ground_state_magnetic_moments

from clusterforce.data import charge_of, get_energy

logger = logging.getLogger(__name__)

#: The ``--e0`` word for least squares over the training compositions (the default).
FIT = "fit"
#: The ``--e0`` word (alone or as ``reference:NAME``) for isolated atoms computed with a reference.
REFERENCE = "reference"

E0Spec = Mapping[str, float] | str | None


def parse_e0_flag(values: Sequence[str] | None) -> E0Spec:
    """``--e0`` items to an estimator's ``e0``: ``fit``, ``reference[:NAME]`` or ``EL=EV`` items
    (space- or comma-separated, or a YAML mapping); ValueError for anything else."""
    from clusterforce.core.options import parse_assignments

    if not values:
        return None
    items = [part for value in values for part in str(value).split(",") if part]
    if len(items) == 1 and (items[0] == FIT or items[0] == REFERENCE or items[0].startswith(REFERENCE + ":")):
        return items[0]
    return parse_assignments(items, usage="--e0 expects ELEMENT=EV items such as Au=-2.137, or fit, reference or reference:NAME")


def resolve(e0: E0Spec, frames: Sequence[Atoms], elements: Sequence[str]) -> tuple[dict[str, float], str]:
    """The isolated-atom energies (eV per element of ``elements``) and their source
    (``given``, ``reference:NAME`` or ``fit``) for the estimator parameter ``e0``."""
    if isinstance(e0, Mapping):
        missing = [s for s in elements if s not in e0]
        if missing:
            raise ValueError(f"'e0' lacks an isolated-atom energy for {', '.join(missing)} (give one in eV per element of the data)")
        return {s: float(e0[s]) for s in elements}, "given"
    if e0 is None or e0 == FIT:
        return _fit(frames, elements), FIT
    if isinstance(e0, str) and (e0 == REFERENCE or e0.startswith(REFERENCE + ":")):
        name = e0.partition(":")[2] or _data_method(frames)
        values = reference_energies(name, elements, data_electronic_temperature(frames))
        logger.info("e0 from isolated atoms with %s: %s", name, {s: round(v, 6) for s, v in values.items()})
        return values, f"{REFERENCE}:{name}"
    raise ValueError(f"e0 must be a mapping of element to eV, 'fit', 'reference' or 'reference:NAME', got {e0!r}")


def isolated_energy(atoms: Atoms, e0: Mapping[str, float]) -> float:
    """sum_i e0[Z_i] of a structure (eV): what a model's learned part does not fit."""
    return float(sum(e0[s] for s in atoms.get_chemical_symbols()))


def training_domain(frames: Sequence[Atoms], elements: Sequence[str], known: Mapping[str, Any] | None = None) -> dict[str, list]:
    """``compositions``: the distinct element-count vectors of ``frames`` (one count per element
    of ``elements``); ``charges``: the distinct ``info['charge']`` (e, default 0); both joined with
    those of ``known`` (a model's ``training_``, for ``partial_fit``) if given."""
    known = known or {}
    rows = {tuple(_counts(a, elements)) for a in frames} | {tuple(r) for r in known.get("compositions", ())}
    charges = {charge_of(a) for a in frames} | {float(q) for q in known.get("charges", ())}
    return {"compositions": [list(r) for r in sorted(rows)], "charges": sorted(charges)}


def data_electronic_temperature(frames: Sequence[Atoms]) -> float:
    """The electronic temperature (K) the frames record (``info['electronic_temperature_K']``; one
    value, else ValueError), or without one the project's default for their elements."""
    from clusterforce.references.methods import default_electronic_temperature

    recorded = {float(a.info["electronic_temperature_K"]) for a in frames if "electronic_temperature_K" in a.info}
    if len(recorded) > 1:
        raise ValueError(f"the training frames record several electronic temperatures {sorted(recorded)} K; give --e0 EL=EV")
    if recorded:
        return recorded.pop()
    return default_electronic_temperature(Atoms("".join(sorted({s for a in frames for s in a.get_chemical_symbols()}))))


def reference_energies(name: str, elements: Sequence[str], electronic_temperature: float) -> dict[str, float]:
    """Energy (eV) of one isolated atom of each element with reference ``name`` (as ``--reference``
    names it), in the ground-state spin; GFN1-xTB at ``electronic_temperature`` (K)."""
    from clusterforce.references import resolve as resolve_calculator
    from clusterforce.references.methods import make_reference

    out = {}
    for symbol in elements:
        atom = Atoms(symbol)
        unpaired = int(round(ground_state_magnetic_moments[atomic_numbers[symbol]]))
        if name == "gfn1-xtb":
            # resolve() would pick a lone atom's closed-shell spin and a bare metal's temperature.
            ref = make_reference(name, atom, electronic_temperature=electronic_temperature, charge=0, uhf=unpaired)
            atom.calc = ref.calculator(ref.rungs[0])
        else:
            atom.set_initial_magnetic_moments([unpaired])
            atom.calc = resolve_calculator(name, atom)
        out[symbol] = float(atom.get_potential_energy())
    return out


def _counts(atoms: Atoms, elements: Sequence[str]) -> list[int]:
    symbols = atoms.get_chemical_symbols()
    return [symbols.count(s) for s in elements]


def _data_method(frames: Sequence[Atoms]) -> str:
    methods = {str(a.info["method"]) for a in frames if "method" in a.info}
    if len(methods) != 1:
        found = f"several ({', '.join(sorted(methods))})" if methods else "none"
        raise ValueError(
            f"--e0 reference takes the reference method the frames record in info['method'], found {found}; give --e0 reference:NAME"
        )
    return methods.pop()


def _fit(frames: Sequence[Atoms], elements: Sequence[str]) -> dict[str, float]:
    isolated: dict[str, float] = {}
    for a in frames:
        energy = get_energy(a)
        if len(a) == 1 and energy is not None:
            isolated.setdefault(a.get_chemical_symbols()[0], energy)
    if all(s in isolated for s in elements):
        logger.info("e0 from single-atom frames: %s", isolated)
        return {s: isolated[s] for s in elements}
    with_energy = [(a, get_energy(a)) for a in frames if get_energy(a) is not None]
    if not with_energy:
        raise ValueError("no frame has an energy, so e0 cannot be fitted; give --e0 EL=EV (or e0={element: eV})")
    counts = np.array([_counts(a, elements) for a, _ in with_energy], dtype=float)
    energies = np.array([e for _, e in with_energy])
    values = np.linalg.lstsq(counts, energies, rcond=None)[0]
    rank = np.linalg.matrix_rank(counts)
    if rank < len(elements):
        distinct = sorted({tuple(r) for r in counts.astype(int).tolist()})
        shown = ", ".join("".join(f"{s}{n}" for s, n in zip(elements, r) if n) for r in distinct[:5])
        warnings.warn(
            f"the training compositions ({shown}) have rank {rank} for {len(elements)} elements "
            f"({', '.join(elements)}): they do not determine the per-element energies e0, so energies of other "
            "compositions will carry an offset; give --e0 reference (isolated atoms with the reference method) "
            "or --e0 EL=EV",
            UserWarning,
            stacklevel=3,
        )
    logger.info("e0 by least squares over %d frames: %s", len(energies), dict(zip(elements, values.round(6))))
    return {s: float(v) for s, v in zip(elements, values)}


__all__ = [
    "FIT",
    "REFERENCE",
    "data_electronic_temperature",
    "isolated_energy",
    "parse_e0_flag",
    "reference_energies",
    "resolve",
    "training_domain",
]
