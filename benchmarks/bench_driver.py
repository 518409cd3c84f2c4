"""Structure driver: evaluate time on 2 OpenMP threads against 1, per model kind.

Run from the repository root::

    python benchmarks/bench_driver.py [--repeat 5]

Trains a small model of every kind on shipped frames (``clusterforce.data.datasets``: na for gap,
sann and dart, rings for dml), then times ``_kernels.Predictor.compute`` (the one C++ path of
Python, ASE and LAMMPS) over held-out frames with the OpenMP pool limited to 1 and to 2
threads, alternating the two settings and keeping the best of ``--repeat`` passes of each, so
machine load hits both alike. Prints a markdown table and writes
benchmarks/results/driver.json. The results of the two settings are checked to agree to 1e-12.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from clusterforce import _kernels
from clusterforce.data import datasets, species_indices
from clusterforce.kinds.dart import DARTModel
from clusterforce.kinds.dml import DMLModel
from clusterforce.kinds.gap import GAPModel, Soap, ThreeBody, TwoBody
from clusterforce.kinds.sann import SANNModel
from threadpoolctl import threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results" / "driver.json"


def models():
    terms = (
        TwoBody(delta=1.0, r_cut=6.0, width=1.0, theta=0.6, n_sparse=20),
        ThreeBody(delta=0.1, r_cut=4.5, width=1.0, theta=0.8, n_sparse=100),
        Soap(delta=0.1, r_cut=5.0, n_max=6, l_max=4, sigma=0.6, zeta=2, n_sparse=100),
    )
    return [
        ("gap", "na", GAPModel(terms=terms, baseline=True, progress=False)),
        ("sann", "na", SANNModel(epochs=1, l_max=6, hidden=(20, 20), r_cut=6.0, progress=False)),
        ("dml", "rings", DMLModel(n_references_norm=300, n_references_direction=150, random_state=0, progress=False)),
        ("dart", "na", DARTModel(feature_width=32, atom_hidden=(32,), interaction_hidden=(32, 16), max_epochs=3, progress=False)),
    ]


def file_predictor(model) -> _kernels.Predictor:
    path = Path("/tmp") / f"bench_driver_{model.kind}.cfm"
    model.save(path)
    return _kernels.Predictor.from_bytes(path.read_bytes(), str(path))


def evaluate(predictor, frames) -> list[dict]:
    return [predictor.compute(a.positions, species_indices(a, predictor.elements)) for a in frames]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for kind, data, model in models():
        frames = datasets.load(data)
        model.fit(frames[0:300:15])
        test = [frames[i] for i in range(7, 300, 30)]
        predictor = file_predictor(model)
        best = {1: np.inf, 2: np.inf}
        out = {}
        for _ in range(args.repeat):
            for threads in (1, 2):
                with threadpool_limits(limits=threads, user_api="openmp"):
                    start = time.perf_counter()
                    out[threads] = evaluate(predictor, test)
                    best[threads] = min(best[threads], time.perf_counter() - start)
        worst = max(float(np.abs(a["forces"] - b["forces"]).max()) for a, b in zip(out[1], out[2]))
        if worst > 1e-12:
            raise RuntimeError(f"{kind}: 2 threads differ from 1 by {worst} eV/Angstrom")
        rows.append(
            {
                "kind": kind,
                "data": data,
                "frames": len(test),
                "atoms": int(sum(len(a) for a in test)),
                "seconds_1_thread": best[1],
                "seconds_2_threads": best[2],
                "ratio_2_over_1": best[2] / best[1],
                "max_force_difference": worst,
            }
        )
    print("| kind | data | frames | 1 thread (s) | 2 threads (s) | 2/1 | max dF (eV/A) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['kind']} | {r['data']} | {r['frames']} | {r['seconds_1_thread']:.3f} | {r['seconds_2_threads']:.3f} "
            f"| {r['ratio_2_over_1']:.2f} | {r['max_force_difference']:.1e} |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.node(), "cpus": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
