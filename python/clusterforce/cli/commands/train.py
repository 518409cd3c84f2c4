"""``clusterforce train``: fit a model of some kind on reference frames and write a .cfm file."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from clusterforce.core import registry
from clusterforce.core.options import add_config_argument

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a force model on reference data",
        usage="%(prog)s [--kind KIND] [options] DATA [DATA ...] -o MODEL.cfm",
        description="Fit a model of one kind on frames with reference forces (and energies, for kinds that need them) "
        "and write it as one .cfm file. Every kind takes the options below; --kind K --help adds kind K's.",
    )
    p.add_argument(
        "data", nargs="+", metavar="DATA", help="training frames (extended XYZ or anything ASE reads; dataset:NAME for a shipped set)"
    )
    registry.add_kind_argument(p, default=registry.RECOMMENDED)
    p.add_argument("-o", "--output", metavar="MODEL.cfm", help="model file to write (required)")
    add_config_argument(p)
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the fit's random choices (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=None,
        metavar="F",
        help="hold out this fraction of the frames (of the groups, with --group-by) for validation; the metrics of "
        "both splits are logged and stored in the model file",
    )
    p.add_argument(
        "--group-by",
        default=None,
        metavar="KEY",
        help="hold out whole groups (unseen trajectories, conformers, sizes): an atoms.info key such as system or "
        "trajectory, or 'size' (number of atoms)",
    )
    p.add_argument("--metrics-json", default=None, metavar="OUT.json", help="write the train/validation metrics here")
    return p


def run(args: argparse.Namespace) -> int:
    from clusterforce.data import read_frames

    if not args.output:
        print("clusterforce train: error: no output file; give -o MODEL.cfm", file=sys.stderr)
        return 2
    try:
        frames = read_frames(args.data)
        train, valid = _split(frames, args)
        record = registry.get(args.kind)
        model = registry.finish(args.kind, record.train(train, args), args)
        if valid:
            quiet = argparse.Namespace(**{**vars(args), "plots": None})
            print(f"training split ({len(train)} frames):")
            metrics = {"train": record.evaluate(model, train, quiet)}
            print(f"validation split ({len(valid)} frames{', groups by ' + args.group_by if args.group_by else ''}):")
            metrics["validation"] = record.evaluate(model, valid, quiet)
            metrics["split"] = {"valid_fraction": args.valid_fraction, "group_by": args.group_by, "seed": args.seed,
                                "n_train": len(train), "n_valid": len(valid)}  # fmt: skip
            model.training_["validation"] = metrics
            if args.metrics_json:
                with open(args.metrics_json, "w") as fh:
                    json.dump(metrics, fh, indent=1)
        model.save(args.output)
    except ValueError as exc:
        print(f"clusterforce train: error: {exc}", file=sys.stderr)
        return 1
    logger.info("wrote %s (%s model, %d frames)", args.output, args.kind, len(train))
    return 0


def _split(frames, args: argparse.Namespace) -> tuple[list, list]:
    """(train, validation) frames as --valid-fraction and --group-by ask; no validation without them."""
    from clusterforce.data.split import by_size, group_split, train_test_split_frames

    fraction = args.valid_fraction
    if fraction is None:
        if args.group_by or args.metrics_json:
            raise ValueError("--group-by and --metrics-json need --valid-fraction")
        return list(frames), []
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"--valid-fraction must be in (0, 1), got {fraction}")
    if not args.group_by:
        return train_test_split_frames(frames, test_size=fraction, seed=args.seed)
    key = by_size if args.group_by == "size" else args.group_by
    groups = [key(a) if callable(key) else a.info.get(key) for a in frames]
    if any(g is None for g in groups):
        missing = next(i for i, g in enumerate(groups) if g is None)
        raise ValueError(
            f"--group-by {args.group_by}: frame {missing} has no info['{args.group_by}']; name a key every frame has, or 'size'"
        )
    unique = sorted(set(groups), key=str)
    if len(unique) < 2:
        raise ValueError(f"--group-by {args.group_by}: all frames are in one group ({unique[0]!r}); nothing to hold out")
    # Whole groups, in a seeded random order, until the fraction of frames is reached.
    order = [unique[i] for i in np.random.default_rng(args.seed).permutation(len(unique))]
    held, n_held = [], 0
    for g in order[:-1]:
        if n_held >= fraction * len(frames):
            break
        held.append(g)
        n_held += groups.count(g)
    logger.info("validation groups (%s): %s", args.group_by, held)
    return group_split(frames, group=key, test_groups=held)
