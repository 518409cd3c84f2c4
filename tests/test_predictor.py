"""The one model contract (cpp/include/clusterforce/models.hpp, structure.hpp) for every kind:
``_kernels.Predictor``, the estimators' predict and the ASE calculator share its input checks,
its repulsive wall and its extrapolation flags, and its results do not depend on the thread count."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from clusterforce import Calculator, _kernels
from clusterforce.core import baseline as pair_wall
from clusterforce.core import modelfile
from clusterforce.core.registry import load_model
from clusterforce.data import datasets, species_indices
from threadpoolctl import threadpool_limits

CONTRACT = Path(__file__).parent / "data" / "contract"
RECORD = json.loads((CONTRACT / "predictions.json").read_text())
KINDS = sorted(RECORD)


def _contract_module():
    spec = importlib.util.spec_from_file_location("make_contract", CONTRACT / "make_contract.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """The contract models trained again with this code: their files carry training/r_min."""
    make = _contract_module()
    out = {}
    for name, data, estimator in make.models():
        estimator.fit(datasets.load(data)[make.TRAIN[data]])
        path = tmp_path_factory.mktemp(name) / f"{name}.cfm"
        estimator.save(path)
        out[name] = (estimator, path)
    return out


def probe(name: str) -> Atoms:
    s = RECORD[name]["structures"][0]
    return Atoms(numbers=s["numbers"], positions=s["positions"])


def compute(predictor, atoms: Atoms, **kw) -> dict:
    return predictor.compute(atoms.positions, species_indices(atoms, predictor.elements), **kw)


@pytest.mark.parametrize("name", KINDS)
def test_predictor_reproduces_the_stored_predictions(name):
    predictor = _kernels.Predictor.from_bytes((CONTRACT / f"{name}.cfm").read_bytes(), f"{name}.cfm")
    kind = RECORD[name]["kind"]
    assert predictor.kind == kind and predictor.has_energy == (kind != "dml")
    assert predictor.cutoff == (0.0 if kind == "dart" else pytest.approx(predictor.cutoff)) and predictor.cutoff >= 0
    for s in RECORD[name]["structures"]:
        atoms = Atoms(numbers=s["numbers"], positions=s["positions"])
        out = compute(predictor, atoms, uncertainty=predictor.has_uncertainty)
        np.testing.assert_allclose(out["forces"], s["forces"], rtol=0, atol=1e-10)
        assert out["extrapolating"].dtype == bool and out["extrapolating"].shape == (len(atoms),)
        if predictor.has_energy:
            assert out["energy"] == pytest.approx(s["energy"], abs=1e-10)
            np.testing.assert_allclose(out["energies"].sum(), out["energy"], atol=1e-10)
            assert out["virial"].shape == (3, 3)
        if "uncertainty" in s:
            np.testing.assert_allclose(out["uncertainty"], s["uncertainty"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", KINDS)
def test_coincident_atoms_are_a_value_error_naming_both(name):
    atoms = probe(name)
    original = atoms.positions[6].copy()
    atoms.positions[6] = atoms.positions[5] + 1e-6
    message = r"atoms 5 and 6 are at the same position \(0\.00000 Angstrom apart\)"
    predictor = _kernels.Predictor.read(str(CONTRACT / f"{name}.cfm"))
    with pytest.raises(ValueError, match=message):
        compute(predictor, atoms)
    model = load_model(CONTRACT / f"{name}.cfm")
    with pytest.raises(ValueError, match=message):
        model.predict(atoms)
    atoms.calc = Calculator(model)
    with pytest.raises(ValueError, match=message):
        atoms.get_forces()
    atoms.positions[6] = original  # the interpreter lives on: the same objects predict again
    assert np.isfinite(atoms.get_forces()).all()


@pytest.mark.parametrize("name", KINDS)
def test_non_finite_position_is_a_value_error(name):
    atoms = probe(name)
    atoms.positions[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"atom 3 has a non-finite position \(.*nan"):
        load_model(CONTRACT / f"{name}.cfm").predict(atoms)


def test_an_error_inside_the_parallel_loop_names_the_lowest_atom():
    # A bare gold cluster has core gold, a class the rings (all gold bound to S) never had.
    predictor = _kernels.Predictor.read(str(CONTRACT / "dml_rings.cfm"))
    atoms = Atoms("Au6", positions=[[2.7 * i, 0.3 * (i % 2), 0.0] for i in range(6)])
    with threadpool_limits(limits=2, user_api="openmp"):
        with pytest.raises(ValueError, match=r"^atom 0: element Au is of class Au_core, which had no training data"):
            compute(predictor, atoms)


def squeeze_pair(atoms: Atoms, r_min: np.ndarray, elements: list[str], factor: float = 0.8) -> tuple[int, int]:
    """Move atom 0's nearest neighbour to ``factor`` x their elements' shortest training distance."""
    d = atoms.get_distances(0, range(len(atoms)))
    d[0] = np.inf
    j = int(np.argmin(d))
    a, b = (elements.index(s) for s in atoms[[0, j]].get_chemical_symbols())
    atoms.set_distance(0, j, factor * r_min[a, b], fix=0.5)
    return 0, j


@pytest.mark.parametrize("name", KINDS)
def test_atoms_closer_than_the_training_data_are_flagged(name, fresh):
    estimator, path = fresh[name]
    r_min = modelfile.load(path).arrays["training/r_min"]
    predictor = _kernels.Predictor.read(str(path))
    frames = datasets.load("na" if "na" in name else "rings")
    training = frames[_contract_module().TRAIN["na" if "na" in name else "rings"]][0]
    assert not compute(predictor, training)["extrapolating"].any()  # no pair of the data is below its own minimum
    atoms = training.copy()
    i, j = squeeze_pair(atoms, r_min, predictor.elements)
    flags = compute(predictor, atoms)["extrapolating"]
    assert flags[i] and flags[j]
    np.testing.assert_array_equal(estimator.predict(atoms)["extrapolating"], flags)
    atoms.calc = Calculator(path)
    atoms.get_forces()
    np.testing.assert_array_equal(atoms.calc.results["extrapolating"], flags)


def test_files_without_the_table_flag_from_the_wall_or_not_at_all():
    # gap_na (main's code) has a wall and no training/r_min: limits r_s / (1 - WALL_MARGIN).
    mf = modelfile.load(CONTRACT / "gap_na.cfm")
    assert "training/r_min" not in mf.arrays
    limit = mf.arrays["baseline/r_s"][0, 0] / (1 - pair_wall.WALL_MARGIN)
    atoms = Atoms("Na2", positions=[[0, 0, 0], [0, 0, 0.99 * limit]])
    assert compute(_kernels.Predictor.read(str(CONTRACT / "gap_na.cfm")), atoms)["extrapolating"].all()
    atoms.positions[1, 2] = 1.01 * limit
    assert not compute(_kernels.Predictor.read(str(CONTRACT / "gap_na.cfm")), atoms)["extrapolating"].any()
    # sann_na has neither: nothing is flagged.
    atoms.positions[1, 2] = 1.0
    assert not compute(_kernels.Predictor.read(str(CONTRACT / "sann_na.cfm")), atoms)["extrapolating"].any()


def test_a_sann_file_with_a_wall_gets_it_everywhere(tmp_path):
    mf = modelfile.load(CONTRACT / "sann_na.cfm")
    r_s = np.array([[3.0]])
    arrays, metadata = pair_wall.file_entries(r_s)
    walled = tmp_path / "walled.cfm"
    modelfile.save(walled, kind="sann", arrays={**mf.arrays, **arrays}, metadata={**mf.metadata, **metadata})
    atoms = probe("sann_na")
    centre = atoms.positions.mean(axis=0)
    atoms.positions = centre + 0.8 * (atoms.positions - centre)
    species = np.zeros(len(atoms), dtype=np.int32)
    wall_energy, wall_forces = pair_wall.energy_forces(r_s, atoms, species)
    assert wall_energy > 1.0
    plain = load_model(CONTRACT / "sann_na.cfm").predict(atoms)
    got = load_model(walled).predict(atoms)
    assert got["energy"] == pytest.approx(plain["energy"] + wall_energy, abs=1e-9)
    np.testing.assert_allclose(got["forces"], plain["forces"] + wall_forces, rtol=0, atol=1e-9)
    atoms.calc = Calculator(walled)
    np.testing.assert_allclose(atoms.get_forces(), got["forces"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", KINDS)
def test_two_threads_give_the_one_thread_result(name):
    predictor = _kernels.Predictor.read(str(CONTRACT / f"{name}.cfm"))
    atoms = probe(name)
    results = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="openmp"):
            results.append(compute(predictor, atoms, uncertainty=predictor.has_uncertainty))
    for key, value in results[0].items():
        np.testing.assert_allclose(results[1][key], value, rtol=0, atol=1e-12, err_msg=key)


def test_the_predictor_says_what_the_pair_style_must_know():
    """The pair style names no kind: it asks the Predictor why a model cannot run under it (a global
    one) and why an energy model's forces are not -dE/dx (sann's come from a decoupled dummy energy)."""
    predictors = {path.stem.split("_")[0]: _kernels.Predictor.read(str(path)) for path in sorted(CONTRACT.glob("*.cfm"))}
    assert sorted(predictors) == ["dart", "dml", "gap", "sann"]
    assert [k for k, p in predictors.items() if p.pair_style_refusal] == ["dart"]
    assert "use it from Python or 'clusterforce screen'" in predictors["dart"].pair_style_refusal
    assert [k for k, p in predictors.items() if p.nonconservative_reason] == ["sann"]
    assert "decoupled dummy energy" in predictors["sann"].nonconservative_reason


def test_an_unknown_kind_lists_the_registered_ones():
    # This build has the built-in kinds only, registered in this order (cpp/include/clusterforce/kinds.hpp).
    assert _kernels.registered_kinds() == ["gap", "sann", "dml", "dart"]
    mf = modelfile.load(CONTRACT / "gap_na.cfm")
    data = modelfile.to_bytes(kind="mystery", arrays=mf.arrays, metadata=mf.metadata)
    with pytest.raises(
        ValueError, match=r"<x>: model kind 'mystery' is not supported by this clusterforce \(supported: gap, sann, dml, dart\)"
    ):
        _kernels.Predictor.from_bytes(data, "<x>")
