"""The per-frame out-of-domain score (clusterforce.core.domain, C++ domain.hpp), every kind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _frames import emt_frames
from ase import Atoms
from clusterforce import Calculator
from clusterforce.core import domain, modelfile
from clusterforce.core.registry import load_model
from clusterforce.kinds.dart.model import DARTModel
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.gap import TwoBody
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.sann import SANNModel

CONTRACT = Path(__file__).parent / "data" / "contract"
KINDS = {
    "gap": lambda: GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=15)], progress=False),
    "dml": lambda: DMLModel(n_max=4, l_max=3, n_references_norm=60, n_references_direction=40, random_state=0, progress=False),
    "sann": lambda: SANNModel(
        epochs=1, exponents=[0.0028, 0.011, 0.059], xi=[0.005, 0.06, 0.48], l_max=4, hidden=(10, 10), r_cut=6.0, progress=False
    ),
    "dart": lambda: DARTModel(max_epochs=5, feature_width=12, atom_hidden=(12,), interaction_hidden=(16, 8), progress=False),
}


@pytest.fixture(scope="module")
def frames():
    return emt_frames(30, seed=0, rattle=0.1)


@pytest.fixture(scope="module", params=sorted(KINDS))
def fitted(request, frames):
    return KINDS[request.param]().fit(frames)


def scaled(atoms: Atoms, factor: float) -> Atoms:
    """A copy scaled about its centroid by ``factor``, without a reference."""
    out = atoms.copy()
    centre = out.positions.mean(axis=0)
    out.positions = centre + factor * (out.positions - centre)
    return out


def ask(model, atoms):
    return model.predict(atoms, properties=["uncertainty"] if model.provides_uncertainty else None)


@pytest.mark.parametrize("factor", [0.88, 1.12])
def test_the_flag_fires_on_squeezed_and_stretched_copies(fitted, frames, factor):
    out = ask(fitted, scaled(frames[3], factor))
    assert out["outside_domain"] and out["domain_score"] > 1
    assert out["domain_parts"]["packing"] > 1  # the geometry alone says so, uncertainty or not
    plain = fitted.predict(scaled(frames[3], factor))
    assert plain["outside_domain"]


def test_no_geometric_part_fires_on_the_training_frames(fitted, frames):
    for atoms in frames:
        parts = ask(fitted, atoms)["domain_parts"]
        assert parts["short_pair"] <= 1  # r_min is the shortest training distance
        assert parts["packing"] <= 1


def test_the_calibrated_uncertainty_does_not_flag_the_training_frames():
    """gap's limit comes from its left-out groups; on its own training frames nothing is outside."""
    train = emt_frames(30, seed=0, rattle=0.1)
    model = KINDS["gap"]().fit(train)
    meta = model.domain_["metadata"]
    assert meta["calibration_source"] == "left-out calibration groups" and meta["calibration_frames"] > 10
    outs = [ask(model, a) for a in train]
    assert not any(o["outside_domain"] for o in outs)
    assert all(np.isfinite(o["domain_parts"]["uncertainty"]) for o in outs)


def test_the_score_is_the_same_from_predict_the_file_and_ase(fitted, frames, tmp_path):
    atoms = scaled(frames[5], 1.05)
    path = tmp_path / "model.cfm"
    fitted.save(path)
    loaded = load_model(path)
    want, got = ask(fitted, atoms), ask(loaded, atoms)
    assert got["domain_score"] == pytest.approx(want["domain_score"], rel=1e-12)
    calc = Calculator(loaded, uncertainty=bool(loaded.provides_uncertainty) or None)
    atoms.calc = calc
    atoms.get_forces()
    assert calc.results["domain_score"] == pytest.approx(want["domain_score"], rel=1e-12)
    assert calc.results["outside_domain"] == want["outside_domain"]


def test_files_without_the_reference_load_and_predict_without_a_score():
    expected = json.loads((CONTRACT / "predictions.json").read_text())
    for name in expected:
        model = load_model(CONTRACT / f"{name}.cfm")
        s = expected[name]["structures"][0]
        out = model.predict(Atoms(numbers=s["numbers"], positions=s["positions"]))
        assert "domain_score" not in out and getattr(model, "domain_", None) is None


def test_partial_fit_pools_the_packing_statistics(frames):
    elements = ["Au"]
    whole = domain.reference(frames, elements)
    pooled = domain.extended(domain.reference(frames[:12], elements), frames[12:], elements)
    np.testing.assert_allclose(pooled["packing"], whole["packing"], rtol=1e-10)
    assert pooled["metadata"]["training_frames"] == len(frames)


def test_a_reference_without_its_metadata_is_refused_by_name(frames, tmp_path):
    model = KINDS["dart"]().fit(frames[:10])
    arrays, metadata = model._contents()
    metadata.pop("domain")
    path = tmp_path / "broken.cfm"
    modelfile.save(path, kind="dart", arrays=arrays, metadata=metadata)
    with pytest.raises(modelfile.ModelFileError, match="domain.radius"):
        load_model(path)


def test_the_uncertainty_limit_is_the_log_normal_quantile():
    values = np.exp(np.random.default_rng(0).normal(-2.0, 0.3, 4000))
    limit = domain.uncertainty_limit(values)
    assert np.mean(values > limit) == pytest.approx(domain.FALSE_POSITIVE_RATE, abs=0.005)
