"""``clusterforce md MODEL START``: replica MD of a free cluster over a temperature ladder."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from clusterforce.workflows.replicas import ENGINES, THERMOSTATS, ReplicaSettings

    d = ReplicaSettings()
    p = sub.add_parser(
        "md",
        help="replica MD at a ladder of temperatures (LAMMPS or ASE), energies for heat capacities",
        description="Canonical MD of a free cluster with a trained model at each temperature, centre-of-mass and "
        "angular momentum removed, evaporation detected, resumable from checkpoints. Potential energies go to "
        "OUT/T<temperature>/energies.dat; `clusterforce heat-capacity OUT` turns them into Cv(T).",
    )
    p.add_argument("model", help="trained model file (.cfm) of a kind that predicts energies")
    p.add_argument("start", help="start structure (any format ASE reads; last frame), e.g. the lowest-energy isomer")
    p.add_argument("--temperatures", type=float, nargs="+", required=True, help="replica temperatures, K")
    p.add_argument("-o", "--output", default="replicas", help="output directory (rerun to resume)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"MD steps per replica (default {d.steps})")
    p.add_argument("--timestep", type=float, default=d.timestep, help=f"fs (default {d.timestep})")
    p.add_argument("--sample-every", type=int, default=d.sample_every, help=f"steps between recorded energies (default {d.sample_every})")
    p.add_argument("--thermostat", choices=THERMOSTATS, default=d.thermostat)
    p.add_argument("--damping", type=float, default=d.damping, help=f"thermostat time constant, fs (default {d.damping})")
    p.add_argument(
        "--evaporation-distance",
        type=float,
        default=d.evaporation_distance,
        help="Angstrom; an atom without a neighbour this close stops its replica",
    )
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--engine", choices=ENGINES, default=d.engine, help="lammps (plugin, default) or ase")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--exchange",
        type=int,
        metavar="EVERY",
        default=None,
        help="parallel tempering: the replicas run side by side as LAMMPS instances under mpirun and neighbouring "
        "temperatures swap by the Metropolis rule every EVERY steps (a multiple of --sample-every dividing "
        "--checkpoint-every); the attempts go to OUT/swaps.dat",
    )
    p.add_argument("--ranks", type=int, default=None, help="MPI ranks for --exchange (default: one per temperature)")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from clusterforce.data import DataError
    from clusterforce.data.validate import read_structure
    from clusterforce.workflows.replicas import ReplicaSettings, check_temperatures, run_replicas

    settings = ReplicaSettings(
        steps=args.steps, timestep=args.timestep, sample_every=args.sample_every, thermostat=args.thermostat, damping=args.damping,
        evaporation_distance=args.evaporation_distance, checkpoint_every=args.checkpoint_every, engine=args.engine, seed=args.seed,
    )  # fmt: skip
    try:
        start = read_structure(args.start)
    except DataError as exc:
        print(f"clusterforce md: error: {exc}", file=sys.stderr)
        return 2
    try:
        settings.validate()
        check_temperatures(args.temperatures)
    except ValueError as exc:
        print(f"clusterforce md: error: {exc}", file=sys.stderr)
        return 1
    if args.exchange is None:
        status = run_replicas(args.model, start, args.temperatures, settings, args.output, progress=not args.quiet)
    else:
        from clusterforce.workflows.tempering import run_tempering

        try:
            status = run_tempering(
                args.model, start, args.temperatures, settings, args.output, exchange_every=args.exchange, ranks=args.ranks,
                progress=not args.quiet,
            )  # fmt: skip
        except ValueError as exc:
            print(f"clusterforce md: error: {exc}", file=sys.stderr)
            return 1
        except RuntimeError as exc:
            print(f"clusterforce md: error: {exc}", file=sys.stderr)
            return 4
    for t, s in status.items():
        print(f"{t:8.2f} K: {s}")
    return 0 if all(s == "done" for s in status.values()) else 3
