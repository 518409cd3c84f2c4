"""``clusterforce train``: fit a model of some kind on reference frames and write a .cfm file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from ase import Atoms

from ..cli import parse_assignments
from ..gap.cli import add_gap_arguments, train_gap

logger = logging.getLogger(__name__)


def _sigma2(values: Any) -> dict[str, float] | None:
    """``--sigma2 Au_unit=0.25 S=0.5`` (or a YAML mapping) to a dict."""
    return parse_assignments(values, usage="--sigma2 expects CLASS=VALUE items such as Au_unit=0.25")


def _train_dml(frames: list[Atoms], args: argparse.Namespace):
    from ..models.dml import DMLModel

    model = DMLModel(
        r_cut=args.r_cut,
        n_max=args.n_max,
        l_max=args.l_max,
        sigma=args.sigma,
        n_references_norm=args.n_references_norm,
        n_references_direction=args.n_references_direction,
        sigma2=_sigma2(args.sigma2),
        loss=args.loss,
        random_state=args.seed,
        progress=not args.quiet,
    )
    logger.info("dml hyperparameters: %s", json.dumps(model.get_params(), default=str))
    return model.fit(frames)


#: Model kind -> trainer(frames, args) returning a fitted model with ``save(path)``.
TRAINERS: dict[str, Callable[[list[Atoms], argparse.Namespace], Any]] = {"dml": _train_dml, "gap": train_gap}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a force model on reference data",
        description="Train a model of the given kind on frames with reference forces (and energies, "
        "for kinds that need them) and write it as one .cfm file.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="training frames (extended XYZ or anything ASE reads)")
    p.add_argument("--kind", choices=sorted(TRAINERS), default="dml", help="model kind (default: dml)")
    p.add_argument("-o", "--output", metavar="MODEL.cfm", help="model file to write (required)")
    p.add_argument("--config", metavar="CFG.yaml", help="YAML file whose keys are flag names (flags override it)")
    p.add_argument("--seed", type=int, default=0, help="random seed for reference selection (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    dml = p.add_argument_group("dml options (EMLM norms + OAMLM directions)")
    dml.add_argument("--n-references-norm", type=int, default=5000, help="EMLM references per class (default: 5000)")
    dml.add_argument("--n-references-direction", type=int, default=2500, help="OAMLM references per class (default: 2500)")
    dml.add_argument("--r-cut", type=float, default=4.0, help="SOAP cutoff in Angstrom (default: 4.0)")
    dml.add_argument("--n-max", type=int, default=7, help="SOAP radial order (default: 7)")
    dml.add_argument("--l-max", type=int, default=4, help="SOAP angular order (default: 4)")
    dml.add_argument("--sigma", type=float, default=0.25, help="SOAP Gaussian width in Angstrom (default: 0.25)")
    dml.add_argument("--sigma2", nargs="+", metavar="CLASS=VALUE", help="OAMLM sigma2 per class (default: Au_unit=0.25, others 0.5)")
    dml.add_argument("--loss", choices=("analytic", "numeric"), default="analytic", help="OAMLM direction loss (default: analytic)")
    add_gap_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..data import read_frames

    if not args.output:
        print("clusterforce train: error: no output file; give -o MODEL.cfm", file=sys.stderr)
        return 2
    logger.info("clusterforce %s train: %s", __version__, json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")}, default=str, sort_keys=True))
    try:
        frames = read_frames(args.data)
        model = TRAINERS[args.kind](frames, args)
        model.save(args.output)
    except ValueError as exc:
        print(f"clusterforce train: error: {exc}", file=sys.stderr)
        return 1
    logger.info("wrote %s (%s model, %d frames)", args.output, args.kind, len(frames))
    return 0
