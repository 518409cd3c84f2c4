"""GAP benchmark: accuracy, training time and peak memory, prediction speed, and baselines.

Runs, each fit in its own child process so its peak RSS is its own:

* ``na``: the shipped Na data set (GFN1-xTB), random held-out split. Paper anchor (DFT Na55,
  gap-sodium paper): 0.438 meV/atom and 19.2 meV/A.
* ``au``: ../shared/data/au-clusters-dft, train on Au10-Au15, test on Au16-Au19 (subsampled).
  Baselines on the same split: scikit-learn KernelRidge (RBF) and a linear ridge fit, both on
  the per-structure sum of the same SOAP vectors, energies only.
* ``m6000``: peak RSS of a fit with 6000 SOAP sparse points (the paper: 180 GB for M1), for two
  frame counts, to show memory is O(M^2 + chunk) and not O(frames).
* prediction time per atom through the compiled predictor against the numpy design-row path
  (``rows @ alpha``) on the same structures (ratio).

Usage::

    python benchmarks/bench_gap.py                 # everything (tens of minutes on 1 core)
    python benchmarks/bench_gap.py --quick         # small subsets, a few minutes
    python benchmarks/bench_gap.py --only au na

Writes benchmarks/results/gap.json and gap.md and prints the markdown tables. OMP_NUM_THREADS is set to 1 in
the children unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"
RESULTS = ROOT / "benchmarks" / "results"


# ------------------------------------------------------------------ data


def read_gz_extxyz(path: Path):
    """Frames of a gzipped extxyz file, decompressed in memory first (ase.io.read on a gzip
    stream seeks back to every frame and re-decompresses from the start: minutes per file)."""
    import ase.io

    with gzip.open(path, "rt") as fh:
        text = fh.read()
    return ase.io.read(io.StringIO(text), index=":", format="extxyz")


def au_frames(shared: str, sizes, per_size: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        frames = read_gz_extxyz(Path(shared) / "data" / "au-clusters-dft" / f"au{n}.extxyz.gz")
        idx = np.sort(rng.choice(len(frames), size=min(per_size, len(frames)), replace=False))
        out += [frames[i] for i in idx]
    return out


def na_frames(path: str | None):
    if path:
        import ase.io

        return read_gz_extxyz(Path(path)) if str(path).endswith(".gz") else ase.io.read(path, ":")
    from clusterforce.data import datasets

    if "na" not in datasets.available():
        return None
    return read_gz_extxyz(datasets.path("na"))


# ------------------------------------------------------------------ children


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def terms_from(spec: list[dict]):
    from clusterforce.kinds.gap import term_from_dict

    return tuple(term_from_dict(t) for t in spec)


def prediction_timing(model, frames, repeats: int = 3) -> dict:
    """Seconds per atom: compiled predictor vs numpy design rows contracted with alpha."""
    from clusterforce.kinds.gap.design import Sample, sample_rows

    atoms_total = sum(len(a) for a in frames)
    t = time.perf_counter()
    for _ in range(repeats):
        for a in frames:
            model.predict(a)
    cpp = (time.perf_counter() - t) / (repeats * atoms_total)
    alpha = np.concatenate(model.alpha_)
    t = time.perf_counter()
    max_diff = 0.0
    for a in frames:
        g = model._geometry(a, "bench")
        s = Sample(g, 0.0, np.zeros((len(a), 3)), 1.0, np.ones(len(a)))
        rows, _ = sample_rows(model.kernels_, s)
        forces = (rows[1:] @ alpha).reshape(-1, 3)
        max_diff = max(max_diff, float(np.abs(forces - model.predict(a)["forces"]).max()))
    numpy_path = (time.perf_counter() - t) / atoms_total
    out = {"cpp_s_per_atom": cpp, "numpy_rows_s_per_atom": numpy_path, "speedup": numpy_path / cpp, "max_force_diff": max_diff}
    if model.variance_ is not None:
        # Force uncertainty: the compiled predict(properties=["uncertainty"]) against numpy's BLAS on the same
        # quadratic forms, diag(G V G^T) with G the force rows (3n x M) of the design path.
        t = time.perf_counter()
        for a in frames:
            model.predict(a, properties=["uncertainty"])
        out["cpp_variance_s_per_atom"] = (time.perf_counter() - t) / atoms_total
        t = time.perf_counter()
        for a in frames:
            g = model._geometry(a, "bench")
            rows, _ = sample_rows(model.kernels_, Sample(g, 0.0, np.zeros((len(a), 3)), 1.0, np.ones(len(a))))
            np.einsum("ij,ij->i", rows[1:] @ model.variance_, rows[1:])
        out["numpy_variance_s_per_atom"] = (time.perf_counter() - t) / atoms_total
    return out


def child_gap(task: dict) -> dict:
    from clusterforce.data import get_energy
    from clusterforce.kinds.gap.model import GAPModel

    train, test = load_split(task)
    n_train_atoms = sum(len(a) for a in train)
    model = GAPModel(
        terms=terms_from(task["terms"]),
        sigma_energy=task["sigma_energy"],
        sigma_force=task["sigma_force"],
        variance=task.get("variance", True),
        progress=False,
    )
    t = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - t
    out = {
        "n_train": len(train),
        "n_train_atoms": n_train_atoms,
        "n_test": len(test),
        "n_sparse": model.training_["n_sparse"],
        "fit_seconds": fit_s,
        "peak_rss_mb": peak_rss_mb(),
        "train": model.training_["metrics"],
    }
    if test:
        out["test"] = model.score_frames(test)
        out["prediction"] = prediction_timing(model, test[: task.get("timing_frames", 20)])
        e_test = np.array([get_energy(a) / len(a) for a in test])
        out["test_energy_std_mev_per_atom"] = float(1000 * e_test.std())
    return out


def child_baselines(task: dict) -> dict:
    """KernelRidge (RBF) and linear ridge on per-structure summed SOAP, energies only."""
    from clusterforce import _kernels
    from clusterforce.data import get_energy
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.preprocessing import StandardScaler

    train, test = load_split(task)
    soap_spec = next(t for t in task["terms"] if t["kind"] == "soap")
    numbers = sorted({int(z) for a in train + test for z in a.numbers})
    soap = _kernels.SoapGTO(soap_spec["r_cut"], soap_spec["n_max"], soap_spec["l_max"], soap_spec["sigma"], numbers)

    def features(frames):
        return np.array([soap.compute(a.positions, a.numbers.astype(np.int32), np.arange(len(a), dtype=np.int64)).sum(0) for a in frames])

    t = time.perf_counter()
    x_train, x_test = features(train), features(test)
    y_train = np.array([get_energy(a) for a in train])
    y_test = np.array([get_energy(a) for a in test])
    n_test = np.array([len(a) for a in test])
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    # size-extensive offset: fit E - mean(E/N) N so the kernel models the remainder
    per_atom = float(np.mean(y_train / np.array([len(a) for a in train])))
    offset_train = per_atom * np.array([len(a) for a in train])
    offset_test = per_atom * n_test
    out = {"descriptor_seconds": time.perf_counter() - t}
    models = {
        "kernel_ridge_rbf": GridSearchCV(
            KernelRidge(kernel="rbf"),
            {"alpha": list(np.logspace(-8, -2, 4)), "gamma": list(np.logspace(-5, 0, 6) / x_train.shape[1])},
            cv=3,
        ),
        "linear_ridge": RidgeCV(alphas=np.logspace(-6, 3, 19)),
    }
    for name, est in models.items():
        t = time.perf_counter()
        est.fit(x_train, y_train - offset_train)
        pred = est.predict(x_test) + offset_test
        de = 1000 * (pred - y_test) / n_test
        out[name] = {
            "energy_rmse_mev_per_atom": float(np.sqrt(np.mean(de**2))),
            "energy_mae_mev_per_atom": float(np.mean(np.abs(de))),
            "fit_seconds": time.perf_counter() - t,
            "params": getattr(est, "best_params_", {"alpha": float(getattr(est, "alpha_", np.nan))}),
        }
    return out


def load_split(task: dict):
    if task["data"] == "au":
        train = au_frames(task["shared"], range(10, 16), task["train_per_size"], seed=task["seed"])
        test = au_frames(task["shared"], range(16, 20), task["test_per_size"], seed=task["seed"] + 1) if task["test_per_size"] else []
        return train, test
    from clusterforce.data import train_test_split_frames

    frames = na_frames(task.get("na_path"))
    if task.get("max_frames") and len(frames) > task["max_frames"]:
        rng = np.random.default_rng(task["seed"])
        frames = [frames[i] for i in np.sort(rng.choice(len(frames), task["max_frames"], replace=False))]
    return train_test_split_frames(frames, test_size=task["test_size"], seed=task["seed"])


def run_child(task: dict, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {task['name']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ configuration


def soap_term(**kw) -> dict:
    base = {
        "kind": "soap",
        "delta": 1.0,
        "r_cut": 6.0,
        "n_max": 8,
        "l_max": 4,
        "sigma": 0.6,
        "zeta": 4,
        "n_sparse": 1000,
        "sparse_method": "cur",
    }
    return {**base, **kw}


def tasks(args) -> list[dict]:
    from clusterforce.kinds.gap import default_terms

    quick = args.quick
    au_terms = [
        {"kind": "2b", "delta": 0.5, "r_cut": 6.0, "width": 1.0, "theta": 0.6, "n_sparse": 20, "sparse_method": "uniform"},
        {"kind": "3b", "delta": 0.05, "r_cut": 3.5, "width": 1.0, "theta": 0.6, "n_sparse": 100, "sparse_method": "uniform"},
        soap_term(n_sparse=300 if quick else 2000),
    ]
    out = []
    if "na" in args.only:
        na = {
            "data": "na",
            "na_path": args.na,
            "test_size": 0.2,
            "seed": 0,
            "terms": [t.to_dict() for t in default_terms(["Na"])],
            "sigma_energy": 0.001,
            "sigma_force": 0.02,
            "max_frames": 300 if quick else None,
        }
        out += [{"name": "na_gap", "kind": "gap", **na}, {"name": "na_baselines", "kind": "baselines", **na}]
    if "au" in args.only:
        au = {
            "data": "au",
            "shared": args.shared,
            "train_per_size": 60 if quick else args.au_train_per_size,
            "test_per_size": 30 if quick else 200,
            "seed": 0,
            "terms": au_terms,
            "sigma_energy": 0.002,
            "sigma_force": 0.05,
        }
        preset = [t.to_dict() for t in default_terms(["Au"])]
        out += [
            {"name": "au_gap", "kind": "gap", **au, "terms": preset, "sigma_energy": 0.001, "sigma_force": 0.02},
            {"name": "au_gap_tuned", "kind": "gap", **au},
            {"name": "au_baselines", "kind": "baselines", **au},
        ]
    if "m6000" in args.only:
        m = 1000 if quick else 6000
        for per_size in (120, 240) if quick else (120, 240):
            out.append(
                {
                    "name": f"m{m}_{per_size * 6}frames",
                    "kind": "gap",
                    "data": "au",
                    "shared": args.shared,
                    "train_per_size": per_size,
                    "test_per_size": 0,
                    "seed": 0,
                    "terms": [soap_term(n_sparse=m)],
                    "sigma_energy": 0.002,
                    "sigma_force": 0.05,
                }
            )
    return out


# ------------------------------------------------------------------ report


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def report(results: dict) -> str:
    lines = [
        "## GAP accuracy (held-out test sets)",
        "",
        "| data | model | energy RMSE (meV/atom) | energy MAE (meV/atom) | force RMSE (meV/A) | fit (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in ("na", "au"):
        for name, label in ((f"{data}_gap", "GAP defaults"), (f"{data}_gap_tuned", "GAP tuned")):
            g = results.get(name)
            if g is None:
                continue
            t = g["test"]
            lines.append(
                f"| {data} | {label} {g['n_sparse']} | {fmt(t['energy_rmse_mev_per_atom'])} | {fmt(t['energy_mae_mev_per_atom'])} | "
                f"{fmt(1000 * t['force_rmse'], 1)} | {g['fit_seconds']:.1f} | {g['peak_rss_mb']:.0f} |"
            )
        b = results.get(f"{data}_baselines", {})
        for name in ("kernel_ridge_rbf", "linear_ridge"):
            if name in b:
                r = b[name]
                lines.append(
                    f"| {data} | {name} (summed SOAP, energies only) | {fmt(r['energy_rmse_mev_per_atom'])} | "
                    f"{fmt(r['energy_mae_mev_per_atom'])} | n/a | {r['fit_seconds']:.1f} | - |"
                )
    lines += [
        "",
        "## Memory with many SOAP sparse points",
        "",
        "| run | frames | sparse points | fit (s) | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if name.startswith("m") and "frames" in name:
            lines.append(f"| {name} | {r['n_train']} | {r['n_sparse']} | {r['fit_seconds']:.0f} | {r['peak_rss_mb']:.0f} |")
    lines += [
        "",
        "## Prediction time per atom (1 thread)",
        "",
        "| data | compiled (us/atom) | numpy rows (us/atom) | speedup | with force uncertainty: compiled (us/atom) "
        "| numpy rows, diag(G V G^T) (us/atom) | speedup |",
        "|---|---|---|---|---|---|---|",
    ]
    for data in ("na", "au"):
        g = results.get(f"{data}_gap")
        if g and "prediction" in g:
            p = g["prediction"]
            row = f"| {data} | {1e6 * p['cpp_s_per_atom']:.1f} | {1e6 * p['numpy_rows_s_per_atom']:.1f} | {p['speedup']:.1f}x |"
            c, n = p.get("cpp_variance_s_per_atom"), p.get("numpy_variance_s_per_atom")
            lines.append(row + (f" {1e6 * c:.0f} | {1e6 * n:.0f} | {n / c:.1f}x |" if c else " - | - | - |"))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small subsets (minutes)")
    p.add_argument("--only", nargs="+", default=["na", "au", "m6000"], choices=["na", "au", "m6000"])
    p.add_argument("--na", help="Na data file (default: the shipped 'na' data set)")
    p.add_argument("--shared", default=str(SHARED), help="the shared directory with data/au-clusters-dft (default: ../shared)")
    p.add_argument("--au-train-per-size", type=int, default=500, help="Au10-15 frames per size for training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--tasks", nargs="+", metavar="NAME", help="run only these tasks (e.g. au_baselines), keeping the other results in the JSON"
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        task = json.loads(args.child)
        result = child_gap(task) if task["kind"] == "gap" else child_baselines(task)
        print(json.dumps(result))
        return 0
    if "au" in args.only or "m6000" in args.only:
        au_dir = Path(args.shared) / "data" / "au-clusters-dft"
        if not au_dir.is_dir():
            print(f"bench_gap: {au_dir} is missing (no shared data directory next to this clone; see --shared); skipping au and m6000")
            args.only = [o for o in args.only if o == "na"]
    if "na" in args.only and na_frames_available(args.na) is False:
        print("bench_gap: no 'na' data set shipped in this installation and no --na given; skipping na")
        args.only = [o for o in args.only if o != "na"]
    out_path = RESULTS / "gap.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(out_path.read_text()) if args.tasks and out_path.is_file() else {}
    for task in tasks(args):
        if args.tasks and task["name"] not in args.tasks:
            continue
        t = time.perf_counter()
        print(f"running {task['name']} ...", flush=True)
        results[task["name"]] = run_child(task, args.threads) | {"task": task}
        print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
        out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = report(results)
    (RESULTS / "gap.md").write_text(table + "\n")
    print(table)
    return 0


def na_frames_available(path: str | None) -> bool:
    if path:
        return Path(path).is_file()
    from clusterforce.data import datasets

    return "na" in datasets.available()


if __name__ == "__main__":
    sys.exit(main())
