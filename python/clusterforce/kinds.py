"""The model kinds: one record per kind, and the loader for model files of every kind.

A kind is a subpackage (``clusterforce/dml``, ``clusterforce/gap``) whose ``kind`` module is its
record in this registry. The record holds everything the command line and the loader need of
it, so adding a kind is one new subpackage and one line in :data:`KINDS`:

``ESTIMATOR``
    The estimator class (scikit-learn style ``fit``/``predict``/``save``, and
    ``from_modelfile(ModelFile)``).
``SUMMARY``
    One line for ``--help``.
``add_arguments(parser)``
    Adds the kind's ``clusterforce train`` flags as one argument group.
``train(frames, args)``
    Builds the estimator from the parsed flags, fits it on the frames and returns it.
``evaluate(model, frames, args)``
    Prints the kind's error table, writes plots to ``args.plots`` if given, and returns the
    JSON-serialisable report ``clusterforce evaluate --json`` writes.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

from ase import Atoms

from . import modelfile

#: Kind name -> module holding its record.
KINDS: dict[str, str] = {
    "dml": "clusterforce.dml.kind",
    "gap": "clusterforce.gap.kind",
    "dart": "clusterforce.dart.kind",
    "sann": "clusterforce.sann.kind",
}


class KindRecord(Protocol):
    """What a kind's ``kind`` module provides (see the module docstring)."""

    ESTIMATOR: type
    SUMMARY: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def train(self, frames: Sequence[Atoms], args: argparse.Namespace) -> Any: ...

    def evaluate(self, model: Any, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]: ...


def add_baseline_flag(parser) -> None:
    """``--baseline/--no-baseline``, shared by every kind (default: on for dml, gap and sann; dart has none)."""
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="repulsive pair wall 8 %% below the shortest training distance of each element pair, zero on the training "
        "data, stored in the model file (default: on for dml, gap and sann; dart has none)",
    )


def get(name: str) -> KindRecord | ModuleType:
    """The record of kind ``name``; ValueError naming the known kinds otherwise."""
    if name not in KINDS:
        raise ValueError(f"model kind '{name}' is not known to this clusterforce (known: {', '.join(KINDS)})")
    return importlib.import_module(KINDS[name])


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


__all__ = ["KINDS", "KindRecord", "get", "load_model"]
