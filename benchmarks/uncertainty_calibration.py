"""How well does each kind's per-atom uncertainty rank its actual force errors on held-out data?

Held out by size (not by frame): gap trained on the shipped ``na`` data without Na55 and tested
on the Na55 frames, and on ``rings`` without ring6 and tested on ring6 (each with the preset its
elements get); dml trained on the shipped ``rings`` without ring6 and tested on ring6.
For every test atom: the actual force error |F_pred - F_ref| (eV/Angstrom) and the model's
uncertainty (gap: predictive standard deviation of the atom's force, eV/Angstrom, and for
comparison that of its local energy, eV; dml: the force error its OAMLM spread implies,
‖F‖ sqrt(2 spread), eV/Angstrom, and for comparison the spread itself). Reported per
kind and class/element: Spearman rank correlation, the fraction of atoms with error > 1 eV/Angstrom
(and > 0.1 eV/Angstrom) that the uncertainty flags when the threshold is the 95th percentile of the
uncertainty on the training frames, and for eV/Angstrom uncertainties the ratio of the RMS
predicted to the RMS actual error (1 = calibrated in scale).
With ``--independent MODEL FRAMES`` also a trained gap model on frames of other trajectories (no
training-frame threshold there, so no flagged fractions).

Each row also gives a reference for how much of the error the local environment, as SOAP sees it,
explains: for every test atom the mean log error of the 10 atoms of its class with the most similar
normalised SOAP vector (the gap model's own SOAP settings; dml's descriptor), taken from test frames
more than 10 frames away (not the same moment of the same trajectory). The "kNN of errors" column
is that smoother's Spearman rho. It is not a bound (it uses the errors themselves but sees only the
normalised environment; dml's uncertainty, which scales with the predicted force norm, beats it).

Writes ``benchmarks/results/uncertainty_calibration.{json,md}``.

    python benchmarks/uncertainty_calibration.py [--quick] [--independent MODEL.cfm FRAMES.extxyz ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read
from clusterforce.core.registry import load_model
from clusterforce.data import datasets
from clusterforce.descriptors.soap import SOAP
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.gap.model import GAPModel
from scipy.stats import spearmanr

RESULTS = Path(__file__).resolve().parent / "results"


def per_atom(model, frames, *, variance: bool, key: str = "uncertainty"):
    """Force error norm (eV/Angstrom), uncertainty ``key`` and label of every atom: the element for
    models asked with ``predict(atoms, properties=["uncertainty"])`` (gap, sann), the atom class for dml."""
    errors, unc, labels = [], [], []
    for atoms in frames:
        out = model.predict(atoms, properties=["uncertainty"] if variance else None)
        errors.append(np.linalg.norm(out["forces"] - atoms.get_forces(), axis=1))
        unc.append(np.sqrt(out["energies_variance"]) if key == "energy_std" else out[key])
        labels.append(np.array(atoms.get_chemical_symbols()) if variance else np.asarray(out["classes"]))
    return np.concatenate(errors), np.concatenate(unc), np.concatenate(labels)


def environments(model, frames) -> tuple[np.ndarray, np.ndarray]:
    """Normalised SOAP vector of every atom (the gap model's SOAP term settings, or the dml
    descriptor) and the index of its frame."""
    if isinstance(model, GAPModel):
        term = next(k.term for k in model.kernels_ if k.term.kind == "soap")
        soap = SOAP(species=model.elements, r_cut=term.r_cut, n_max=term.n_max, l_max=term.l_max, sigma=term.sigma)
        vectors = [soap.compute(a) for a in frames]
    else:
        vectors = [model.descriptor_.compute(a) for a in frames]
    X = np.concatenate(vectors)
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.concatenate([np.full(len(a), i) for i, a in enumerate(frames)])


def knn_of_errors(err, X, frame, *, k: int = 10, apart: int = 10) -> float:
    """Spearman rho of each atom's mean log error over the k most similar atoms (SOAP dot product)
    in frames more than ``apart`` frames away (see the module docstring)."""
    oracle = np.full(len(err), np.nan)
    log_err = np.log(np.maximum(err, 1e-12))
    for i in range(len(err)):
        similar = np.where(np.abs(frame - frame[i]) > apart, X @ X[i], -np.inf)
        if np.isfinite(similar).sum() >= k:
            oracle[i] = log_err[np.argpartition(-similar, k)[:k]].mean()
    ok = np.isfinite(oracle)
    return float(spearmanr(oracle[ok], err[ok]).statistic) if ok.sum() >= 5 else float("nan")


def table_rows(kind, err, unc, labels, threshold, big, *, force_units: bool = False, env=None):
    rows = []
    for label in sorted(set(labels)):
        m = labels == label
        if m.sum() < 5:
            continue
        rho = spearmanr(unc[m], err[m]).statistic
        flagged = {
            f"flagged_err_gt_{b}": float((unc[m][err[m] > b] > threshold).mean()) if threshold is not None and (err[m] > b).any() else None
            for b in big
        }
        rows.append(
            {
                "kind": kind,
                "class": str(label),
                "atoms": int(m.sum()),
                "spearman": float(rho),
                "knn_of_errors": knn_of_errors(err[m], env[0][m], env[1][m]) if env is not None else None,
                "rmse": float(np.sqrt((err[m] ** 2).mean())),
                "scale_ratio": float(np.sqrt((unc[m] ** 2).mean() / (err[m] ** 2).mean())) if force_units else None,
                **{f"n_err_gt_{b}": int((err[m] > b).sum()) for b in big},
                **flagged,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller models (fewer sparse points / references)")
    parser.add_argument(
        "--independent", nargs=2, action="append", default=[], metavar=("MODEL", "FRAMES"),
        help="also rank a trained gap model's force std against its errors on frames from other trajectories "
        "(e.g. the caches of learn_sodium.py and hybrid_optimization.py); repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    rows = []
    for model_path, frames_path in args.independent:
        gap, frames = load_model(model_path), read(frames_path, ":")
        err, unc, labels = per_atom(gap, frames, variance=True)
        rows += table_rows(f"gap force std, eV/Å ({Path(model_path).name} on {Path(frames_path).name})", err, unc, labels,
                           None, (0.1, 1.0), force_units=True, env=environments(gap, frames))  # fmt: skip

    # gap with the preset of each data set: gap-sodium for Na, ligand for the rings.
    for data, held_out in (("na", "Na55"), ("rings", "ring6")):
        frames = datasets.load(data)
        train = [a for a in frames if a.info["system"] != held_out]
        test = [a for a in frames if a.info["system"] == held_out]
        gap = GAPModel(progress=False).fit(train)
        env = environments(gap, test)
        for key, name in (("uncertainty", "gap force std, eV/Å"), ("energy_std", "gap local-energy std, eV")):
            _, unc_tr, _ = per_atom(gap, train[::4], variance=True, key=key)
            err, unc, labels = per_atom(gap, test, variance=True, key=key)
            rows += table_rows(f"{name} ({data}, held out {held_out})", err, unc, labels, np.percentile(unc_tr, 95), (0.1, 1.0),
                               force_units=key == "uncertainty", env=env)  # fmt: skip

    rings = datasets.load("rings")
    train = [a for a in rings if a.info["system"] != "ring6"]
    test = [a for a in rings if a.info["system"] == "ring6"][::2]
    dml = DMLModel(**({"n_references_norm": 1000, "n_references_direction": 500} if args.quick else {}), progress=False).fit(train)
    env = environments(dml, test)
    for key, name in (("uncertainty", "dml ‖F‖ sqrt(2 spread), eV/Å"), ("spread", "dml spread")):
        _, unc_tr, _ = per_atom(dml, train[::10], variance=False, key=key)
        err, unc, labels = per_atom(dml, test, variance=False, key=key)
        rows += table_rows(f"{name} (rings, held out ring6)", err, unc, labels, np.percentile(unc_tr, 95), (0.1, 1.0),
                           force_units=key == "uncertainty", env=env)  # fmt: skip

    def percent(value):
        return "-" if value is None else f"{100 * value:.0f} %"

    header = (
        "| uncertainty | class | atoms | RMS of ‖ΔF‖ per atom (eV/Å; √3 × component RMSE) | Spearman ρ | kNN of errors ρ "
        "| RMS unc. / RMS error | err > 0.1: atoms, flagged |"
    )
    lines = [header + " err > 1: atoms, flagged |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r["scale_ratio"] is None else f"{r['scale_ratio']:.2f}"
        knn = "-" if r["knn_of_errors"] is None else f"{r['knn_of_errors']:.2f}"
        lines.append(f"| {r['kind']} | {r['class']} | {r['atoms']} | {r['rmse']:.3f} | {r['spearman']:.2f} | {knn} | {ratio} | "
                     f"{r['n_err_gt_0.1']}, {percent(r.get('flagged_err_gt_0.1'))} | "
                     f"{r['n_err_gt_1.0']}, {percent(r.get('flagged_err_gt_1.0'))} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "uncertainty_calibration.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "uncertainty_calibration.md").write_text("# Uncertainty vs held-out force error\n\n" + table + "\n")


if __name__ == "__main__":
    main()
