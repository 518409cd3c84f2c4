"""``clusterforce train``: fit a model of some kind on reference frames and write a .cfm file."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .. import kinds
from .._version import __version__

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    listing = "; ".join(f"{name}: {kinds.get(name).SUMMARY}" for name in kinds.KINDS)
    p = subparsers.add_parser(
        "train",
        help="train a force model on reference data",
        description="Train a model of the given kind on frames with reference forces (and energies, "
        f"for kinds that need them) and write it as one .cfm file. Kinds: {listing}.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="training frames (extended XYZ or anything ASE reads; dataset:NAME for a shipped set)")
    p.add_argument("--kind", choices=sorted(kinds.KINDS), default="dml", help="model kind (default: dml)")
    p.add_argument("-o", "--output", metavar="MODEL.cfm", help="model file to write (required)")
    p.add_argument("--config", metavar="CFG.yaml", help="YAML file whose keys are flag names (flags override it)")
    p.add_argument("--seed", type=int, default=0, help="random seed for reference/sparse-point selection (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    for name in kinds.KINDS:
        kinds.get(name).add_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..data import read_frames

    if not args.output:
        print("clusterforce train: error: no output file; give -o MODEL.cfm", file=sys.stderr)
        return 2
    logger.info("clusterforce %s train: %s", __version__, json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")}, default=str, sort_keys=True))
    try:
        frames = read_frames(args.data)
        model = kinds.get(args.kind).train(frames, args)
        model.save(args.output)
    except ValueError as exc:
        print(f"clusterforce train: error: {exc}", file=sys.stderr)
        return 1
    logger.info("wrote %s (%s model, %d frames)", args.output, args.kind, len(frames))
    return 0
