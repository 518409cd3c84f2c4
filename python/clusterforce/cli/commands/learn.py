"""``clusterforce learn``: on-the-fly active learning with any reference calculator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from clusterforce.core import registry
    from clusterforce.core.options import add_config_argument
    from clusterforce.workflows.datagen.builders import SYSTEMS
    from clusterforce.workflows.learn import LearnSettings

    d = LearnSettings()
    p = sub.add_parser(
        "learn",
        help="grow a model on the fly: explore with it, label uncertain structures with the reference, refit",
        description="Langevin MD over a temperature ladder plus quenches and basin hops, with the model; where its per-atom uncertainty "
        "passes the threshold the reference labels the structure and the model is updated (partial_fit: each kind its own "
        "way, see 'clusterforce train --kind K --help'). Resumable: rerun the same command after an interruption.",
    )
    registry.add_kind_argument(p, registry.learnable(), default=registry.RECOMMENDED)
    p.add_argument(
        "--reference", required=True,
        help="gfn1-xtb, emt, a model file (.cfm) or module:factory; 'none' (with --propose) for a reference that cannot run here",
    )  # fmt: skip
    p.add_argument("--init", nargs="+", required=True, help="initial training frames (files or dataset:NAME)")
    p.add_argument("--system", choices=SYSTEMS, help="builder of start structures (with --n)")
    p.add_argument("--n", type=int, nargs="+", help="sizes for --system")
    p.add_argument(
        "--shape",
        default="auto",
        help="metal cluster shape for --system na/ga/agau: icosahedral, decahedral, random, or auto (icosahedral "
        "where the size allows, else random)",
    )
    p.add_argument("--start", help="start structures file (every frame is a start)")
    p.add_argument(
        "--temperatures", type=float, nargs="+", default=None,
        help="MD temperatures, K (default: those the --init frames were sampled at, info temperature_K as datagen writes; "
        f"else {' '.join(f'{t:g}' for t in d.temperatures)})",
    )  # fmt: skip
    p.add_argument("--steps-per-temperature", type=int, default=d.steps_per_temperature)
    p.add_argument("--timestep", type=float, default=d.timestep, help="fs")
    p.add_argument("--check-every", type=int, default=d.check_every, help="MD steps between uncertainty checks")
    p.add_argument("--relative-threshold", type=float, default=d.relative_threshold,
                   help="call the reference above this times the 99th percentile of the uncertainty on the init frames")  # fmt: skip
    p.add_argument("--threshold", type=float, default=None, help="absolute threshold instead (the kind's uncertainty units)")
    p.add_argument(
        "--hops", type=int, default=d.hops,
        help="basin-hopping steps with the model after each start's ladder, uncertain minima labelled (models with energies; 0: none)",
    )  # fmt: skip
    p.add_argument("--hop-step", type=float, default=d.hop_step, help="basin hopping: largest displacement per atom, Angstrom")
    p.add_argument("--hop-kt", type=float, default=d.hop_kt, help="basin hopping: Metropolis temperature, eV")
    p.add_argument(
        "--fill-budget", action=argparse.BooleanOptionalAction, default=d.fill_budget,
        help="also label the structures most uncertain among those seen so far, at the rate that spends --max-calls over the "
        "schedule (never below the init frames' median uncertainty; default: on)",
    )  # fmt: skip
    p.add_argument(
        "--explore-with", default=None, metavar="MODEL.cfm",
        help="a fixed model that drives the MD, quenches and hops (the learned model still decides what to label); "
        "e.g. a gap model of the same data for a dml run, whose own forces are not conservative",
    )  # fmt: skip
    p.add_argument(
        "--max-force-ratio", type=float, default=d.max_force_ratio,
        help="a reference frame with a force component above this times the init frames' largest is a broken structure: "
        "not fitted, and the MD goes back to the last sound structure (default: %(default)s; 0: off)",
    )  # fmt: skip
    p.add_argument(
        "--refit-every", type=int, default=d.refit_every,
        help="update the model after this many new frames, and at the end (default: the kind's own: gap every frame, dml 10)",
    )  # fmt: skip
    p.add_argument("--max-calls", type=int, default=d.max_calls, help="reference-call budget")
    p.add_argument(
        "--propose", type=int, default=None, metavar="N",
        help="with --reference none: explore with the init model and write the N structures to label (no energies or "
        "forces) to OUTPUT, an extxyz file, instead of labelling them; label them with your reference and add them to --init",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workdir", default=None, help="frames, log and state (default: OUTPUT without .cfm + '_learn')")
    p.add_argument("-o", "--output", required=True, help="model file to write (with --propose: the structures to label, .extxyz)")
    p.add_argument("--quiet", action="store_true")
    add_config_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from clusterforce.core import registry
    from clusterforce.data import read_frames
    from clusterforce.references import resolve
    from clusterforce.workflows.learn import Learner, LearnSettings, init_temperatures, summary

    if args.start:
        from ase.io import read

        starts = read(args.start, ":")
    elif args.system and args.n:
        from clusterforce.workflows.datagen.builders import build

        starts = []
        for n in args.n:
            try:
                shape = "icosahedral" if args.shape == "auto" else args.shape
                starts += [s.atoms for s in build(args.system, [n], shape=shape)]
            except ValueError:
                if args.shape != "auto":
                    raise
                starts += [s.atoms for s in build(args.system, [n], shape="random")]
    else:
        raise SystemExit("clusterforce learn: give start structures: --start FILE, or --system NAME --n SIZES")
    propose = args.reference.lower() == "none"
    if propose != (args.propose is not None):
        raise SystemExit("clusterforce learn: --propose N goes with --reference none (and --reference none needs --propose N)")
    if propose:
        if args.propose < 1:
            raise SystemExit(f"clusterforce learn: --propose must be at least 1, got {args.propose}")
        args.max_calls = args.propose
    init = read_frames(args.init)
    record = registry.get(args.kind)
    # record.train stops before the kind's finishing step (gap's spline tables), which the updates
    # (partial_fit) would undo: the model is finished once, at the end.
    quiet = argparse.Namespace(**{**vars(args), "quiet": True})

    def fit(frames):
        return record.train(frames, quiet)

    temperatures = args.temperatures or init_temperatures(init)
    if not args.temperatures:
        print(f"learn: MD temperatures {' '.join(f'{t:g}' for t in temperatures)} K (from the --init frames unless none records one)")
    settings = LearnSettings(
        temperatures=temperatures, steps_per_temperature=args.steps_per_temperature, timestep=args.timestep,
        check_every=args.check_every, relative_threshold=args.relative_threshold, threshold=args.threshold,
        hops=args.hops, hop_step=args.hop_step, hop_kt=args.hop_kt, fill_budget=args.fill_budget,
        refit_every=args.refit_every, max_force_ratio=args.max_force_ratio or None,
        max_calls=args.max_calls, seed=args.seed,
    )  # fmt: skip
    workdir = Path(args.workdir) if args.workdir else Path(args.output).with_suffix("").with_name(Path(args.output).stem + "_learn")
    try:
        explorer = registry.load_model(args.explore_with) if args.explore_with else None
        learner = Learner(
            fit, init, None if propose else (lambda atoms: resolve(args.reference, atoms)), starts, settings, workdir,
            explorer=explorer, progress=not args.quiet,
        )  # fmt: skip
        model, state = learner.run()  # refuses a state.json it cannot resume, or a model without uncertainty
    except (ValueError, FileNotFoundError) as exc:  # ModelFileError is a ValueError
        print(f"clusterforce learn: error: {exc}", file=sys.stderr)
        return 1
    if propose:
        proposals = workdir / "frames.extxyz"
        Path(args.output).write_text(proposals.read_text() if proposals.exists() else "")
        print(
            f"{summary(workdir)['proposed']} structures to label in {args.output} (the init model's most uncertain, spread over "
            f"{state.md_steps} MD steps, quenches and hops): compute them with your reference and add them to --init"
        )
        return 0
    registry.finish(args.kind, model, args)
    model.save(args.output)
    report = summary(workdir)  # also in workdir/summary.json, written by the run
    from clusterforce.data.plots import learning_curve

    learning_curve(workdir / "learning_curve.png", report["force_rmse_before_each_call"], state.seen, state.threshold, state.floor)
    print(
        f"{report['calls']} reference calls ({report['skipped']} skipped) in {report['md_steps']} MD steps; "
        f"model {args.output}, frames {workdir / 'frames.extxyz'}, plot {workdir / 'learning_curve.png'}"
    )
    return 0
