"""Where a gap prediction spends its time: SOAP power spectrum, its gradients, the kernel, 2b + 3b.

One rattled Au147 icosahedron, one thread, the default gold gap (preset ``metal``: SOAP 5.5 A,
n_max 8, l_max 6, 2000 sparse points, zeta 2, predicted as a quadratic form), the same with zeta 4
(a sum over the sparse points), and its 2b + 3b terms alone (unmapped), all trained here on
EMT-labelled rattled Au55/Au147 (the timing depends on the model's sizes, not on its data). The
pieces are timed through the compiled code each one runs:

- ``soap values``: the power spectrum of every centre (``SoapGTO.compute``);
- ``soap values + gradients``: the same plus dp/dr contracted with per-centre weights
  (``SoapGTO.contract_gradients``), which is what a force evaluation needs from SOAP (the
  prediction contracts dE/dp the same way, through the expansion coefficients);
- ``soap values + full dp/dr (not used)``: the (pairs, 3, F) gradient array the prediction formed
  before it contracted through the coefficients, for comparison;
- ``2b + 3b``: a model of those terms alone;
- ``kernel (zeta 2 / 4)``: the full prediction minus the two above.

Writes ``benchmarks/results/gap_time_breakdown.json`` and prints a table.

    python benchmarks/gap_time_breakdown.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402
from ase.cluster import Icosahedron  # noqa: E402
from clusterforce import _kernels  # noqa: E402
from clusterforce.kinds.gap.model import GAPModel  # noqa: E402
from clusterforce.kinds.gap.terms import PRESETS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def rattled(shells: int, seed: int, scale: float = 0.1):
    atoms = Icosahedron("Au", shells)
    atoms.positions += np.random.default_rng(seed).normal(0.0, scale, atoms.positions.shape)
    return atoms


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    frames = []
    for seed in range(16):
        atoms = rattled(3 if seed % 2 else 4, seed)
        atoms.calc = EMT()
        atoms.get_forces()
        frames.append(atoms)
    preset = PRESETS["metal"]
    soap_term = next(t for t in preset if t.kind == "soap")
    models = {
        "zeta 2 (default)": GAPModel(terms=preset, variance=False, progress=False).fit(frames),
        "zeta 4": GAPModel(
            terms=[dataclasses.replace(t, zeta=4) if t.kind == "soap" else t for t in preset], variance=False, progress=False
        ).fit(frames),  # fmt: skip
        "2b + 3b": GAPModel(terms=[t for t in preset if t.kind != "soap"], variance=False, progress=False).fit(frames),
    }
    target = rattled(4, 99)
    n = len(target)
    soap = _kernels.SoapGTO(soap_term.r_cut, soap_term.n_max, soap_term.l_max, soap_term.sigma, [79], cutoff_width=soap_term.r_cut_width)
    species, centres = target.numbers.astype(np.int32), np.arange(n)
    weights = np.random.default_rng(0).normal(size=(n, soap.n_features))
    t = {
        "soap values": best_of(lambda: soap.compute(target.positions, species, centres)),
        "soap values + gradients": best_of(lambda: soap.contract_gradients(target.positions, species, centres, weights)),
        # The alternative the prediction no longer takes: every dp/dr formed, then contracted.
        "soap values + full dp/dr (not used)": best_of(lambda: soap.compute_with_gradients(target.positions, species, centres)),
    }
    for name, model in models.items():
        t[f"predict, {name}"] = best_of(lambda model=model: model.predict(target))
    t["kernel, zeta 2"] = t["predict, zeta 2 (default)"] - t["predict, 2b + 3b"] - t["soap values + gradients"]
    t["kernel, zeta 4"] = t["predict, zeta 4"] - t["predict, 2b + 3b"] - t["soap values + gradients"]
    sparse = models["zeta 2 (default)"].training_["n_sparse"]
    print(f"Au{n}, one thread, SOAP features {soap.n_features}, sparse points {sparse}")
    print("| piece | ms per structure | ms per atom | share of the zeta 4 prediction |")
    print("|---|---:|---:|---:|")
    total = t["predict, zeta 4"]
    for name, seconds in t.items():
        print(f"| {name} | {1e3 * seconds:.1f} | {1e3 * seconds / n:.3f} | {seconds / total:.0%} |")
    RESULTS.mkdir(exist_ok=True)
    out = {"atoms": n, "n_features": soap.n_features, "n_sparse": sparse, "seconds": t}
    (RESULTS / "gap_time_breakdown.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
