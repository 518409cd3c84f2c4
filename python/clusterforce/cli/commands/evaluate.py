"""``clusterforce evaluate``: score a model file on reference frames (tables, JSON, plots)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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


def run(args: argparse.Namespace) -> int:
    from clusterforce.core import registry
    from clusterforce.data import DataError, frame_label, read_frames
    from clusterforce.data.validate import check_structure

    try:
        frames = read_frames(args.data)
        for position, atoms in enumerate(frames):
            check_structure(atoms, frame_label(atoms, position))
    except DataError as exc:  # a frame no model can predict: a NaN position or two atoms on top of each other
        print(f"clusterforce evaluate: error: {exc}", file=sys.stderr)
        return 2
    try:
        model = registry.load_model(args.model)
        report = registry.get(model.kind).evaluate(model, frames, args)
    except ValueError as exc:
        print(f"clusterforce evaluate: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
