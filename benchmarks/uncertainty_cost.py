"""What the per-atom uncertainty costs per prediction, per kind (sets each kind's ``uncertainty_is_cheap``).

Fits each kind with its default settings on every ``--every``-th frame of shipped data (gap, sann,
dart: ``dataset:na``; dml: ``dataset:rings``; sann and dart with ``--epochs`` epochs: the cost of a
prediction depends on the model's shape -- gap's sparse points per term, the networks' layers --
not on how long it trained or on how many frames), then times ``model.predict(atoms)`` against
``model.predict(atoms, properties=["uncertainty"])`` on the largest structure of the data (Na55, a
ring of 6 units), as the median of ``--repeats`` calls each (the two timed in turn), in one process
and one run. The threads
are whatever OMP_NUM_THREADS gives (recorded). Writes benchmarks/results/uncertainty_cost.json (``-o``).

    python benchmarks/uncertainty_cost.py [--repeats 30] [--every 3] [--epochs 1] [--kinds gap sann dart dml]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from clusterforce.data import datasets
from clusterforce.kinds.dart.model import DARTModel
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.sann.model import SANNModel

OUT = Path(__file__).resolve().parent / "results" / "uncertainty_cost.json"


def median_ms(calls, repeats: int) -> list[float]:
    """Median wall time (ms) of each of ``calls``, timed in turn within every repeat (so a change of
    the machine's load hits them alike)."""
    for call in calls:
        call()  # the first call builds the compiled predictor
    times = np.zeros((repeats, len(calls)))
    for r in range(repeats):
        for c, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[r, c] = time.perf_counter() - start
    return list(1e3 * np.median(times, axis=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--every", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--kinds", nargs="+", default=["gap", "sann", "dart", "dml"])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    na, rings = datasets.load("na")[:: args.every], datasets.load("rings")[:: args.every]
    makers = {
        "gap": (lambda: GAPModel(progress=False), na),
        "sann": (lambda: SANNModel(epochs=args.epochs, progress=False), na),
        "dart": (lambda: DARTModel(max_epochs=args.epochs, progress=False), na),
        "dml": (lambda: DMLModel(random_state=0, progress=False), rings),
    }
    rows = {}
    for kind in args.kinds:
        make, frames = makers[kind]
        start = time.perf_counter()
        model = make().fit(frames)
        fit = time.perf_counter() - start
        atoms = max(frames, key=len)
        calls = [lambda model=model, atoms=atoms: model.predict(atoms)]
        if model.provides_uncertainty:
            calls.append(lambda model=model, atoms=atoms: model.predict(atoms, properties=["uncertainty"]))
        times = median_ms(calls, args.repeats)
        row = {"fit_seconds": fit, "structure": atoms.get_chemical_formula(), "predict_ms": times[0]}
        if len(times) > 1:
            row.update(predict_with_uncertainty_ms=times[1], extra_percent=100.0 * (times[1] - times[0]) / times[0])
        row["uncertainty_is_cheap"] = type(model).uncertainty_is_cheap
        rows[kind] = row
        print(kind, json.dumps(row), flush=True)
    record = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "repeats": args.repeats, "every": args.every, "kinds": rows}
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
