"""Basin hopping on Au20 with the default gap model trained on the DFT gold frames: does the
repulsive baseline keep the search out of fused atoms, and does it find the tetrahedron?

Trains ``clusterforce train --kind gap`` with its defaults (the baseline on) on
../shared/data/au-clusters-dft/benchmark_train_3000.extxyz.gz, then runs, one process per seed
and in parallel::

    clusterforce search random:20:Au --reference MODEL --method basin-hopping --steps N --seed S --db ... --json ...

and reads every stored minimum back: its energy, its shortest pair (Angstrom) and its point
group. The ideal Au20 tetrahedron (the N = 20 frame of ../shared/structures/qcd_low_energy_Au.extxyz)
is relaxed with the same model and compared with the lowest minimum (energy, and the structural
distance after rotation, permutation and reflection, Angstrom).

Without the baseline (gap's default before it was on), 600 steps of seed 1 ended at -979.9 eV with
two atoms 0.00 Angstrom apart, against -50.90 eV for the relaxed tetrahedron.

Usage::

    nice python benchmarks/au20_basin_hopping.py [--steps 2000] [--seeds 1 2] [--model MODEL.cfm]
        [--shared DIR] [--work DIR] [--output benchmarks/results/au20_basin_hopping.json]

Reads ../shared (beside the repository; ``--shared`` to point elsewhere) and prints what is missing
and exits when it is not there. Writes the JSON summary (``--output``); the model, databases and
per-seed JSON go to ``--work`` (default: clusterforce-au20-basin-hopping in the temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
RESULTS = ROOT / "benchmarks" / "results"
TRAIN_FILE = Path("data") / "au-clusters-dft" / "benchmark_train_3000.extxyz.gz"
STRUCTURES = Path("structures") / "qcd_low_energy_Au.extxyz"
#: The lowest minimum is the tetrahedron when it lies within this structural distance of the
#: relaxed ideal one (Angstrom, after rotation, permutation and reflection).
SAME_STRUCTURE = 0.1
#: No stored minimum may have a pair closer than this (Angstrom): the shortest Au-Au distance of
#: the training frames is 2.20 Angstrom, the dimer's bond 2.47.
SHORTEST_ALLOWED = 2.2


def clusterforce(*args: str) -> None:
    """Run the command line in a child process (the environment's PYTHONPATH picks the package)."""
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True)


def shortest_pair(atoms) -> float:
    """Shortest interatomic distance (Angstrom)."""
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    return float(d[np.triu_indices(len(atoms), 1)].min())


def qcd_cluster(shared: Path, n: int = 20):
    """The N-atom gold cluster of the QCD low-energy set (N = 20: the tetrahedron), as a free cluster."""
    import ase.io

    frames = [a for a in ase.io.read(shared / STRUCTURES, ":") if len(a) == n]
    if not frames:
        raise ValueError(f"{shared / STRUCTURES}: no {n}-atom frame")
    atoms = frames[0]
    atoms.pbc = False
    atoms.cell = None
    atoms.center()
    return atoms


def run_seeds(model: Path, seeds: list[int], steps: int, work: Path, *, size: int = 20, extra: tuple[str, ...] = (), jobs: int = 0) -> dict:
    """One ``clusterforce search random:SIZE:Au`` per seed (``extra``: more search options), at most
    ``jobs`` at once (0: all); wall time (s) of each."""
    started, procs, seconds = {}, {}, {}

    def finish(seed: int) -> None:
        proc, log = procs.pop(seed)
        if proc.wait() != 0:
            raise RuntimeError(f"search with seed {seed} failed (exit {proc.returncode}); see {work / f'seed{seed}.log'}")
        log.close()
        seconds[seed] = time.perf_counter() - started[seed]

    for seed in seeds:
        if jobs and len(procs) >= jobs:
            finish(next(iter(procs)))
        cmd = [sys.executable, "-m", "clusterforce", "search", f"random:{size}:Au", "--reference", str(model), "--method", "basin-hopping"]
        cmd += ["--steps", str(steps), "--seed", str(seed), "--db", str(work / f"seed{seed}.db"), "--json", str(work / f"seed{seed}.json")]
        log = open(work / f"seed{seed}.log", "w")  # noqa: SIM115 -- closed after the child ends
        procs[seed] = (subprocess.Popen([*cmd, *extra, "--quiet"], stdout=log, stderr=subprocess.STDOUT), log)
        started[seed] = time.perf_counter()
    while procs:
        finish(next(iter(procs)))
    return seconds


def analyse(model: Path, seeds: list[int], work: Path, shared: Path) -> dict:
    """Every stored minimum's energy, shortest pair and point group; the lowest against the tetrahedron."""
    from ase.db import connect
    from clusterforce import Calculator
    from clusterforce.descriptors.symmetry import point_group
    from clusterforce.workflows.isomers import relax, structure_distance

    tetrahedron = qcd_cluster(shared, 20)
    relaxed, e_tetrahedron, converged = relax(tetrahedron, Calculator(str(model)))
    out = {
        "tetrahedron": {
            "energy_eV": e_tetrahedron,
            "converged": converged,
            "point_group": point_group(relaxed),
            "shortest_pair_A": shortest_pair(relaxed),
            "moved_A": structure_distance(relaxed, tetrahedron),
        },
        "seeds": {},
    }
    for seed in seeds:
        rows = list(connect(str(work / f"seed{seed}.db")).select(sort="rank"))
        summary = json.loads((work / f"seed{seed}.json").read_text())
        minima = [{"energy_eV": r.energy, "shortest_pair_A": shortest_pair(r.toatoms()), "point_group": r.point_group} for r in rows]
        lowest = rows[0].toatoms()
        shortest = min(m["shortest_pair_A"] for m in minima)
        distance = structure_distance(lowest, relaxed)
        out["seeds"][str(seed)] = {
            "steps": summary["steps"],
            "cpu_seconds": summary["cpu_seconds"],
            "n_minima": len(minima),
            "lowest_energy_eV": rows[0].energy,
            "lowest_found_at_step": summary["lowest_found_at_step"],
            "lowest_point_group": rows[0].point_group,
            "lowest_minus_tetrahedron_eV": rows[0].energy - e_tetrahedron,
            "lowest_distance_to_tetrahedron_A": distance,
            "lowest_is_tetrahedron": bool(distance < SAME_STRUCTURE),
            "shortest_pair_of_any_minimum_A": shortest,
            "every_minimum_above_shortest_allowed": bool(shortest >= SHORTEST_ALLOWED),
            "minima": minima,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="basin-hopping moves per seed (default: 2000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="one search per seed, in parallel (default: 1 2)")
    p.add_argument("--model", default=None, help="gap model file to search with (default: train the default gap into --work)")
    p.add_argument("--shared", default=str(SHARED), help="directory with data/au-clusters-dft and structures (default: ../shared)")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clusterforce-au20-basin-hopping"), help="model, databases, logs")
    p.add_argument("--output", default=str(RESULTS / "au20_basin_hopping.json"), help="JSON summary to write")
    args = p.parse_args(argv)
    shared, work = Path(args.shared), Path(args.work)
    for need in (TRAIN_FILE, STRUCTURES):
        if not (shared / need).is_file():
            print(f"au20_basin_hopping: {shared / need} not found (it lives in ../shared beside the repository; or --shared DIR)")
            return 0
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else work / "au_gap.cfm"
    if args.model is None:
        start = time.perf_counter()
        clusterforce("train", "--kind", "gap", str(shared / TRAIN_FILE), "-o", str(model), "--quiet")
        print(f"trained {model} in {time.perf_counter() - start:.0f} s")
    seconds = run_seeds(model, args.seeds, args.steps, work)
    result = {
        "what": "basin hopping on Au20 (random start) with the default gap trained on benchmark_train_3000 (DFT gold)",
        "model": str(model),
        "command": "clusterforce search random:20:Au --reference MODEL --method basin-hopping --steps N --seed S",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "wall_seconds": {str(s): t for s, t in seconds.items()},
        **analyse(model, args.seeds, work, shared),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"tetrahedron relaxed: {result['tetrahedron']['energy_eV']:.3f} eV ({result['tetrahedron']['point_group']})")
    for seed, r in result["seeds"].items():
        print(
            f"seed {seed}: {r['steps']} steps, {r['n_minima']} minima, lowest {r['lowest_energy_eV']:.3f} eV "
            f"({r['lowest_point_group']}, {r['lowest_distance_to_tetrahedron_A']:.3f} A from the tetrahedron), "
            f"shortest pair of any minimum {r['shortest_pair_of_any_minimum_A']:.3f} A"
        )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
