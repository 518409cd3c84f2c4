"""Energies across compositions: gap trained on Au38(SCH3)24 predicting [Au25(SCH3)18]- energies.

One training composition (the shipped ``dataset:au38``, GFN1-xTB, neutral) cannot fix four
per-element energies, and the test set (``dataset:au25``, GFN1-xTB, charge -1) has another
composition and charge. Measured twice, same gap otherwise:

* ``--e0 fit`` (the default): least squares of the frame energies on the element counts, which for
  one composition is the minimum-norm solution (its offsets along other compositions are arbitrary);
* ``--e0 reference:gfn1-xtb``: isolated atoms with GFN1-xTB in their ground-state spin at the data's
  electronic temperature (300 K), :mod:`clusterforce.kinds.composition`.

For each: energy RMSE on au25 (meV/atom, after nothing is shifted), force RMSE (eV/Angstrom), and
the composition/charge warnings the predictions issued (expected: exactly one per model).

The gap is cheaper than the default ligand preset (whose full fit on au38 took 25 min): every
``--stride``-th au38 frame (default 4: 50 frames), SOAP ``--n-sparse`` sparse points per species
channel (default 100 instead of 500), no variance and no uncertainty calibration. Both models use
the same settings, so the difference is e0 alone.

Usage::

    nice python benchmarks/composition_transfer.py [--stride 4] [--n-sparse 100]
        [--output benchmarks/results/composition_transfer.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from pathlib import Path

import numpy as np
from clusterforce.data import datasets, get_energy, get_forces
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.terms import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def measure(train, test, e0: str, n_sparse: int) -> dict:
    ligand = PRESETS["ligand"]
    terms = [dataclasses.replace(t, n_sparse=n_sparse) if t.kind == "soap" else t for t in ligand]
    model = GAPModel(terms=terms, e0=e0, variance=False, calibrate_uncertainty=False, progress=False)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as at_fit:
        warnings.simplefilter("always")
        model.fit(train)
    fit_seconds = time.perf_counter() - start
    with warnings.catch_warnings(record=True) as at_predict:
        warnings.simplefilter("always")
        predicted = [model.predict(a) for a in test]
    n = np.array([len(a) for a in test])
    e_err = np.array([p["energy"] - get_energy(a) for p, a in zip(predicted, test)]) / n
    f_err = np.concatenate([(p["forces"] - get_forces(a)).ravel() for p, a in zip(predicted, test)])
    texts = [str(w.message) for w in at_predict if "composition" in str(w.message) or "charge" in str(w.message)]
    return {
        "e0": e0,
        "e0_values_eV": model.e0_,
        "fit_seconds": fit_seconds,
        "rank_warning_at_fit": any("do not determine" in str(w.message) for w in at_fit),
        "energy_rmse_mev_per_atom": float(1e3 * np.sqrt(np.mean(e_err**2))),
        "energy_mean_error_mev_per_atom": float(1e3 * np.mean(e_err)),
        "force_rmse": float(np.sqrt(np.mean(f_err**2))),
        "warnings_at_predict": texts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stride", type=int, default=4, help="use every N-th au38 frame for training (default 4)")
    parser.add_argument("--n-sparse", type=int, default=100, help="SOAP sparse points per species channel (default 100)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "composition_transfer.json")
    args = parser.parse_args()
    train = datasets.load("au38")[:: args.stride]
    test = datasets.load("au25")
    rows = []
    for e0 in ("fit", "reference:gfn1-xtb"):
        rows.append(measure(train, test, e0, args.n_sparse))
        print(f"e0 {e0}: {rows[-1]['energy_rmse_mev_per_atom']:.1f} meV/atom, {rows[-1]['fit_seconds']:.0f} s fit", flush=True)
    report = {
        "train": f"dataset:au38 every {args.stride}th frame ({len(train)} frames, {train[0].get_chemical_formula()}, charge 0)",
        "test": f"dataset:au25 ({len(test)} frames, {test[0].get_chemical_formula()}, charge -1)",
        "gap": f"ligand preset, SOAP n_sparse {args.n_sparse}, variance off, no uncertainty calibration",
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['train']} -> {report['test']}; {report['gap']}")
    print(f"{'e0':<20} {'E RMSE meV/atom':>16} {'mean E err':>11} {'F RMSE eV/A':>12} {'fit s':>7} {'rank warn':>9} {'warnings':>8}")
    for r in rows:
        print(
            f"{r['e0']:<20} {r['energy_rmse_mev_per_atom']:>16.1f} {r['energy_mean_error_mev_per_atom']:>11.1f} "
            f"{r['force_rmse']:>12.3f} {r['fit_seconds']:>7.0f} {str(r['rank_warning_at_fit']):>9} {len(r['warnings_at_predict']):>8}"
        )
    for r in rows:
        for text in r["warnings_at_predict"]:
            print(f"[{r['e0']}] {text}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
