"""``clusterforce optimize MODEL.cfm START.xyz``: force-only BFGS with a trained model."""

from __future__ import annotations

import argparse
import json
import logging

from ase.io import read, write

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "optimize",
        help="optimise a structure with a trained model (force-only BFGS, partwise turns, Hessian resets)",
        description="Structure optimisation driven by model forces: BFGS with a maximum step, optional "
        "Hessian resets and partwise optimisation in turns (OAMLM paper, sections II D and III D).",
    )
    p.add_argument("model", help="trained model file (.cfm)")
    p.add_argument("start", help="start structure (any format ASE reads; the last frame is used unless --index)")
    p.add_argument("--index", default="-1", help="frame of START to optimise (ASE index syntax, default: last)")
    p.add_argument("-o", "--output", default="optimized.traj", help="trajectory of every step (ASE .traj)")
    p.add_argument("--final", help="also write the final structure here (extxyz, xyz, ...)")
    p.add_argument("--maxstep", type=float, default=0.1, help="largest displacement of an atom per step, Angstrom (paper: 0.05-0.2)")
    p.add_argument("--reset-every", type=int, default=None, help="reset the BFGS Hessian every N steps (paper: 36)")
    p.add_argument(
        "--partwise",
        default=None,
        help="groups optimised in turns, GROUP:STEPS,... e.g. outer:24,core:12 (groups: core, outer, all, "
        "an atom class or element, or indices like 0-11+20)",
    )
    p.add_argument("--fix", default=None, help="atoms held fixed (same group syntax, e.g. core or 0-22)")
    p.add_argument("--fmax", type=float, default=0.05, help="converged when every free atom's force is below this, eV/Angstrom")
    p.add_argument("--steps", type=int, default=200, help="maximum number of BFGS steps")
    p.add_argument(
        "--stop-when-extrapolating",
        action="store_true",
        help="stop when an atom comes closer to a neighbour than any pair of those elements in the training data",
    )
    p.add_argument("--log", default="-", help="step log file ('-' = stdout)")
    p.add_argument("--json", default=None, help="write a summary (converged, steps, fmax per step, resets) as JSON")
    p.add_argument("--quiet", action="store_true", help="no step log on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    from ase.constraints import FixAtoms

    from ..calculator import Calculator
    from ..dml.environments import classify
    from ..optimize import ForceOnlyOptimizer, parse_partwise

    calc = Calculator(args.model)
    try:
        atoms = read(args.start, index=args.index)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise SystemExit(f"clusterforce optimize: cannot read {args.start}: {exc}") from None
    atoms.calc = calc
    classes = list(classify(atoms))
    if args.fix:
        fixed = parse_partwise(f"{args.fix}:1", atoms, classes)[0].indices
        atoms.set_constraint(FixAtoms(indices=fixed))
        log.info("fixed %d atoms (%s)", len(fixed), args.fix)
    parts = parse_partwise(args.partwise, atoms, classes) if args.partwise else None
    logfile = None if (args.quiet and args.log == "-") else args.log
    optimizer = ForceOnlyOptimizer(
        atoms,
        maxstep=args.maxstep,
        reset_every=args.reset_every,
        parts=parts,
        trajectory=args.output,
        logfile=logfile,
        stop_when_extrapolating=args.stop_when_extrapolating,
    )
    result = optimizer.run(fmax=args.fmax, steps=args.steps)
    if args.final:
        write(args.final, atoms)
    summary = {
        "converged": result.converged,
        "nsteps": result.nsteps,
        "final_fmax": result.fmax[-1],
        "fmax": result.fmax,
        "parts": result.parts,
        "resets": result.resets,
        "stopped": result.stopped,
        "trajectory": args.output,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=1)
    print(
        f"{'converged' if result.converged else 'not converged'} after {result.nsteps} steps; "
        f"max force {result.fmax[-1]:.4f} eV/A; {len(result.resets)} Hessian resets; trajectory {args.output}"
        + (f"; stopped at {result.stopped}" if result.stopped else "")
    )
    return 0
