"""The ``dart`` kind's record (see :mod:`clusterforce.core.registry`): ``clusterforce train`` flags,
training from them, and evaluation (energy errors, in kcal/mol as the paper reports them, and
the rank correlation of predicted and reference energies within each cluster size)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from scipy.stats import spearmanr

from clusterforce.core.options import add_parameter_flags
from clusterforce.core.registry import add_e0_flag
from clusterforce.data import get_energy, validate_frames
from clusterforce.data.metrics import print_table
from clusterforce.kinds.composition import parse_e0_flag
from clusterforce.kinds.dart.model import KCAL_PER_MOL_PER_EV, DARTModel

ESTIMATOR = DARTModel
SUMMARY = "DART network on topological atomic descriptors (TAD): cluster energies for ranking and screening"

logger = logging.getLogger(__name__)

_FLAG_HELP = {
    "r_J": "J-shell boundary, Angstrom (default: first minimum of the data's radial distribution)",
    "r_K": "K-shell boundary, Angstrom (default: its second minimum)",
    "width": "width of the smooth shell boundaries, Angstrom",
    "feature_width": "output width of the atom networks",
    "learning_rate": "Adam's initial learning rate",
    "batch_size": "frames per batch",
    "max_epochs": "most epochs",
    "patience": "epochs without a better validation MAE before the learning rate drops 10x",
    "weight_decay": "decoupled (AdamW) decay of the weights per step, times the learning rate",
    "validation": "frames held out to pick the best epoch: random ones, or whole sizes from the largest",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dart flags (one argument group) to a ``train`` parser."""
    g = parser.add_argument_group("dart options (TAD + DART network, energies only)")
    for name in ("r_J", "r_K"):
        g.add_argument(f"--{name.lower().replace('_', '-')}", dest=name, type=float, metavar="ANGSTROM", help=_FLAG_HELP[name])
    defaults = DARTModel().get_params()
    add_parameter_flags(
        g,
        {name: defaults[name] for name in _FLAG_HELP if name not in ("r_J", "r_K")},
        _FLAG_HELP,
        choices={"validation": ("random", "largest")},
    )
    add_e0_flag(g)


def train(frames: Sequence[Atoms], args: argparse.Namespace) -> DARTModel:
    """Fit a dart model on ``frames`` with the hyperparameters in ``args``; returns the model."""
    model = DARTModel(
        **{name: getattr(args, name) for name in _FLAG_HELP}, e0=parse_e0_flag(args.e0), random_state=args.seed, progress=not args.quiet
    )
    logger.info("dart hyperparameters: %s", json.dumps(model.get_params(), default=str))
    return model.fit(frames)


def energy_report(model: Any, frames: Sequence[Atoms]) -> dict[str, Any]:
    """Energy errors of any model with energies: MAE / RMSE per frame (eV and kcal/mol) and per
    atom (meV/atom), and per cluster size the Spearman rank correlation of predicted and
    reference energies (what screening needs) with the size's MAE."""
    validate_frames(frames, need_energy=True, need_forces=False)
    pred = np.array([model.predict(a)["energy"] for a in frames])
    ref = np.array([get_energy(a) for a in frames])
    n = np.array([len(a) for a in frames])
    err = pred - ref
    report: dict[str, Any] = {
        "kind": model.kind,
        "n_frames": len(frames),
        "energy_mae_eV": float(np.mean(np.abs(err))),
        "energy_mae_kcal_per_mol": float(np.mean(np.abs(err)) * KCAL_PER_MOL_PER_EV),
        "energy_rmse_kcal_per_mol": float(np.sqrt(np.mean(err**2)) * KCAL_PER_MOL_PER_EV),
        "energy_rmse_mev_per_atom": float(1e3 * np.sqrt(np.mean((err / n) ** 2))),
    }
    sizes = {}
    for size in sorted(set(n.tolist())):
        sel = n == size
        rho = float(spearmanr(pred[sel], ref[sel])[0]) if sel.sum() > 2 else None
        sizes[str(size)] = {
            "frames": int(sel.sum()),
            "spearman": rho,
            "mae_kcal_per_mol": float(np.mean(np.abs(err[sel])) * KCAL_PER_MOL_PER_EV),
        }
    report["by_size"] = sizes
    return report


def evaluate(model: DARTModel, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]:
    """Print and return :func:`energy_report`."""
    report = energy_report(model, frames)
    print_table({k: v for k, v in report.items() if k != "by_size"})
    print("\n| atoms | frames | Spearman rho | MAE (kcal/mol) |\n|---:|---:|---:|---:|")
    for size, row in report["by_size"].items():
        rho = "-" if row["spearman"] is None else f"{row['spearman']:.3f}"
        print(f"| {size} | {row['frames']} | {rho} | {row['mae_kcal_per_mol']:.2f} |")
    return report
