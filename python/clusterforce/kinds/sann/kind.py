"""The ``sann`` kind's record (see :mod:`clusterforce.core.registry`): ``clusterforce train`` flags,
training from them, and evaluation (energy and force errors, as the gap kind reports them)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

from ase import Atoms

from clusterforce.core.options import add_parameter_flags, parse_assignments
from clusterforce.core.registry import add_baseline_flag, add_e0_flag
from clusterforce.data.metrics import collect_predictions, energy_force_metrics, print_table
from clusterforce.kinds.composition import parse_e0_flag
from clusterforce.kinds.sann.model import SANNModel

ESTIMATOR = SANNModel
SUMMARY = "single neural network for all species: MEAD energies, forces from a decoupled dummy energy (Kalman filter)"

logger = logging.getLogger(__name__)

_FLAG_HELP = {
    "r_cut": "descriptor cutoff, Angstrom",
    "l_max": "highest l of the power spectrum",
    "optimizer": "global extended Kalman filter (the paper's) or Adam",
    "epochs": "passes over the training frames",
    "force_rows": "force components per Kalman update",
    "sigma_energy": "energy error scale, eV/atom",
    "sigma_force": "force error scale, eV/Angstrom",
    "learning_rate": "Adam's learning rate",
    "batch_size": "frames per Adam step",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sann flags (one argument group) to a ``train`` parser."""
    g = parser.add_argument_group("sann options (single network, decoupled forces)")
    defaults = SANNModel().get_params()
    add_parameter_flags(g, {name: defaults[name] for name in _FLAG_HELP}, _FLAG_HELP, choices={"optimizer": ("kalman", "adam")})
    add_baseline_flag(g, default=defaults["baseline"])
    add_e0_flag(g)
    g.add_argument(
        "--hidden",
        type=int,
        nargs=2,
        default=list(defaults["hidden"]),
        metavar="N",
        help="neurons of the two sigmoid layers (default: %(default)s)",
    )
    g.add_argument(
        "--z-eff", nargs="+", metavar="EL=Z", help="effective nuclear charges for w_beta (default: Clementi-Raimondi where known)"
    )


def train(frames: Sequence[Atoms], args: argparse.Namespace) -> SANNModel:
    """Fit a sann model on ``frames`` with the hyperparameters in ``args``; returns the model."""
    model = SANNModel(
        **{name: getattr(args, name) for name in _FLAG_HELP},
        hidden=tuple(args.hidden),
        z_eff=parse_assignments(args.z_eff, usage="--z-eff expects ELEMENT=VALUE items such as Au=10.94"),
        baseline=getattr(args, "baseline", None) is not False,
        e0=parse_e0_flag(args.e0),
        random_state=args.seed,
        progress=not args.quiet,
    )
    logger.info("sann hyperparameters: %s", json.dumps(model.get_params(), default=str))
    return model.fit(frames)


def evaluate(model: SANNModel, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]:
    """Energy (meV/atom) and force (eV/Angstrom) RMSE / MAE, printed and returned."""
    report = {"kind": model.kind, **energy_force_metrics(*collect_predictions(model, frames, progress=not getattr(args, "quiet", False)))}
    print_table(report)
    return report
