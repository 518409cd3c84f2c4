"""How well the sann last-layer (Laplace) force uncertainty tracks the force error on held-out Au sizes.

Trains sann as benchmarks/bench_neural.py does (global EKF, paper descriptor) on Au10-Au15
(``--per-size`` frames of each, from ../shared/data/au-clusters-dft; fewer than bench_neural's 500
so the run finishes in minutes on one core) and tests on Au16-Au19, held out by size. Per element:
Spearman rho between the predicted uncertainty and the atom's force error norm |F_pred - F_ref|
(eV/Angstrom), RMS uncertainty / RMS error norm (1 = calibrated on average), and the fraction of
atoms with an error above 0.5 eV/Angstrom whose uncertainty is above the 95th percentile of the
uncertainty on the training frames (what an active-learning threshold would catch).

    python benchmarks/sann_uncertainty.py [--shared DIR] [--per-size 100] [--test-per-size 50] [--epochs 4]

Writes benchmarks/results/sann_uncertainty.json and .md. Says so and exits 0 when the data is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gap import au_frames  # noqa: E402
from uncertainty_calibration import per_atom  # noqa: E402

LARGE_ERROR = 0.5  # eV/Angstrom


def element_scores(unc: np.ndarray, err: np.ndarray, threshold: float) -> dict:
    large = err > LARGE_ERROR
    return {
        "atoms": int(unc.size),
        "spearman_unc_vs_error": float(spearmanr(unc, err)[0]),
        "rms_unc_over_rms_error": float(np.sqrt(np.mean(unc**2)) / np.sqrt(np.mean(err**2))),
        "rms_error_eV_per_A": float(np.sqrt(np.mean(err**2))),
        "rms_unc_eV_per_A": float(np.sqrt(np.mean(unc**2))),
        "train_unc_p95_eV_per_A": float(threshold),
        "large_error_atoms": int(large.sum()),
        "large_error_flagged_fraction": float(np.mean(unc[large] > threshold)) if large.any() else None,
        "flagged_fraction_all": float(np.mean(unc > threshold)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT / ".." / "shared"))
    parser.add_argument("--per-size", type=int, default=100, help="training frames per size Au10-Au15")
    parser.add_argument("--test-per-size", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "sann_uncertainty.json"))
    args = parser.parse_args()
    if not (Path(args.shared) / "data" / "au-clusters-dft").is_dir():
        print(f"sann_uncertainty: {args.shared}/data/au-clusters-dft is missing; nothing to benchmark")
        return 0
    from clusterforce.kinds.sann import SANNModel

    train = au_frames(args.shared, range(10, 16), args.per_size, 0)
    test = au_frames(args.shared, range(16, 20), args.test_per_size, 1)
    start = time.perf_counter()
    model = SANNModel(epochs=args.epochs, progress=False).fit(train)
    fit_seconds = time.perf_counter() - start
    train_err, train_unc, train_symbols = per_atom(model, train, variance=True)
    test_err, test_unc, test_symbols = per_atom(model, test, variance=True)
    rows = {}
    for element in sorted(set(test_symbols)):
        threshold = np.percentile(train_unc[train_symbols == element], 95)
        sel = test_symbols == element
        rows[element] = {
            "test": element_scores(test_unc[sel], test_err[sel], threshold),
            "train": element_scores(train_unc[train_symbols == element], train_err[train_symbols == element], threshold),
        }
    title = (
        f"sann (EKF, {args.epochs} epochs) trained on Au10-Au15 ({args.per_size} frames per size), "
        f"tested on Au16-Au19 ({args.test_per_size} per size), one run; fit {fit_seconds:.0f} s"
    )
    lines = [
        title,
        "",
        "| element | set | atoms | Spearman rho (unc vs error) | RMS unc / RMS error | RMS error (eV/A) "
        f"| atoms with error > {LARGE_ERROR} eV/A | of those, unc > train p95 | all atoms with unc > train p95 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for element, sets in rows.items():
        for name, r in sets.items():
            flagged = "-" if r["large_error_flagged_fraction"] is None else f"{r['large_error_flagged_fraction']:.2f}"
            lines.append(
                f"| {element} | {name} | {r['atoms']} | {r['spearman_unc_vs_error']:.2f} | {r['rms_unc_over_rms_error']:.2f} "
                f"| {r['rms_error_eV_per_A']:.3f} | {r['large_error_atoms']} | {flagged} | {r['flagged_fraction_all']:.2f} |"
            )
    table = "\n".join(lines)
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "rows": rows,
        "per_size": args.per_size,
        "test_per_size": args.test_per_size,
        "epochs": args.epochs,
        "fit_seconds": fit_seconds,
        "training_uncertainty": model.training_.get("uncertainty"),
    }
    out.write_text(json.dumps(record, indent=2))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
