"""The ``morse`` kind's record (see :mod:`clusterforce.core.registry`): ``clusterforce train --kind morse``
flags generated from the estimator's defaults, training from them, and the energy and force errors."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ase import Atoms
from clusterforce.core.options import add_parameter_flags
from clusterforce.data.metrics import collect_predictions, energy_force_metrics, print_table

from morse_kind.model import MorseModel

ESTIMATOR = MorseModel
SUMMARY = "test kind: a pair potential per element pair with a cosine cutoff, fitted by least squares"

_FLAG_HELP = {
    "r_cut": "cutoff radius (Angstrom)",
    "alpha": "inverse width of the exponentials (1/Angstrom)",
    "r0": "reference distance of the exponentials (Angstrom)",
    "force_weight": "weight of a force component (eV/Angstrom) against a per-atom energy (eV)",
    "ridge": "regularisation of the amplitudes",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the morse flags (one argument group) to a ``train`` parser."""
    add_parameter_flags(parser.add_argument_group("morse options (test kind)"), MorseModel().get_params(), _FLAG_HELP)


def train(frames: Sequence[Atoms], args: argparse.Namespace) -> MorseModel:
    """Fit a morse model on ``frames`` with the hyperparameters in ``args``."""
    return MorseModel(**{name: getattr(args, name) for name in _FLAG_HELP}).fit(frames)


def evaluate(model: MorseModel, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]:
    """Print and return the energy (meV/atom) and force (eV/Angstrom) errors on ``frames``."""
    m = energy_force_metrics(*collect_predictions(model, frames, progress=False))
    report = {"kind": "morse", "n_frames": len(frames)}
    report.update({key: m[key] for key in ("energy_rmse_mev_per_atom", "energy_mae_mev_per_atom", "force_rmse", "force_mae")})
    print_table(report)
    return report
