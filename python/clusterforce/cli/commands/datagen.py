"""``clusterforce datagen``: reference data by heating MD (GFN1-xTB or EMT).

Example::

    clusterforce datagen --system ring --n 4 5 6 --reference gfn1-xtb \\
        --temperatures 300 500 700 900 --steps-per-temperature 200 --frames 150 -o rings.extxyz
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from clusterforce import __version__

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    from clusterforce.references import METHODS
    from clusterforce.workflows.datagen import SHAPES, SYSTEMS

    p = subparsers.add_parser(
        "datagen",
        help="make reference data (energies, forces) by heating MD",
        description="Heat starting structures with Langevin MD and record log-spaced frames (dense toward "
        "the hot end) labelled by a reference method, appended to an extxyz file that can be resumed.",
    )
    src = p.add_argument_group("structures (give --system or --start)")
    src.add_argument("--system", choices=SYSTEMS, help="builder: [Au(SCH3)]n rings, Na or Ga clusters, Ag-Au icosahedra")
    src.add_argument("--start", metavar="FILE", help="read starting structures from a file ASE reads")
    src.add_argument("--index", metavar="SPEC", help="frames of --start: '3', '-1', '10:20', '::5' (default: all)")
    src.add_argument("--n", type=int, nargs="+", metavar="N", help="ring size or atom count(s); with --start, "
                     "keep the first frame with each atom count")  # fmt: skip
    src.add_argument("--shape", choices=SHAPES, default="icosahedral", help="cluster shape for na/ga (default: %(default)s)")
    src.add_argument("--fraction-au", type=float, default=0.5, help="Au fraction for agau (default: %(default)s)")

    ref = p.add_argument_group("reference")
    ref.add_argument("--reference", choices=METHODS, default="gfn1-xtb", help="default: %(default)s")
    ref.add_argument(
        "--electronic-temperature",
        type=float,
        metavar="K",
        help="default: 300 K if the structure has non-metals (Au-S-C-H), 2000 K for bare metal clusters",
    )
    ref.add_argument(
        "--fallback-electronic-temperature",
        type=float,
        metavar="K",
        help="electronic temperature used only to finish MD steps whose SCF fails (never recorded; "
        "default: max(5000 K, 2 x electronic temperature))",
    )
    ref.add_argument("--charge", type=int, help="total charge in e (default: from the structure, else 0)")
    ref.add_argument("--uhf", type=int, help="unpaired electrons (default: 0 for even, 1 for odd electron count)")

    md = p.add_argument_group("heating MD and sampling")
    md.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=[300.0, 500.0, 700.0, 900.0],
        metavar="K",
        help="target temperatures of consecutive segments (default: %(default)s)",
    )
    md.add_argument("--steps-per-temperature", type=int, default=200, help="MD steps per segment (default: %(default)s)")
    md.add_argument("--timestep", type=float, default=1.0, metavar="FS", help="default: %(default)s fs")
    md.add_argument("--friction", type=float, default=0.01, metavar="PER_FS", help="Langevin friction (default: %(default)s 1/fs)")
    md.add_argument("--frames", type=int, default=150, help="frames recorded per structure (default: %(default)s)")
    md.add_argument(
        "--density-ratio",
        type=float,
        default=10.0,
        help="sampling density at the last step over that at the first (1: even; number of steps: "
        "plain log spacing as in the oamlm paper; default: %(default)s)",
    )
    md.add_argument(
        "--max-restarts", type=int, default=10, help="restarts in a row from one recorded frame before giving up (default: %(default)s)"
    )
    md.add_argument("--seed", type=int, default=0, help="seed of all random streams (default: %(default)s)")

    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", help="extxyz file to append frames to (checkpoint: OUTPUT.ckpt.json)")
    out.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    out.add_argument("--overwrite", action="store_true", help="start over even if OUTPUT exists")
    out.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    out.add_argument("--config", help="YAML file of defaults for these flags (keys = flag names)")
    return p


def _structures(args: argparse.Namespace):
    from clusterforce.workflows.datagen import BUILD_STREAM, build, from_file, rng_stream

    if bool(args.system) == bool(args.start):
        raise ValueError("give exactly one of --system (a builder) or --start FILE")
    if args.start:
        return from_file(args.start, args.index, args.n)
    if args.index is not None:
        raise ValueError("--index selects frames of --start FILE; it does not apply to --system")
    return build(args.system, args.n or [], shape=args.shape, fraction_au=args.fraction_au,
                 rng=rng_stream(args.seed, BUILD_STREAM))  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from clusterforce.references import ScfFailure, make_reference
    from clusterforce.workflows.datagen import HeatingSchedule, Job, generate

    try:
        if not args.output:
            raise ValueError("give the output file with -o/--output")
        structures = _structures(args)
        jobs = [
            Job(
                s,
                make_reference(
                    args.reference,
                    s.atoms,
                    electronic_temperature=args.electronic_temperature,
                    fallback_electronic_temperature=args.fallback_electronic_temperature,
                    charge=args.charge,
                    uhf=args.uhf,
                ),
            )
            for s in structures
        ]
        schedule = HeatingSchedule(
            temperatures=tuple(float(t) for t in args.temperatures),
            steps_per_temperature=args.steps_per_temperature,
            timestep=args.timestep,
            friction=args.friction,
            frames=args.frames,
            density_ratio=args.density_ratio,
            max_restarts=args.max_restarts,
            seed=args.seed,
        )
        schedule.validate()
        logger.info("clusterforce %s datagen -> %s (resume=%s)", __version__, args.output, args.resume)
        logger.info("schedule: %s", schedule)
        for job in jobs:
            logger.info("structure %s (%d atoms, %s): %s", job.structure.name, len(job.structure.atoms),
                        job.structure.source, job.reference.describe())  # fmt: skip
        summaries = generate(jobs, schedule, Path(args.output), resume=args.resume, overwrite=args.overwrite,
                             progress=not args.quiet)  # fmt: skip
    except (ValueError, ImportError, FileNotFoundError, FileExistsError, ScfFailure) as exc:
        logger.error("%s", exc)
        return 1
    frames = ", ".join(f"{s.system}: {s.frames}" for s in summaries)
    totals = {k: sum(s.counts.get(k, 0) for s in summaries) for k in ("scf_retries", "hot_steps", "restarts", "skipped_frames")}
    # The summary is the command's result, so it goes to stdout even with --quiet.
    print(
        f"datagen: {sum(s.frames for s in summaries)} frames in {args.output} ({frames}); "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items())
    )
    return 0
