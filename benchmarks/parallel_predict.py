"""Whole-structure prediction on 1 and 2 OpenMP threads for dml, sann and dart, and dml per atom
against an older compiled module, in one run.

Run from the repository root (the dml model takes ~1 min to train the first time)::

    cp /work/main/python/clusterforce/_kernels*.so /tmp/before/   # the module to compare with
    python benchmarks/parallel_predict.py --before /tmp/before/_kernels.cpython-311-x86_64-linux-gnu.so

Models: dml is ``clusterforce train --kind dml dataset:rings`` (the default model); sann and dart
are trained with their default sizes and few epochs on every 15th frame of ``dataset:na`` (speed
does not depend on how well they fit). They are cached in ``--cache``.
Structures: dml the ring frames 10, 60, ..., 260 (24-36 atoms); sann and dart the na frames of
41 and 55 atoms; the size sweep (sann, dart) the n atoms of a Na55 frame nearest its centre.

Every timing runs in a subprocess that loads one compiled module by path (this tree's or
``--before``) and calls ``Predictor.compute`` (the path of the estimators, the ASE calculator
and ``clusterforce evaluate``). The thread count is set inside that process with threadpoolctl
(the OpenMP pool limited to 1 or 2), alternating the settings ``--repeats`` times and keeping
the best, so machine load hits both alike. The 1- and 2-thread forces are checked to agree to
1e-10 eV/Angstrom, and this tree's against --before's. Prints a table and writes
benchmarks/results/parallel_predict.json with the load average (``uptime``) before and after:
the machine is shared, so ratios measured under load are lower bounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "parallel_predict.json"
RING_FRAMES = (10, 60, 110, 160, 210, 260)
SWEEP = (4, 8, 16, 32, 55)


def load_kernels(path: str):
    """The compiled module at `path`, imported on its own (not as clusterforce._kernels)."""
    spec = importlib.util.spec_from_file_location("_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker(so: str, model: str, frames: str, reps: int, repeats: int) -> dict:
    """Inside the subprocess: best ms per structure on 1 and 2 threads, and the forces."""
    from threadpoolctl import threadpool_limits

    kernels = load_kernels(so)
    predictor = kernels.Predictor.from_bytes(Path(model).read_bytes(), model)
    data = np.load(frames)
    structures = [(data[f"x{k}"], data[f"s{k}"]) for k in range(int(data["n"]))]
    best = {t: np.full(len(structures), np.inf) for t in (1, 2)}
    forces: dict[int, list] = {}
    for _ in range(repeats):
        for threads in (1, 2):
            with threadpool_limits(limits=threads, user_api="openmp"):
                forces[threads] = [predictor.compute(x, s)["forces"] for x, s in structures]  # warm
                for k, (x, s) in enumerate(structures):
                    for _ in range(reps):
                        t = time.perf_counter()
                        predictor.compute(x, s)
                        best[threads][k] = min(best[threads][k], time.perf_counter() - t)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(forces[1], forces[2], strict=True))
    return {
        "ms": {t: (1e3 * best[t]).tolist() for t in (1, 2)},
        "atoms": [len(s) for _, s in structures],
        "forces": [f.tolist() for f in forces[1]],
        "thread_force_difference": diff,
    }


def run_worker(so: Path, model: Path, frames: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(so), "--model", str(model), "--frames", str(frames)]
    cmd += ["--reps", str(args.reps), "--repeats", str(args.repeats)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_models(cache: Path) -> dict[str, Path]:
    from clusterforce.data import datasets
    from clusterforce.kinds.dart import DARTModel
    from clusterforce.kinds.sann import SANNModel

    cache.mkdir(parents=True, exist_ok=True)
    paths = {kind: cache / f"{kind}.cfm" for kind in ("dml", "sann", "dart")}
    if not paths["dml"].exists():
        cmd = [sys.executable, "-m", "clusterforce", "train", "--kind", "dml", "dataset:rings", "-o", str(paths["dml"])]
        subprocess.run([*cmd, "--quiet"], check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
    na = datasets.load("na")[0:300:15]
    for kind, model in (("sann", SANNModel(epochs=1, progress=False)), ("dart", DARTModel(max_epochs=3, progress=False))):
        if not paths[kind].exists():
            model.fit(na)
            model.save(paths[kind])
    return paths


def structures(kind: str, elements: list[str]) -> dict[str, list]:
    """Named lists of (positions, species) to time for `kind`."""
    from clusterforce.data import datasets

    def arrays(atoms):
        return atoms.positions.copy(), np.array([elements.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int32)

    if kind == "dml":
        rings = datasets.load("rings")
        return {"rings": [arrays(rings[f]) for f in RING_FRAMES]}
    na = datasets.load("na")
    big = [a for a in na if len(a) in (41, 55)][:6]
    out = {"na41-55": [arrays(a) for a in big]}
    na55 = next(a for a in na if len(a) == 55)
    order = np.argsort(np.linalg.norm(na55.positions - na55.positions.mean(0), axis=1))
    for n in SWEEP:
        out[f"na{n}"] = [arrays(na55[order[:n]])]
    return out


def save_frames(items: list, path: Path) -> Path:
    arrays = {"n": np.array(len(items))}
    for k, (x, s) in enumerate(items):
        arrays[f"x{k}"], arrays[f"s{k}"] = x, s
    np.savez(path, **arrays)
    return path


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="compiled _kernels module to compare dml per atom with")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "clusterforce-parallel-predict")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per structure and setting")
    parser.add_argument("--repeats", type=int, default=3, help="alternations of the 1- and 2-thread settings")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--frames", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, args.frames, args.reps, args.repeats)))
        return
    sys.path.insert(0, str(ROOT / "python"))
    from clusterforce.core.modelfile import load

    after = next((ROOT / "python" / "clusterforce").glob("_kernels*.so"))
    if args.before is not None and not args.before.exists():
        raise SystemExit(f"--before {args.before}: no such file")
    result: dict = {"load_before": uptime(), "cpus": os.cpu_count(), "threads": "threadpoolctl openmp limits 1 and 2"}
    paths = train_models(args.cache)
    rows, lines = [], ["| kind | structures | atoms | 1 thread ms | 2 threads ms | 1 / 2 |", "|---|---|---|---|---|---|"]
    dml_after = None
    for kind, model in paths.items():
        elements = list(load(model).metadata["elements"])
        for name, items in structures(kind, elements).items():
            frames = save_frames(items, args.cache / f"{kind}-{name}.npz")
            r = run_worker(after, model, frames, args)
            if r["thread_force_difference"] > 1e-10:
                raise RuntimeError(f"{kind} {name}: 2 threads differ from 1 by {r['thread_force_difference']} eV/A")
            one, two = sum(r["ms"]["1"]), sum(r["ms"]["2"])
            n = len(items)
            row = {"kind": kind, "structures": name, "frames": n, "atoms": r["atoms"], "ms_1_thread": one / n}
            row.update(ms_2_threads=two / n, speedup_2_over_1=one / two, thread_force_difference=r["thread_force_difference"])
            rows.append(row)
            lines.append(f"| {kind} | {name} | {sum(r['atoms']) / n:.0f} | {one / n:.2f} | {two / n:.2f} | {one / two:.2f} |")
            if kind == "dml":
                dml_after = (r, frames)
    result["rows"] = rows
    if args.before is not None and dml_after is not None:
        r, frames = dml_after
        b = run_worker(args.before, paths["dml"], frames, args)
        atoms = sum(r["atoms"])
        diff = max(float(np.abs(np.array(x) - np.array(y)).max()) for x, y in zip(r["forces"], b["forces"], strict=True))
        dml = {"before_module": str(args.before), "atoms": atoms, "force_difference_vs_before": diff}
        lines += ["", "| dml rings | before ms/atom | after ms/atom | before / after |", "|---|---|---|---|"]
        for t in ("1", "2"):
            before, now = sum(b["ms"][t]) / atoms, sum(r["ms"][t]) / atoms
            dml[f"ms_per_atom_{t}_thread"] = {"before": before, "after": now, "ratio": before / now}
            lines.append(f"| {t} thread(s) | {before:.3f} | {now:.3f} | {before / now:.2f} |")
        lines.append(f"\nlargest |F_after - F_before| = {diff:.1e} eV/Angstrom")
        result["dml_before_after"] = dml
    result["load_after"] = uptime()
    lines += ["", f"load before: {result['load_before']}", f"load after:  {result['load_after']}"]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
