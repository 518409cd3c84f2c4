"""Predictions of stored models of every kind stay what they were (tests/data/contract/).

The models and numbers were made by ``tests/data/contract/make_contract.py`` before the model
contract (one C++ structure driver for every kind) replaced the per-kind loops; any change to the
shared prediction path must leave them unchanged to round-off.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from clusterforce.core.registry import load_model

CONTRACT = Path(__file__).parent / "data" / "contract"
RECORD = json.loads((CONTRACT / "predictions.json").read_text())
TOLERANCE = 1e-10  # eV, eV/Angstrom


def structures(name: str) -> list[tuple[Atoms, dict]]:
    return [(Atoms(numbers=s["numbers"], positions=s["positions"]), s) for s in RECORD[name]["structures"]]


@pytest.mark.parametrize("name", sorted(RECORD))
def test_estimator_predictions_are_unchanged(name):
    model = load_model(CONTRACT / f"{name}.cfm")
    assert model.kind == RECORD[name]["kind"]
    for atoms, stored in structures(name):
        got = model.predict(atoms, properties=["uncertainty"] if "uncertainty" in stored else None)
        for key in ("energy", "energies", "forces", "uncertainty"):
            assert (key in stored) == (key in got), key
            if key in stored:
                np.testing.assert_allclose(got[key], stored[key], rtol=0, atol=TOLERANCE, err_msg=f"{name} {key}")
