"""How well does each kind's per-atom uncertainty rank its actual force errors on held-out data?

Held out by size (not by frame): gap trained on the shipped ``na`` data without Na55 and tested
on the Na55 frames; dml trained on the shipped ``rings`` without ring6 and tested on ring6.
For every test atom: the actual force error |F_pred - F_ref| (eV/Angstrom) and the model's
uncertainty (gap: standard deviation of the local energy, eV; dml: OAMLM direction spread,
dimensionless). Reported per kind and class/element: Spearman rank correlation, and the fraction
of atoms with error > 1 eV/Angstrom (and > 0.1 eV/Angstrom for gap) that the uncertainty flags
when the threshold is the 95th percentile of the uncertainty on the training frames.
Writes ``benchmarks/results/uncertainty_calibration.{json,md}``.

    python benchmarks/uncertainty_calibration.py [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from clusterforce import datasets
from clusterforce.dml.model import DMLModel
from clusterforce.gap.model import GAPModel
from scipy.stats import spearmanr

RESULTS = Path(__file__).resolve().parent / "results"


def per_atom(model, frames, *, gap: bool):
    errors, unc, labels = [], [], []
    for atoms in frames:
        out = model.predict(atoms, variance=True) if gap else model.predict(atoms)
        errors.append(np.linalg.norm(out["forces"] - atoms.get_forces(), axis=1))
        unc.append(out["uncertainty"])
        labels.append(np.array(atoms.get_chemical_symbols()) if gap else np.asarray(out["classes"]))
    return np.concatenate(errors), np.concatenate(unc), np.concatenate(labels)


def table_rows(kind, err, unc, labels, threshold, big):
    rows = []
    for label in sorted(set(labels)):
        m = labels == label
        if m.sum() < 5:
            continue
        rho = spearmanr(unc[m], err[m]).statistic
        flagged = {f"flagged_err_gt_{b}": (float((unc[m][err[m] > b] > threshold).mean()) if (err[m] > b).any() else None) for b in big}
        rows.append(
            {
                "kind": kind,
                "class": str(label),
                "atoms": int(m.sum()),
                "spearman": float(rho),
                "rmse": float(np.sqrt((err[m] ** 2).mean())),
                **{f"n_err_gt_{b}": int((err[m] > b).sum()) for b in big},
                **flagged,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller models (fewer sparse points / references)")
    args = parser.parse_args()
    rows = []

    na = datasets.load("na")
    train = [a for a in na if len(a) != 55]
    test = [a for a in na if len(a) == 55]
    gap = GAPModel(progress=False).fit(train)
    err_tr, unc_tr, _ = per_atom(gap, train[::4], gap=True)
    err, unc, labels = per_atom(gap, test, gap=True)
    rows += table_rows("gap (Na, held out Na55)", err, unc, labels, np.percentile(unc_tr, 95), (0.1, 1.0))

    rings = datasets.load("rings")
    train = [a for a in rings if a.info["system"] != "ring6"]
    test = [a for a in rings if a.info["system"] == "ring6"][::2]
    k = (1000, 500) if args.quick else (2000, 1000)
    dml = DMLModel(n_references_norm=k[0], n_references_direction=k[1], progress=False).fit(train)
    _, unc_tr, _ = per_atom(dml, train[::10], gap=False)
    err, unc, labels = per_atom(dml, test, gap=False)
    rows += table_rows("dml (rings, held out ring6)", err, unc, labels, np.percentile(unc_tr, 95), (1.0,))

    lines = ["| kind | class | atoms | force RMSE (eV/Å) | Spearman ρ(uncertainty, error) | atoms err > 1 eV/Å | flagged |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        flagged = r.get("flagged_err_gt_1.0")
        lines.append(f"| {r['kind']} | {r['class']} | {r['atoms']} | {r['rmse']:.3f} | {r['spearman']:.2f} | {r['n_err_gt_1.0']} | "
                     f"{'-' if flagged is None else f'{100 * flagged:.0f} %'} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "uncertainty_calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "uncertainty_calibration.md").write_text("# Uncertainty vs held-out force error\n\n" + table + "\n")


if __name__ == "__main__":
    main()
