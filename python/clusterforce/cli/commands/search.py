"""``clusterforce search START --method ...``: isomer search with any calculator."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

METHODS = ("basin-hopping", "minima-hopping", "md-quench")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "search",
        help="find low-energy isomers: basin hopping, minima hopping or MD with quenches",
        description="Isomer search with a trained model or a reference calculator. Every distinct minimum "
        "(energy window plus structural distance after rotation, permutation and reflection) goes to an ASE "
        "database with its energy and the search that found it.",
    )
    p.add_argument("start", help="start structure (any format ASE reads; last frame) or random:N[:ELEMENT] for a random cluster")
    p.add_argument("--method", choices=METHODS, default="basin-hopping")
    p.add_argument(
        "--reference", required=True, help="calculator: gfn1-xtb, emt, lj (epsilon = sigma = 1), a model file (.cfm) or module:factory"
    )
    p.add_argument("--steps", type=int, default=1000, help="basin-hopping moves, minima-hopping minima, or MD steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--kt", type=float, default=None, help="basin-hopping Metropolis temperature, energy units (default 0.8 for lj, 0.1 eV otherwise)"
    )
    p.add_argument(
        "--step-size", type=float, default=None, help="basin-hopping move, Angstrom (default 0.36 sigma for lj, 0.4 Angstrom otherwise)"
    )
    p.add_argument("--temperature", type=float, default=600.0, help="MD / minima-hopping temperature, K")
    p.add_argument("--quench-every", type=int, default=100, help="md-quench: MD steps between quenches")
    p.add_argument("--fmax", type=float, default=1e-3, help="local minima converged below this force component (eV/Angstrom)")
    p.add_argument("--energy-tol", type=float, default=1e-3, help="minima closer in energy than this may be the same (eV)")
    p.add_argument("--rmsd-tol", type=float, default=0.05, help="same minimum below this RMSD after alignment (Angstrom)")
    p.add_argument(
        "--target", type=float, default=None, help="stop basin hopping at a minimum at or below this energy (eV, or epsilon for lj)"
    )
    p.add_argument(
        "--moves",
        type=_moves,
        default=None,
        metavar="MOVE=P,...",
        help="basin-hopping moves and their probabilities (normalised): displace (every atom by up to --step-size), "
        "surface (the least-coordinated atoms to high-coordination surface sites), twist (one half of the cluster rotated "
        "against the other); default displace=0.5,surface=0.35,twist=0.15; displace=1 is plain basin hopping",
    )
    p.add_argument("--walkers", type=int, default=1, help="basin hopping: independent walkers taking moves in turn (--steps counts all)")
    p.add_argument(
        "--restart-after",
        type=int,
        default=None,
        metavar="M",
        help="basin hopping: a walker whose lowest energy has not dropped in M of its moves restarts from a random cluster (default: off)",
    )
    p.add_argument(
        "--reoptimize",
        type=int,
        default=0,
        metavar="K",
        help="relax the K lowest minima again with --reoptimize-with (a model's minima checked by the reference); "
        "reference energies go to the database and the JSON (default: 0)",
    )
    p.add_argument(
        "--reoptimize-with", default="gfn1-xtb", help="calculator for --reoptimize: same names as --reference (default: gfn1-xtb)"
    )
    p.add_argument("--reoptimize-fmax", type=float, default=0.01, help="--reoptimize converges below this force component, eV/Angstrom")
    p.add_argument("--db", default="minima.db", help="ASE database of the distinct minima")
    p.add_argument(
        "-o", "--output", default=None, help="also write the lowest minimum to this file (any format ASE writes, e.g. lowest.xyz)"
    )
    p.add_argument("--json", default=None, help="summary: lowest_energy, n_minima, energies, CPU time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _moves(spec: str) -> dict[str, float]:
    """``displace=0.5,surface=0.5`` -> {"displace": 0.5, "surface": 0.5} (argparse type)."""
    from clusterforce.workflows.search import MOVES

    moves = {}
    for item in spec.split(","):
        name, _, weight = item.partition("=")
        if name.strip() not in MOVES:
            raise argparse.ArgumentTypeError(f"unknown move '{name.strip()}' in '{spec}'; choose from {', '.join(MOVES)}")
        try:
            moves[name.strip()] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{item}': expected MOVE=PROBABILITY, e.g. surface=0.3") from None
    return moves


def _start(spec: str, reference: str, seed: int):
    from clusterforce.data.validate import read_structure
    from clusterforce.workflows.search import LJ_NEAREST, random_cluster

    if spec.startswith("random:"):
        fields = spec.split(":")
        try:
            n = int(fields[1])
        except (IndexError, ValueError):
            raise ValueError(f"START '{spec}': expected random:N or random:N:ELEMENT, e.g. random:38") from None
        symbol = fields[2] if len(fields) > 2 else "Ar"
        return random_cluster(n, symbol, nearest=LJ_NEAREST if reference == "lj" else None, seed=seed)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"START {spec}: no such file (or give random:N[:ELEMENT])")
    return read_structure(spec)


def run(args: argparse.Namespace) -> int:
    from clusterforce.references import resolve
    from clusterforce.workflows.isomers import MinimaStore, RelaxationError
    from clusterforce.workflows.optimize import NonFiniteError

    try:
        start = _start(args.start, args.reference, args.seed)
        calc = resolve(args.reference, start)
    except (ValueError, FileNotFoundError) as exc:  # DataError is a ValueError
        print(f"clusterforce search: error: {exc}", file=sys.stderr)
        return 2
    store = MinimaStore(energy_tol=args.energy_tol, rmsd_tol=args.rmsd_tol)
    try:
        cpu = _search(args, start, calc, store)
    except ValueError as exc:  # a calculator that cannot search (no energy)
        print(f"clusterforce search: error: {exc}", file=sys.stderr)
        return 2
    except (RelaxationError, NonFiniteError) as exc:  # the start itself is rejected, or the MD met a NaN
        print(f"clusterforce search: error: {exc}", file=sys.stderr)
        return 1
    return _report(args, start, store, cpu)


def _search(args: argparse.Namespace, start, calc, store) -> float:
    """Run the chosen search into ``store``; the CPU seconds it took."""
    from clusterforce.workflows.search import basin_hopping, md_quench, minima_hopping

    lj = args.reference == "lj"
    cpu = time.process_time()
    if args.method == "basin-hopping":
        kt = args.kt if args.kt is not None else (0.8 if lj else 0.1)
        step = args.step_size if args.step_size is not None else (0.36 if lj else 0.4)
        basin_hopping(
            start,
            calc,
            steps=args.steps,
            kt=kt,
            step_size=step,
            seed=args.seed,
            fmax=args.fmax,
            store=store,
            target=args.target,
            moves=args.moves,
            walkers=args.walkers,
            restart_after=args.restart_after,
            progress=not args.quiet,
        )
    elif args.method == "minima-hopping":
        minima_hopping(start, calc, steps=args.steps, temperature=args.temperature, fmax=args.fmax, store=store)
    else:
        md_quench(
            start,
            calc,
            steps=args.steps,
            temperature=args.temperature,
            quench_every=args.quench_every,
            seed=args.seed,
            fmax=args.fmax,
            store=store,
            progress=not args.quiet,
        )
    return time.process_time() - cpu


def _report(args: argparse.Namespace, start, store, cpu: float) -> int:
    """Re-optimise if asked, write the database and the JSON, print the summary."""
    from clusterforce.descriptors.symmetry import point_group
    from clusterforce.references import resolve
    from clusterforce.workflows.isomers import MinimaStore, reoptimize

    checked = reoptimize(store, resolve(args.reoptimize_with, start), args.reoptimize, fmax=args.reoptimize_fmax) if args.reoptimize else []
    store.write_db(args.db, reference=args.reference, reoptimized=checked)
    lowest = store.lowest
    if args.output:
        from ase.io import write

        write(args.output, lowest.atoms)
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(store.rejected.items()))
    written = f"{args.db}" + (f", the lowest to {args.output}" if args.output else "")
    print(
        f"{len(store.minima)} distinct minima; lowest {lowest.energy:.6f} (found at step {lowest.step}); "
        f"CPU {cpu:.1f} s; written to {written}" + (f"; rejected steps (never stored): {rejected}" if rejected else "")
    )
    # Model minima that the reference relaxes into one are one isomer of the reference.
    reference_minima = MinimaStore(energy_tol=args.energy_tol, rmsd_tol=args.rmsd_tol)
    for r in checked:
        reference_minima.add(r.atoms, r.reference_energy, "reoptimize", r.rank)
    for r in checked:
        print(
            f"minimum {r.rank}: {args.reference} {r.energy:.4f}, {args.reoptimize_with} after re-optimisation "
            f"{r.reference_energy:.4f} (moved {r.move:.3f} A{'' if r.converged else ', not converged'})"
        )
    if args.json:
        summary = {
            "method": args.method,
            "reference": args.reference,
            "seed": args.seed,
            "steps": args.steps,
            "lowest_energy": lowest.energy,
            "lowest_found_at_step": lowest.step,
            "lowest_point_group": point_group(lowest.atoms),
            "target": args.target,
            "target_reached": args.target is not None and lowest.energy <= args.target + args.energy_tol,
            "moves": args.moves,
            "walkers": args.walkers,
            "restart_after": args.restart_after,
            "n_minima": len(store.minima),
            "rejected": dict(store.rejected),
            "energies": [m.energy for m in store.minima],
            "cpu_seconds": cpu,
            "db": str(args.db),
            "reoptimized_with": args.reoptimize_with if checked else None,
            "reoptimized_distinct": len(reference_minima.minima) if checked else None,
            "reoptimized": [
                {"rank": r.rank, "energy": r.energy, "reference_energy": r.reference_energy, "move": r.move, "converged": r.converged}
                for r in checked
            ],
        }
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0
