"""Accuracy of the ``dml`` model kind on size transfer (train on small systems, test on larger).

1. rings: the shipped [Au(SCH3)]n GFN1-xTB data (``clusterforce.data.datasets.load("rings")``, or
   ``--rings FILE``); train on n = 4, 5, test on n = 6 (paper III D 1); per-class table.
2. au-clusters-dft: ../shared/data/au-clusters-dft (VASP); train on Au10-Au15 (frames
   subsampled per size), test on Au16-Au19 (subsampled); force RMSE.

Each case also reports, from the same run, the zero-force predictor (force RMSE = RMS of the
reference forces) and the ratio model / baseline, the fit and predict wall times and the
model file size. Several ``--n-references-direction`` values run every case once per value
(the default K_dir = 1000 was chosen this way; docs/benchmarks.md).

    python benchmarks/bench_dml_accuracy.py [--quick] [--skip-rings] [--skip-au]
        [--rings FILE] [--au-dir DIR] [--train-frames-per-size 300] [--test-frames-per-size 150]
        [--n-references-norm 5000] [--n-references-direction 1000 [2500 ...]]

Prints markdown tables and writes benchmarks/results/dml_accuracy.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import clusterforce
import numpy as np
from clusterforce.data import datasets, read_frames
from clusterforce.kinds.dml import DMLModel
from clusterforce.kinds.dml.metrics import evaluate_model, markdown_table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
AU_DIR = SHARED / "data" / "au-clusters-dft"
RESULTS = ROOT / "benchmarks" / "results" / "dml_accuracy.json"


def _read_gz(path: Path) -> list:
    """Read a gzipped extxyz file through a plain temporary copy.

    ase.io.read seeks backwards in a gzip stream for every frame, which re-decompresses from
    the start (minutes for the 3000-frame files here); a plain file reads in seconds.
    """
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / path.name[: -len(".gz")]
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return read_frames(plain)


def _subsample(frames: list, k: int, rng: np.random.Generator) -> list:
    if k >= len(frames):
        return frames
    return [frames[i] for i in np.sort(rng.choice(len(frames), size=k, replace=False))]


def _run_case(name: str, train: list, test: list, params: dict, quiet: bool) -> dict:
    start = time.perf_counter()
    model = DMLModel(**params, progress=not quiet).fit(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics, arrays = evaluate_model(model, test, progress=not quiet)
    predict_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.cfm")
        model_mb = (Path(tmp) / "model.cfm").stat().st_size / 1e6
    baseline = float(np.sqrt(np.mean(arrays["reference"] ** 2)))
    n_atoms = int(len(arrays["reference"]))
    result = {
        "case": name,
        "n_train_frames": len(train),
        "n_train_atoms": int(sum(len(a) for a in train)),
        "n_test_frames": len(test),
        "n_test_atoms": n_atoms,
        "params": params,
        "training": model.training_["classes"],
        "classes": metrics["classes"],
        "force_rmse": metrics["force_rmse"],
        "zero_force_rmse": baseline,
        "ratio_to_zero_force": metrics["force_rmse"] / baseline,
        "fit_s": fit_s,
        "predict_s": predict_s,
        "predict_atoms_per_s": n_atoms / predict_s,
        "model_mb": model_mb,
    }
    print(f"\n### {name}: train {len(train)} frames, test {len(test)} frames ({n_atoms} atoms)\n")
    print(markdown_table(metrics))
    print(
        f"zero-force baseline RMSE {baseline:.3f} eV/Å (model/baseline {result['ratio_to_zero_force']:.2f}); "
        f"fit {fit_s:.0f} s, predict {predict_s:.0f} s ({result['predict_atoms_per_s']:.0f} atoms/s), model {model_mb:.1f} MB"
    )
    return result


def rings_case(args, params: dict) -> dict | None:
    if args.rings:
        frames = read_frames(args.rings)
    elif "rings" in datasets.available():
        frames = datasets.load("rings")
    else:
        print("rings: data set not found (not shipped in this installation and no --rings FILE); skipped")
        return None
    n_au = np.array([a.get_chemical_symbols().count("Au") for a in frames])
    train = [a for a, n in zip(frames, n_au) if n in (4, 5)]
    test = [a for a, n in zip(frames, n_au) if n == 6]
    if not train or not test:
        print(f"rings: need frames with n = 4, 5 and 6 Au atoms, found sizes {sorted(set(n_au.tolist()))}; skipped")
        return None
    return _run_case("rings n=4,5 -> n=6", train, test, params, args.quiet)


def au_case(args, params: dict) -> dict | None:
    au_dir = Path(args.au_dir)
    if not au_dir.is_dir():
        print(f"au-clusters-dft: {au_dir} not found (it lives in ../shared beside the repository; or give --au-dir); skipped")
        return None
    rng = np.random.default_rng(args.seed)
    train, test = [], []
    for size in range(10, 20):
        frames = _read_gz(au_dir / f"au{size}.extxyz.gz")
        if size <= 15:
            train += _subsample(frames, args.train_frames_per_size, rng)
        else:
            test += _subsample(frames, args.test_frames_per_size, rng)
    return _run_case("Au10-Au15 -> Au16-Au19 (VASP)", train, test, params, args.quiet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small K and few frames (a smoke run)")
    parser.add_argument("--skip-rings", action="store_true")
    parser.add_argument("--skip-au", action="store_true")
    parser.add_argument("--rings", metavar="FILE", help="rings data file (default: the shipped data set)")
    parser.add_argument("--au-dir", default=str(AU_DIR), help="au-clusters-dft directory (default: ../shared/data/au-clusters-dft)")
    parser.add_argument("--train-frames-per-size", type=int, default=300)
    parser.add_argument("--test-frames-per-size", type=int, default=150)
    parser.add_argument("--n-references-norm", type=int, default=5000)
    parser.add_argument("--n-references-direction", type=int, nargs="+", default=[1000], help="one or more K_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.train_frames_per_size, args.test_frames_per_size = 20, 10
        args.n_references_norm, args.n_references_direction = 300, [150]
    cases = []
    for k_direction in args.n_references_direction:
        params = {"n_references_norm": args.n_references_norm, "n_references_direction": k_direction, "random_state": args.seed}
        if not args.skip_rings:
            cases.append(rings_case(args, params))
        if not args.skip_au:
            cases.append(au_case(args, params))
    env = {
        "clusterforce_version": clusterforce.__version__,
        "build": clusterforce.build_info(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "quick": args.quick,
    }
    new = [{**c, **env} for c in cases if c is not None]
    # Cases run separately (--skip-*) accumulate: a case replaces only its own earlier result.
    old = json.loads(RESULTS.read_text())["cases"] if RESULTS.exists() else []

    def key(case: dict) -> tuple:
        return case.get("case"), case.get("params", {}).get("n_references_norm"), case.get("params", {}).get("n_references_direction")

    names = {key(c) for c in new}
    report = {"cases": [c for c in old if key(c) not in names] + new}
    print("\n| case | K_norm | K_dir | force RMSE (eV/Å) | ratio to zero force | fit s | predict s | model MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in report["cases"]:
        p = c["params"]
        print(
            f"| {c['case']} | {p['n_references_norm']} | {p['n_references_direction']} | {c['force_rmse']:.3f} | "
            f"{c['ratio_to_zero_force']:.2f} | {c['fit_s']:.0f} | {c['predict_s']:.0f} | {c.get('model_mb', float('nan')):.1f} |"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
