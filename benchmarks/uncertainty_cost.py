"""What the per-atom uncertainty costs per prediction, per kind (sets each kind's ``uncertainty_is_cheap``).

Fits each kind with its default settings on every ``--every``-th frame of shipped data (gap, sann,
dart: ``dataset:na``; dml: ``dataset:rings``; sann and dart with ``--epochs`` epochs: the cost of a
prediction depends on the model's shape -- gap's sparse points per term, the networks' layers --
not on how long it trained or on how many frames), then times ``model.predict(atoms)`` against
``model.predict(atoms, properties=["uncertainty"])`` on the largest structure of the data (Na55, a
ring of 6 units), as the median of ``--repeats`` calls each, in one process and one run. The threads
are whatever OMP_NUM_THREADS gives (printed). Writes benchmarks/results/uncertainty_cost.json.

    python benchmarks/uncertainty_cost.py [--repeats 30] [--every 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from clusterforce import datasets
from clusterforce.dart.model import DARTModel
from clusterforce.dml.model import DMLModel
from clusterforce.gap.model import GAPModel
from clusterforce.sann.model import SANNModel

OUT = Path(__file__).resolve().parent / "results" / "uncertainty_cost.json"


def median_ms(call, repeats: int) -> float:
    call()  # the first call builds the compiled predictor
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    na, rings = datasets.load("na")[:: args.every], datasets.load("rings")[:: args.every]
    makers = {
        "gap": (lambda: GAPModel(progress=False), na),
        "sann": (lambda: SANNModel(epochs=args.epochs, progress=False), na),
        "dart": (lambda: DARTModel(max_epochs=args.epochs, progress=False), na),
        "dml": (lambda: DMLModel(random_state=0, progress=False), rings),
    }
    rows = {}
    for kind, (make, frames) in makers.items():
        start = time.perf_counter()
        model = make().fit(frames)
        fit = time.perf_counter() - start
        atoms = max(frames, key=len)
        plain = median_ms(lambda model=model, atoms=atoms: model.predict(atoms), args.repeats)
        row = {"fit_seconds": fit, "structure": atoms.get_chemical_formula(), "predict_ms": plain}
        if model.provides_uncertainty:
            with_u = median_ms(lambda model=model, atoms=atoms: model.predict(atoms, properties=["uncertainty"]), args.repeats)
            row.update(predict_with_uncertainty_ms=with_u, extra_percent=100.0 * (with_u - plain) / plain)
        row["uncertainty_is_cheap"] = type(model).uncertainty_is_cheap
        rows[kind] = row
        print(kind, json.dumps(row), flush=True)
    record = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "repeats": args.repeats, "every": args.every, "kinds": rows}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
