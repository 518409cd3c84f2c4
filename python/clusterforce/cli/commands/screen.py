"""``clusterforce screen MODEL FRAMES --bins K``: DART-style screening of many frames by predicted energy."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "screen",
        help="rank frames by predicted energy, keep one per energy bin, optionally relax them to distinct minima",
        description="The dart paper's screening step: predict the energy of every frame (e.g. MD snapshots), cut the "
        "range into K bins, keep the lowest frame of each bin; with --relax, relax each representative with the model "
        "and keep the distinct minima (energy window plus structural distance after alignment).",
    )
    p.add_argument("model", help="energy model (.cfm of kind gap or dart) or any --reference name (gfn1-xtb, emt, lj, module:factory)")
    p.add_argument("frames", nargs="+", help="frames to screen (files, dataset:NAME)")
    p.add_argument("--bins", type=int, default=20, help="number of predicted-energy bins")
    p.add_argument("-o", "--output", default="screened.extxyz", help="representatives (or minima with --relax), lowest first")
    p.add_argument("--relax", action="store_true", help="relax every representative with the model and deduplicate")
    p.add_argument("--fmax", type=float, default=0.01, help="relaxation convergence, eV/Angstrom")
    p.add_argument("--db", default=None, help="also write the distinct minima to this ASE database")
    p.add_argument("--json", default=None, help="summary: frames, representatives, distinct minima, lowest energy")
    return p


def run(args: argparse.Namespace) -> int:
    from ase.io import write

    from clusterforce.data import read_frames
    from clusterforce.references import resolve
    from clusterforce.workflows.isomers import MinimaStore
    from clusterforce.workflows.search import quench, screen

    frames = read_frames(args.frames)
    calc = resolve(args.model, frames[0])

    def energy(atoms):
        probe = atoms.copy()
        probe.calc = calc
        return probe.get_potential_energy()

    reps = screen(frames, energy, bins=args.bins)
    summary = {"frames": len(frames), "bins": args.bins, "representatives": len(reps)}
    if args.relax:
        store = MinimaStore()
        for rank, i in enumerate(reps):
            quench(frames[i], calc, store, "screen", rank, fmax=args.fmax)
        if not store.minima:
            print(f"clusterforce screen: error: every relaxed representative was rejected ({store.rejected})", file=sys.stderr)
            return 1
        out = [m.atoms for m in store.minima]
        summary.update(
            {
                "distinct_minima": len(store.minima),
                "lowest_energy": store.lowest.energy,
                "energies": [m.energy for m in store.minima],
                "rejected": dict(store.rejected),
            }
        )
        if args.db:
            store.write_db(args.db, reference=args.model)
    else:
        out = [frames[i] for i in reps]
    write(args.output, out, format="extxyz")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    extra = f", {summary['distinct_minima']} distinct minima, lowest {summary['lowest_energy']:.4f}" if args.relax else ""
    print(f"{len(frames)} frames -> {len(reps)} representatives{extra}; written to {args.output}")
    return 0
