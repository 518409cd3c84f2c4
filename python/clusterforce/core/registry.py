"""The model kinds: one record per kind, and the loader for model files of every kind.

A kind is a package (``clusterforce/kinds/dml``, ``clusterforce/kinds/gap``, or one outside clusterforce) whose
``kind`` module is its record in this registry. The record holds everything the command line and
the loader need of it. The built-in kinds are listed in :data:`KINDS`; another kind is registered
without editing this file, either by :func:`register` (``register("morse", "morse_kind.kind")``) or,
for an installed package, by an entry point in the group :data:`ENTRY_POINT_GROUP`, read when this
module is imported (``[project.entry-points."clusterforce.kinds"] morse = "morse_kind.kind"``). Its
compiled part is registered in C++ (``cpp/include/clusterforce/kinds.hpp``, docs/adding-a-kind.md).
The record provides:

``ESTIMATOR``
    The estimator class, a :class:`clusterforce.core.estimator.Estimator` (``fit``, ``predict``,
    ``save``, ``from_modelfile(ModelFile)``).
``SUMMARY``
    One line for ``--help``.
``add_arguments(parser)``
    Adds the kind's ``clusterforce train`` flags as one argument group (built with
    :mod:`clusterforce.core.options` and the shared helpers here, never with :mod:`clusterforce.cli`).
    Only the chosen kind's group is on the parser (:func:`add_kind_argument`), so flag names
    need no kind suffix.
``train(frames, args)``
    Builds the estimator from the parsed flags, fits it on the frames and returns it.
``evaluate(model, frames, args)``
    Prints the kind's error table, writes plots to ``args.plots`` if given, and returns the
    JSON-serialisable report ``clusterforce evaluate --json`` writes.
``finish(model, args)`` (optional)
    The step after the fit that ``clusterforce train`` takes before it evaluates and saves the
    model (gap: tabulate its 2b/3b terms on splines); ``clusterforce learn`` takes it once, after
    the last update, since an update would undo it.

A kind whose estimator has ``partial_fit`` (and an uncertainty) can be grown by ``clusterforce learn``
(:func:`learnable`).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import os
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

from ase import Atoms

from clusterforce.core import modelfile

#: Kind name -> module holding its record: the built-in kinds, then those :func:`register` adds.
KINDS: dict[str, str] = {
    "dml": "clusterforce.kinds.dml.kind",
    "gap": "clusterforce.kinds.gap.kind",
    "dart": "clusterforce.kinds.dart.kind",
    "sann": "clusterforce.kinds.sann.kind",
}

#: Entry-point group of installed packages' kinds: name = the kind, value = the module of its record.
ENTRY_POINT_GROUP = "clusterforce.kinds"


def register(name: str, module: str) -> None:
    """Add kind ``name`` (the ``kind`` string of its model files) whose record is the module named
    ``module`` (imported on first use). Registering a name again with the same module does
    nothing; ValueError if another module has it."""
    if KINDS.get(name, module) != module:
        raise ValueError(f"model kind '{name}' is already registered (by {KINDS[name]}); cannot register {module} under that name")
    KINDS[name] = module


def _register_entry_points() -> None:
    """Register the kinds of installed packages (:data:`ENTRY_POINT_GROUP`); one that clashes with a
    registered kind is skipped with a warning, so that it cannot break the built-in ones."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(entry.name, entry.value)
        except ValueError as exc:
            warnings.warn(f"entry point {entry.name} = {entry.value} of group {ENTRY_POINT_GROUP} ignored: {exc}", stacklevel=2)


_register_entry_points()


#: The kind commands default to: the one that does best on held-out sizes and structures (docs/benchmarks.md).
RECOMMENDED = "gap"


class KindRecord(Protocol):
    """What a kind's ``kind`` module provides (see the module docstring)."""

    ESTIMATOR: type
    SUMMARY: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def train(self, frames: Sequence[Atoms], args: argparse.Namespace) -> Any: ...

    def evaluate(self, model: Any, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]: ...


def add_baseline_flag(parser, *, default: bool) -> None:
    """``--baseline/--no-baseline`` for a kind with the repulsive pair wall of :mod:`clusterforce.core.baseline`;
    ``default`` is the kind's estimator's."""
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=default,
        help="repulsive pair wall 8 %% below each element pair's shortest training distance, zero on the training data "
        f"(default: {'on' if default else 'off'})",
    )


def add_e0_flag(parser) -> None:
    """``--e0`` for an energy kind: where the per-element isolated-atom energies come from (read
    with :func:`clusterforce.kinds.composition.parse_e0_flag`, which says what each form means)."""
    parser.add_argument(
        "--e0",
        nargs="+",
        metavar="SPEC",
        help="isolated-atom energies: EL=EV items (eV), 'reference[:NAME]' (computed, see docs/training.md) or 'fit' "
        "(default: least squares over the training compositions)",
    )


def add_kind_argument(parser: argparse.ArgumentParser, choices: Sequence[str] | None = None, *, default: str) -> None:
    """``--kind K`` on a command that trains (``choices``: the kinds offered, default every registered
    one): the parser then takes the shared flags and kind K's only.

    :mod:`clusterforce.cli` reads ``--kind`` (or the config file's ``kind``) before parsing and calls
    :func:`add_chosen_kind_arguments`; without a kind, ``--help`` lists the kinds.
    """
    choices = tuple(KINDS) if choices is None else tuple(choices)
    parser.add_argument(
        "--kind", choices=choices, default=default, metavar="K", help=f"model kind: {', '.join(choices)} (default: {default})"
    )
    parser.epilog = (
        "kinds: " + "; ".join(f"{name}: {get(name).SUMMARY}" for name in choices) + ". Add --kind K --help for the options of kind K."
    )
    # An abbreviated flag could otherwise pick an option of the chosen kind that another kind owns in full.
    parser.allow_abbrev = False
    parser.set_defaults(_kinds=tuple(choices))


def kind_choices(parser: argparse.ArgumentParser) -> tuple[str, ...] | None:
    """The kinds ``parser``'s ``--kind`` offers if it was made by :func:`add_kind_argument`, else None."""
    return parser.get_default("_kinds")


def add_chosen_kind_arguments(parser: argparse.ArgumentParser, kind: str, argv: Sequence[str]) -> None:
    """Add kind ``kind``'s flag group to ``parser``; ``parser.error`` (exit 2) for a flag in ``argv``
    it does not know, naming the kind that has it if one does."""
    get(kind).add_arguments(parser)
    parser.epilog = None
    known = {s for a in parser._actions for s in a.option_strings}
    for token in argv:
        if token == "--":
            break
        flag = token.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            parser.error(stray_option(flag, kind) or f"unknown option {flag} ('--kind {kind} --help' lists the options)")


@functools.cache
def kind_options(name: str) -> frozenset[str]:
    """Every option string (``--r-cut``, ``--no-map``) of kind ``name``'s flag group."""
    probe = argparse.ArgumentParser(add_help=False)
    get(name).add_arguments(probe)
    return frozenset(s for a in probe._actions for s in a.option_strings)


def stray_option(flag: str, kind: str) -> str | None:
    """Why ``flag`` is no option of kind ``kind``: "--r-cut is an option of kind dml, not dart"; None
    if no other kind has it either."""
    owners = [name for name in KINDS if name != kind and flag in kind_options(name)]
    if not owners:
        return None
    named = owners[0] if len(owners) == 1 else ", ".join(owners[:-1]) + " and " + owners[-1]
    return f"{flag} is an option of kind{'s' * (len(owners) > 1)} {named}, not {kind}"


def get(name: str) -> KindRecord | ModuleType:
    """The record of kind ``name``; ValueError naming the known kinds otherwise."""
    if name not in KINDS:
        raise ValueError(f"model kind '{name}' is not known to this clusterforce (known: {', '.join(KINDS)})")
    return importlib.import_module(KINDS[name])


def learnable() -> tuple[str, ...]:
    """The kinds ``clusterforce learn`` can grow: their estimator adds frames with ``partial_fit``."""
    return tuple(name for name in KINDS if hasattr(get(name).ESTIMATOR, "partial_fit"))


def finish(name: str, model: Any, args: argparse.Namespace) -> Any:
    """Kind ``name``'s last step after fitting (its record's ``finish``, if it has one); returns the model."""
    step = getattr(get(name), "finish", None)
    if step is not None:
        step(model, args)
    return model


def load_model(path: str | os.PathLike) -> Any:
    """Load a trained model of any kind from a ``.cfm`` file.

    Raises
    ------
    ModelFileError
        Unreadable, truncated, damaged or inconsistent file, or a kind this version cannot load.
    """
    mf = modelfile.load(path)
    if mf.kind not in KINDS:
        raise modelfile.ModelFileError(f"{mf.path}: model kind '{mf.kind}' is not known to this clusterforce (known: {', '.join(KINDS)})")
    return get(mf.kind).ESTIMATOR.from_modelfile(mf)


__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "RECOMMENDED",
    "KindRecord",
    "add_baseline_flag",
    "add_e0_flag",
    "add_kind_argument",
    "finish",
    "get",
    "learnable",
    "load_model",
    "register",
]
