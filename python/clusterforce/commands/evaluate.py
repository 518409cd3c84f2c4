"""``clusterforce evaluate``: score a model file on reference frames (tables, JSON, plots)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="score a model on reference data",
        description="Predict reference frames with a trained model and report its errors: for dml "
        "models per-class norm RMSE, |F|²-weighted and plain mean angles and the force RMSE; for gap "
        "models energy (meV/atom) and force (eV/Angstrom) RMSE and MAE.",
    )
    p.add_argument("model", metavar="MODEL.cfm", help="model file written by 'clusterforce train'")
    p.add_argument("data", nargs="+", metavar="DATA", help="frames with reference forces")
    p.add_argument("--plots", metavar="DIR", help="write plots here (dml: norms.png, angles.png; gap: energy_parity.png, force_parity.png)")
    p.add_argument("--json", metavar="OUT.json", help="write the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _evaluate_dml(model, frames, args: argparse.Namespace) -> dict:
    """Per-class norm and angle errors of a force model; density plots like the paper's FIG. 3/4."""
    from ..data import validate_frames
    from ..metrics import angles_deg, evaluate_model, markdown_table

    validate_frames(frames, need_energy=False, need_forces=True)
    metrics, arrays = evaluate_model(model, frames, progress=not args.quiet)
    print(markdown_table(metrics))
    if args.plots:
        from ..plots import plot_angle_vs_norm, plot_norm_parity

        out = Path(args.plots)
        out.mkdir(parents=True, exist_ok=True)
        ref_norms = np.linalg.norm(arrays["reference"], axis=1)
        plot_norm_parity(ref_norms, np.linalg.norm(arrays["forces"], axis=1), arrays["classes"], out / "norms.png")
        plot_angle_vs_norm(ref_norms, angles_deg(arrays["directions"], arrays["reference"]), arrays["classes"], out / "angles.png")
    return {"kind": model.kind, "classes": metrics["classes"], "force_rmse": metrics["force_rmse"], "n_frames": metrics["n_frames"]}


def _evaluate_gap(model, frames, args: argparse.Namespace) -> dict:
    """Energy (meV/atom) and force (eV/Angstrom) errors of an energy model; parity plots."""
    from ..gap.cli import evaluate_gap

    report = evaluate_gap(model, frames, args)
    print("| metric | value |\n|---|---:|")
    for key, value in report.items():
        if key != "kind":
            print(f"| {key} | {value if value is None or isinstance(value, int) else f'{value:.4g}'} |")
    return report


#: Model kind -> evaluator(model, frames, args) printing a table and returning the JSON report.
EVALUATORS = {"dml": _evaluate_dml, "gap": _evaluate_gap}


def run(args: argparse.Namespace) -> int:
    from ..data import read_frames
    from ..models import load_model

    try:
        model = load_model(args.model)
        frames = read_frames(args.data)
        report = EVALUATORS[model.kind](model, frames, args)
    except ValueError as exc:
        print(f"clusterforce evaluate: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
