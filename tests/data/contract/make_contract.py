"""Regenerate the contract models and their predictions (tests/test_contract.py).

Tiny models of every kind trained on a few frames of the shipped data sets, saved as ``.cfm``
files with the predictions the code of their time made (energies, forces, uncertainties) for a
few structures. Run from the repository root (``python tests/data/contract/make_contract.py``)
only when the predictions are meant to change, and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from clusterforce.core.registry import load_model
from clusterforce.data import datasets
from clusterforce.kinds.dart import DARTModel
from clusterforce.kinds.dml import DMLModel
from clusterforce.kinds.gap import GAPModel, Soap, ThreeBody, TwoBody
from clusterforce.kinds.sann import SANNModel

HERE = Path(__file__).parent
#: Frames of each data set used for training and the structures whose predictions are stored.
TRAIN = {"na": slice(0, 300, 50), "rings": slice(0, 300, 60)}
PROBE = {"na": (1, 155), "rings": (3, 250)}


def models():
    """(name, data set, estimator) of every contract model."""
    terms = (
        TwoBody(delta=1.0, r_cut=5.0, width=1.0, theta=0.6, n_sparse=8),
        ThreeBody(delta=0.1, r_cut=4.0, width=1.0, theta=0.8, n_sparse=12),
        Soap(delta=0.1, r_cut=4.0, n_max=3, l_max=2, sigma=0.6, zeta=2, n_sparse=12),
    )
    sann = dict(exponents=(0.01, 0.05), xi=(0.02, 0.1), l_max=2, hidden=(6, 6), r_cut=5.0, epochs=1, progress=False)
    dml = dict(n_max=3, l_max=2, n_references_norm=20, n_references_direction=12, random_state=0, progress=False)
    dart = dict(feature_width=6, atom_hidden=(6,), interaction_hidden=(6,), max_epochs=2, progress=False)
    return [
        ("gap_na", "na", GAPModel(terms=terms, baseline=True, progress=False)),
        ("sann_na", "na", SANNModel(**sann)),
        ("dml_rings", "rings", DMLModel(**dml)),
        ("dart_na", "na", DARTModel(**dart)),
    ]


def squeezed(atoms, factor: float = 0.8):
    """``atoms`` shrunk about its centre: pairs below the training data, where the wall acts."""
    out = atoms.copy()
    centre = out.positions.mean(axis=0)
    out.positions = centre + factor * (out.positions - centre)
    return out


def predictions(model, frames) -> list[dict]:
    out = []
    for atoms in frames:
        p = model.predict(atoms, properties=["uncertainty"] if model.provides_uncertainty else None)
        row = {"positions": atoms.positions.tolist(), "numbers": atoms.numbers.tolist(), "forces": np.asarray(p["forces"]).tolist()}
        for key in ("energy", "energies", "uncertainty"):
            if key in p:
                row[key] = np.asarray(p[key]).tolist()
        out.append(row)
    return out


def main() -> None:
    record = {}
    for name, data, estimator in models():
        frames = datasets.load(data)
        estimator.fit(frames[TRAIN[data]])
        path = HERE / f"{name}.cfm"
        estimator.save(path)
        loaded = load_model(path)
        probes = [frames[i] for i in PROBE[data]]
        record[name] = {"kind": loaded.kind, "structures": predictions(loaded, probes + [squeezed(probes[0])])}
    (HERE / "predictions.json").write_text(json.dumps(record, indent=0))


if __name__ == "__main__":
    main()
