"""The estimator base (clusterforce.core.estimator) and the Calculator's uncertainty switch, on the stored contract models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from clusterforce import Calculator
from clusterforce.core.registry import load_model

CONTRACT = Path(__file__).parent / "data" / "contract"
NAMES = ("dart_na", "dml_rings", "gap_na", "sann_na")


def first_structure(name: str) -> Atoms:
    s = json.loads((CONTRACT / "predictions.json").read_text())[name]["structures"][0]
    return Atoms(numbers=s["numbers"], positions=s["positions"])


class WarningPredictor:
    """Wraps a compiled Predictor; its results carry the C++ driver's ``warnings`` entry."""

    def __init__(self, inner, messages):
        self.inner, self.messages = inner, messages

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def compute(self, *args, **kwargs):
        return {**self.inner.compute(*args, **kwargs), "warnings": list(self.messages)}


def test_driver_warnings_are_emitted_once_per_model_and_left_out_of_the_result():
    model = load_model(CONTRACT / "gap_na.cfm")
    model._compiled = WarningPredictor(model._predictor(), ["composition outside the training data", "second note"])
    atoms = first_structure("gap_na")
    with pytest.warns(UserWarning) as caught:
        out = model.predict(atoms)
        model.predict(atoms)
    assert sorted(str(w.message) for w in caught) == ["composition outside the training data", "second note"]
    assert "warnings" not in out
    other = load_model(CONTRACT / "gap_na.cfm")  # another instance warns again
    other._compiled = WarningPredictor(other._predictor(), ["second note"])
    with pytest.warns(UserWarning, match="second note"):
        other.predict(atoms)


def test_a_property_the_model_lacks_is_refused_by_name():
    model = load_model(CONTRACT / "dml_rings.cfm")
    with pytest.raises(ValueError, match=r"this dml model does not predict energy \(it predicts forces\)"):
        model.predict(first_structure("dml_rings"), properties=["energy"])


def test_uncertainty_is_asked_for_by_property_and_refused_without_one():
    gap = load_model(CONTRACT / "gap_na.cfm")
    atoms = first_structure("gap_na")
    assert "uncertainty" not in gap.predict(atoms)
    asked = gap.predict(atoms, properties=["uncertainty"])
    np.testing.assert_allclose(asked["uncertainty"], np.sqrt(asked["forces_variance"].sum(axis=1)), rtol=1e-12)
    with pytest.raises(ValueError, match="this dart model provides no per-atom uncertainty"):
        load_model(CONTRACT / "dart_na.cfm").predict(first_structure("dart_na"), properties=["uncertainty"])


@pytest.mark.parametrize("name", NAMES)
def test_calculator_uncertainty_switch(name):
    model = load_model(CONTRACT / f"{name}.cfm")
    atoms = first_structure(name)
    default = Calculator(model)
    default.get_forces(atoms)
    assert ("uncertainty" in default.results) == (model.provides_uncertainty and model.uncertainty_is_cheap)
    off = Calculator(model, uncertainty=False)
    assert "uncertainty" not in off.implemented_properties
    off.get_forces(atoms)
    if not model.provides_uncertainty:
        with pytest.raises(ValueError, match="provides no per-atom uncertainty"):
            Calculator(model, uncertainty=True)
        return
    assert "uncertainty" not in off.results
    on = Calculator(model, uncertainty=True)
    on.get_forces(atoms)
    expected = model.predict(atoms, properties=["uncertainty"])["uncertainty"]
    np.testing.assert_allclose(on.results["uncertainty"], expected, rtol=0, atol=1e-12)
    # Not computed by default: asked for, it is computed then.
    np.testing.assert_allclose(default.get_property("uncertainty", atoms), expected, rtol=0, atol=1e-12)
