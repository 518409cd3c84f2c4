"""``clusterforce optimize MODEL.cfm START.xyz``: force-only BFGS with a trained model."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys

from ase.io import write

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
        action=argparse.BooleanOptionalAction,
        default=True,
        help="without --reference: stop when the model flags an atom as extrapolating (results['extrapolating']: "
        "surroundings unlike its training data, such as a pair closer than any there). On by default; "
        "--no-stop-when-extrapolating runs on regardless",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=20,
        help="without --reference: stop when the RMS force has not fallen below its lowest value for N steps (a "
        "force-only model can descend forever along non-conservative forces; 0 = never). After either stop the "
        "structure with the lowest RMS force is kept (default: 20)",
    )
    hybrid = p.add_argument_group(
        "hybrid optimisation",
        "with --reference, model steps are checked by reference single points: a segment that raises the reference "
        "energy is rejected and the trust radius halved, and model forces are corrected by the last reference forces",
    )
    hybrid.add_argument("--reference", default=None, help="reference calculator: gfn1-xtb, emt, a model file (.cfm) or module:factory")
    hybrid.add_argument("--check-every", type=int, default=8, help="reference check after at most this many model steps")
    hybrid.add_argument("--trust-radius", type=float, default=0.3, help="initial largest move of an atom between checks, Angstrom")
    hybrid.add_argument(
        "--uncertainty-threshold",
        type=float,
        default=None,
        help="also check as soon as an atom's model uncertainty exceeds this (the model's uncertainty units)",
    )
    hybrid.add_argument("--reference-frames", default=None, help="write every reference-labelled structure here (extxyz, for training)")
    p.add_argument("--log", default="-", help="step log file ('-' = stdout)")
    p.add_argument("--json", default=None, help="write a summary (converged, steps, fmax per step, resets) as JSON")
    p.add_argument("--quiet", action="store_true", help="no step log on stdout")
    return p


def run(args: argparse.Namespace) -> int:
    from ase.constraints import FixAtoms

    from clusterforce.core.calculator import Calculator
    from clusterforce.data import DataError
    from clusterforce.data.validate import read_structure
    from clusterforce.workflows.optimize import ForceOnlyOptimizer, parse_partwise

    try:
        atoms = read_structure(args.start, args.index)
        calc = Calculator(args.model)
        classes = _class_supplier(args.model, calc.model, atoms)
        fixed = parse_partwise(f"{args.fix}:1", atoms, classes)[0].indices if args.fix else None
        parts = parse_partwise(args.partwise, atoms, classes) if args.partwise else None
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"clusterforce optimize: error: {exc}", file=sys.stderr)
        return 2
    atoms.calc = calc
    if fixed is not None:
        atoms.set_constraint(FixAtoms(indices=fixed))
        log.info("fixed %d atoms (%s)", len(fixed), args.fix)
    logfile = None if (args.quiet and args.log == "-") else args.log
    if args.reference:
        return _run_hybrid(args, atoms, calc, logfile)
    optimizer = ForceOnlyOptimizer(
        atoms,
        maxstep=args.maxstep,
        reset_every=args.reset_every,
        parts=parts,
        trajectory=args.output,
        logfile=logfile,
        stop_when_extrapolating=args.stop_when_extrapolating,
        patience=args.patience or None,
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
        "best_step": result.best_step,
        "trajectory": args.output,
        "reference_calls": 0,
        "reference_energies": [],
    }
    _write_json(args.json, summary)
    print(
        f"{'converged' if result.converged else 'not converged'} after {result.nsteps} steps; "
        f"max force {result.fmax[-1]:.4f} eV/A; {len(result.resets)} Hessian resets; trajectory {args.output}"
        + (
            f"; stopped at {result.stopped}; kept the structure of step {result.best_step} (lowest RMS force). --reference NAME "
            "checks such steps with a reference; --no-stop-when-extrapolating and --patience 0 run on"
            if result.stopped
            else ""
        )
    )
    return 0


def _class_supplier(path: str, model, atoms):
    """Per-atom class names for partwise groups such as ``core`` and ``outer``, asked of the model
    (its ``predict`` output ``classes``) only when a group needs them."""

    @functools.cache
    def classes() -> list[str]:
        predicted = model.predict(atoms).get("classes")
        if predicted is None:
            raise ValueError(
                f"{path}: this model defines no atom classes (core, outer, Au_unit ...); name the groups by element or by atom "
                "indices such as 0-11+20"
            )
        return list(predicted)

    return classes


def _write_json(path: str | None, summary: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(summary, fh, indent=1)


def _run_hybrid(args: argparse.Namespace, atoms, calc, logfile) -> int:
    from clusterforce.references import resolve
    from clusterforce.workflows.hybrid import HybridOptimizer

    if args.partwise or args.reset_every:
        raise SystemExit("clusterforce optimize: --partwise and --reset-every apply to model-only runs, not with --reference")
    reference = resolve(args.reference, atoms)
    optimizer = HybridOptimizer(
        atoms,
        calc,
        reference,
        maxstep=args.maxstep,
        check_every=args.check_every,
        trust_radius=args.trust_radius,
        uncertainty_threshold=args.uncertainty_threshold,
        trajectory=args.output,
        logfile=logfile,
    )
    result = optimizer.run(fmax=args.fmax, steps=args.steps)
    if args.final:
        write(args.final, atoms)
    if args.reference_frames:
        write(args.reference_frames, result.frames, format="extxyz")
    summary = {
        "converged": result.converged,
        "nsteps": result.model_steps,
        "reference": args.reference,
        "reference_calls": result.reference_calls,
        "reference_energies": result.reference_energies,
        "accepted": result.accepted,
        "reference_fmax": result.reference_fmax,
        "start_energy": result.start_energy,
        "final_energy": result.final_energy,
        "stopped": result.stopped,
        "trajectory": args.output,
    }
    _write_json(args.json, summary)
    print(
        f"hybrid optimisation {'converged' if result.converged else 'not converged'}: {result.model_steps} model steps, "
        f"{result.reference_calls} {args.reference} calls ({sum(result.accepted)} accepted); reference energy "
        f"{result.start_energy:.4f} -> {result.final_energy:.4f} eV ({result.final_energy - result.start_energy:+.4f} eV)"
        + (f"; {result.stopped}" if result.stopped else "")
    )
    return 0
