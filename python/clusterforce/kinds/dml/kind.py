"""The ``dml`` kind's record (see :mod:`clusterforce.core.registry`): its ``clusterforce train`` flags,
training from those flags, and evaluation (per-class table and the paper's FIG. 3/4 plots).

The flags are generated from :class:`DMLModel`'s parameters; every flag may also come from
``--config dml.yaml`` (keys = flag names).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from clusterforce.core.options import add_parameter_flags, parse_assignments
from clusterforce.core.registry import add_baseline_flag
from clusterforce.data import validate_frames
from clusterforce.kinds.dml.metrics import angles_deg, evaluate_model, markdown_table
from clusterforce.kinds.dml.model import LOSSES, DMLModel
from clusterforce.kinds.dml.plots import plot_angle_vs_norm, plot_norm_parity

ESTIMATOR = DMLModel
SUMMARY = "distance-based learning on SOAP: EMLM force norms + OAMLM force directions, forces only"

logger = logging.getLogger(__name__)

_FLAG_HELP = {
    "r_cut": "SOAP cutoff radius in Angstrom",
    "n_max": "SOAP radial order",
    "l_max": "SOAP angular order",
    "sigma": "SOAP Gaussian width in Angstrom",
    "n_references_norm": "EMLM references per class",
    "n_references_direction": "OAMLM references per class",
    "loss": "OAMLM direction loss",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dml flags (one argument group) to a ``train`` parser."""
    g = parser.add_argument_group("dml options (EMLM norms + OAMLM directions)")
    defaults = DMLModel().get_params()
    add_parameter_flags(g, {name: defaults[name] for name in _FLAG_HELP}, _FLAG_HELP, choices={"loss": LOSSES})
    g.add_argument("--sigma2", nargs="+", metavar="CLASS=VALUE", help="OAMLM sigma2 per class (default: 0.5 Angstrom for every class)")
    add_baseline_flag(g, default=defaults["baseline"])


def train(frames: Sequence[Atoms], args: argparse.Namespace) -> DMLModel:
    """Fit a dml model on ``frames`` with the hyperparameters in ``args``; returns the model."""
    model = DMLModel(
        **{name: getattr(args, name) for name in _FLAG_HELP},
        sigma2=parse_assignments(args.sigma2, usage="--sigma2 expects CLASS=VALUE items such as Au_unit=0.25"),
        baseline=getattr(args, "baseline", None) is not False,
        random_state=args.seed,
        progress=not args.quiet,
    )
    logger.info("dml hyperparameters: %s", json.dumps(model.get_params(), default=str))
    return model.fit(frames)


def evaluate(model: DMLModel, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]:
    """Per-class norm and angle errors of a force model, printed as a table; density plots
    like the paper's FIG. 3/4 in ``args.plots`` (``norms.png``, ``angles.png``) if given."""
    validate_frames(frames, need_energy=False, need_forces=True)
    metrics, arrays = evaluate_model(model, frames, progress=not getattr(args, "quiet", False))
    print(markdown_table(metrics))
    if getattr(args, "plots", None):
        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        ref_norms = np.linalg.norm(arrays["reference"], axis=1)
        plot_norm_parity(ref_norms, np.linalg.norm(arrays["forces"], axis=1), arrays["classes"], out / "norms.png")
        plot_angle_vs_norm(ref_norms, angles_deg(arrays["directions"], arrays["reference"]), arrays["classes"], out / "angles.png")
    return {"kind": model.kind, "classes": metrics["classes"], "force_rmse": metrics["force_rmse"], "n_frames": metrics["n_frames"]}
