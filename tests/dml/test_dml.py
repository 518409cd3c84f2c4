import numpy as np
import pytest
from _frames import emt_frames, ring, ring_frames
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from clusterforce.core import baseline as pair_wall
from clusterforce.core.modelfile import ModelFileError, to_bytes
from clusterforce.core.registry import load_model
from clusterforce.data import DataError
from clusterforce.kinds.dml import DMLModel
from clusterforce.kinds.dml.metrics import class_metrics
from dml_composed import composed_prediction
from sklearn.base import clone

SMALL = dict(n_max=4, l_max=3, n_references_norm=60, n_references_direction=40, random_state=0, progress=False)


@pytest.fixture(scope="module")
def au_model():
    return DMLModel(**SMALL).fit(emt_frames(8, seed=0))


@pytest.fixture(scope="module")
def ring_model():
    return DMLModel(**SMALL).fit(ring_frames(4, 5) + ring_frames(5, 5, seed=1))


def test_dml_learns_emt_forces(au_model):
    test = emt_frames(4, seed=1)
    out = [au_model.predict(a) for a in test]
    forces = np.concatenate([o["forces"] for o in out])
    reference = np.concatenate([a.get_forces() for a in test])
    metrics = class_metrics(forces, reference, np.concatenate([o["classes"] for o in out]))["classes"]["Au"]
    assert metrics["norm_rmse"] < 0.3 * np.linalg.norm(reference, axis=1).std() + 0.2
    assert metrics["weighted_angle_deg"] < 25.0
    o = out[0]
    assert o["forces"].shape == (13, 3) and o["uncertainty"].shape == (13,)
    assert np.all(o["norms"] >= 0)
    np.testing.assert_allclose(np.linalg.norm(o["directions"], axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(au_model.predict_forces(test[0]), o["forces"])
    assert au_model.elements == ["Au"] and au_model.classes_ == ["Au"]


def test_dml_forces_rotate_with_the_structure(ring_model):
    atoms = ring_frames(6, 1, seed=3)[0]
    forces = ring_model.predict_forces(atoms)
    rotated = atoms.copy()
    rotated.rotate(71, (0.3, -1, 2), center=(0.4, 0.1, -0.2))
    R = rotated.get_positions() - rotated.get_positions()[0]
    P = atoms.get_positions() - atoms.get_positions()[0]
    rotation, *_ = np.linalg.lstsq(P, R, rcond=None)  # R = P @ rotation
    np.testing.assert_allclose(ring_model.predict_forces(rotated), forces @ rotation, atol=1e-8)


def test_dml_ring_classes_and_save_load_identical(ring_model, tmp_path):
    assert ring_model.classes_ == ["Au_unit", "C", "H", "S"]
    path = tmp_path / "ring.cfm"
    ring_model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, DMLModel)
    atoms = ring_frames(6, 1, seed=4)[0]
    a, b = ring_model.predict(atoms), loaded.predict(atoms)
    for key in ("forces", "norms", "directions", "uncertainty"):
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(a["classes"], b["classes"])
    meta = loaded.training_
    assert meta["n_frames"] == 10 and meta["classes"]["S"]["n_references_direction"] == 40
    assert loaded.get_params() == ring_model.get_params()


def test_dml_file_stores_reference_atoms_not_their_descriptors(ring_model, tmp_path):
    # The reference descriptors are recomputed from the stored neighbourhoods, exactly.
    from clusterforce.core import modelfile

    path = tmp_path / "ring.cfm"
    ring_model.save(path)
    arrays = modelfile.load(path).arrays
    assert not any(k.endswith(("emlm/references", "oamlm/X_ref")) for k in arrays)
    part = ring_model.models_["S"]
    assert len(part.centres) == len(np.union1d(part.norm_index, part.direction_index)) <= 60
    loaded = DMLModel.load(path).models_["S"]
    np.testing.assert_array_equal(loaded.emlm.references_, part.emlm.references_)
    np.testing.assert_array_equal(loaded.oamlm.X_ref_, part.oamlm.X_ref_)


def test_dml_files_with_stored_descriptors_still_load(ring_model, tmp_path):
    # The earlier layout: float32 descriptors in place of centres and row indices.
    arrays, metadata = ring_model._file_contents()
    for name, part in ring_model.models_.items():
        pre = f"classes/{name}/"
        for key in (
            "centres/numbers",
            "centres/offsets",
            "centres/rel",
            "centres/neighbor_numbers",
            "emlm/reference_index",
            "oamlm/reference_index",
        ):
            del arrays[pre + key]
        arrays[pre + "emlm/references"] = part.emlm.references_.astype(np.float32)
        arrays[pre + "oamlm/X_ref"] = part.oamlm.X_ref_.astype(np.float32)
    path = tmp_path / "old.cfm"
    path.write_bytes(to_bytes(kind="dml", arrays=arrays, metadata=metadata))
    old = DMLModel.load(path)
    atoms = ring_frames(6, 1, seed=4)[0]
    np.testing.assert_allclose(old.predict_forces(atoms), ring_model.predict_forces(atoms), rtol=0, atol=1e-5)
    old.save(tmp_path / "again.cfm")  # re-saved in its own layout
    np.testing.assert_array_equal(DMLModel.load(tmp_path / "again.cfm").predict_forces(atoms), old.predict_forces(atoms))


def test_dml_inconsistent_centres_are_one_clear_error(ring_model, tmp_path):
    from clusterforce import _kernels

    arrays, metadata = ring_model._file_contents()
    arrays["classes/S/centres/offsets"] = arrays["classes/S/centres/offsets"] + 1000
    path = tmp_path / "bad.cfm"
    path.write_bytes(to_bytes(kind="dml", arrays=arrays, metadata=metadata))
    with pytest.raises(ModelFileError, match="bad.cfm: class S.*centres"):
        DMLModel.load(path)
    with pytest.raises(ValueError, match="bad.cfm.*centres"):
        _kernels.DmlPredictor(str(path))


def test_dml_load_rejects_damaged_files(ring_model, tmp_path):
    path = tmp_path / "ring.cfm"
    ring_model.save(path)
    raw = path.read_bytes()
    (tmp_path / "cut.cfm").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="cut.cfm: truncated model file"):
        DMLModel.load(tmp_path / "cut.cfm")


def test_dml_predict_errors_name_element_class_and_atom(ring_model, au_model):
    with pytest.raises(ValueError, match="atom 1 is S, an element this model was not trained on"):
        au_model.predict(ring(4))
    atoms = ring(4)
    # An extra Au bonded only to a ring Au: a core Au, a class the ring model never saw.
    atoms += Atoms("Au", positions=[atoms.positions[0] * 1.0 + [0, 0, 2.8]])
    with pytest.raises(ValueError, match=r"atom 24: element Au is of class Au_core, which had no training data"):
        ring_model.predict(atoms)
    # The chemistry is fixed at training: bare gold is still thiolate-classified (core Au).
    assert ring_model.chemistry_ == "thiolate" and au_model.chemistry_ == "generic"
    with pytest.raises(ValueError, match="is of class Au_core, which had no training data"):
        ring_model.predict(emt_frames(1)[0])


def test_dml_fit_validation():
    frames = emt_frames(2)
    bare = frames[1].copy()  # a copy has no calculator: no forces
    with pytest.raises(DataError, match="frame 1.*no forces"):
        DMLModel(**SMALL).fit([frames[0], bare])
    with pytest.raises(ValueError, match="n_references_norm must be a positive integer"):
        DMLModel(**{**SMALL, "n_references_norm": 0}).fit(frames)
    with pytest.raises(ValueError, match="loss must be one of"):
        DMLModel(**{**SMALL, "loss": "cubic"}).fit(frames)


def test_dml_leaves_zero_forces_out_of_direction_training():
    frames = emt_frames(3)
    forces = frames[0].get_forces().copy()
    forces[:4] = 0.0
    frames[0].calc = SinglePointCalculator(frames[0], energy=0.0, forces=forces)
    model = DMLModel(**SMALL).fit(frames)
    stats = model.training_["classes"]["Au"]
    assert stats["n_zero_force_excluded"] == 4
    assert stats["n_references_direction"] == 35


def test_dml_clone_and_params():
    model = DMLModel(**{**SMALL, "sigma2": {"S": 0.3}})
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert twin._sigma2("S") == 0.3 and twin._sigma2("Au_unit") == twin._sigma2("H") == 0.5  # unlisted classes: DEFAULT_SIGMA2


def test_dml_predict_is_the_compiled_predictor(ring_model, tmp_path):
    from clusterforce import _kernels

    atoms = ring_frames(6, 1, seed=5)[0]
    path = tmp_path / "ring.cfm"
    ring_model.save(path)
    predictor = _kernels.DmlPredictor(str(path))
    index = {symbol: k for k, symbol in enumerate(predictor.elements)}
    ref = predictor.compute(atoms.positions, np.array([index[s] for s in atoms.get_chemical_symbols()]))
    got = ring_model.predict(atoms)  # fitted, never loaded: the predictor comes from its bytes
    np.testing.assert_array_equal(got["forces"], ref["forces"])
    np.testing.assert_array_equal(got["norms"], ref["norms"])
    np.testing.assert_array_equal(got["uncertainty"], ref["uncertainty"])
    np.testing.assert_array_equal(got["classes"], np.array(predictor.classes)[ref["class_index"]])
    loaded = DMLModel.load(path).predict(atoms)
    for key in ("forces", "norms", "directions", "uncertainty", "classes"):
        np.testing.assert_array_equal(loaded[key], got[key])
    # The estimator's pieces, composed in Python, agree with the compiled path to round-off.
    python = composed_prediction(ring_model, atoms)
    np.testing.assert_allclose(python["forces"], got["forces"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(python["classes"], got["classes"])


def test_dml_predictor_cache_follows_fit_clone_and_pickle(tmp_path):
    import pickle

    frames = emt_frames(6, seed=2)
    model = DMLModel(**SMALL).fit(frames[:3])
    atoms = frames[5]
    first = model.predict_forces(atoms)
    assert "_compiled" not in model.get_params() and not hasattr(clone(model), "_compiled")
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict_forces(atoms), first)
    # Refitting on other data must not reuse the predictor built for the first fit.
    refit = model.fit(frames[3:])
    np.testing.assert_array_equal(refit.predict_forces(atoms), DMLModel(**SMALL).fit(frames[3:]).predict_forces(atoms))
    assert not np.array_equal(refit.predict_forces(atoms), first)


def test_dml_predictor_from_bytes_names_the_source(ring_model):
    from clusterforce import _kernels

    arrays, metadata = ring_model._file_contents()
    data = to_bytes(kind="dml", arrays=arrays, metadata=metadata)
    assert _kernels.DmlPredictor.from_bytes(data).classes == ring_model.classes_
    with pytest.raises(ValueError, match="mine.cfm: truncated model file"):
        _kernels.DmlPredictor.from_bytes(data[: len(data) // 2], "mine.cfm")


def test_dml_norms_stay_in_the_training_range_off_the_data(ring_model):
    # A ring squeezed to 60 % of its size is far from every training environment; the linear
    # EMLM would extrapolate its norms, the predictor clamps them per class (compiled and Python).
    atoms = ring_frames(5, 1, seed=6)[0]
    atoms.positions = atoms.positions.mean(axis=0) + 0.6 * (atoms.positions - atoms.positions.mean(axis=0))
    got = ring_model.predict(atoms)
    for name in ring_model.classes_:
        low, high = ring_model.models_[name].emlm.output_range_
        norms = got["norms"][got["classes"] == name]
        assert np.all((norms >= max(low, 0.0) - 1e-12) & (norms <= high + 1e-12)), name
    assert np.any(np.isclose(got["norms"], [ring_model.models_[c].emlm.output_range_[1] for c in got["classes"]]))
    np.testing.assert_allclose(composed_prediction(ring_model, atoms)["norms"], got["norms"], rtol=0, atol=1e-9)


def test_dml_flags_atoms_closer_than_the_training_data(ring_model, tmp_path):
    atoms = ring_frames(5, 1, seed=7)[0]
    assert not ring_model.predict(atoms)["extrapolating"].any()
    shortest = ring_model.training_["shortest_pairs"]
    assert set(shortest) >= {"Au-S", "S-C", "C-H"} and 1.9 < shortest["Au-S"] < 2.4
    au = int(np.flatnonzero(atoms.numbers == 79)[0])
    s = int(np.argmin(np.where(atoms.numbers == 16, atoms.get_distances(au, range(len(atoms))), np.inf)))
    atoms.set_distance(au, s, shortest["Au-S"] - 0.3, fix=0.5)
    flags = ring_model.predict(atoms)["extrapolating"]
    assert flags[au] and flags[s] and flags.sum() >= 2
    path = tmp_path / "ring.cfm"
    ring_model.save(path)
    np.testing.assert_array_equal(DMLModel.load(path).predict(atoms)["extrapolating"], flags)


def test_periodic_cells_run_the_compiled_predictor_like_the_composed_pieces():
    from _frames import emt_frames
    from ase.build import bulk

    model = DMLModel(**SMALL).fit(emt_frames(6, seed=0))
    cell = bulk("Au", "fcc", a=4.08, cubic=True).repeat((2, 2, 2))
    cell.rattle(0.05, seed=2)
    compiled = model.predict(cell)
    python = composed_prediction(model, cell)
    assert np.abs(compiled["forces"]).max() > 0.01
    np.testing.assert_allclose(compiled["forces"], python["forces"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(compiled["uncertainty"], python["uncertainty"], rtol=0, atol=1e-8)
    # A 4-atom cell where every atom sees its own periodic images.
    small = bulk("Au", "fcc", a=4.08, cubic=True)
    small.rattle(0.05, seed=3)
    np.testing.assert_allclose(model.predict(small)["forces"], composed_prediction(model, small)["forces"], rtol=0, atol=1e-8)


def test_dml_partial_fit_adds_new_environments_not_repeats(tmp_path):
    train = emt_frames(8, seed=0)
    model = DMLModel(**SMALL).fit(train)
    counts = {name: (s["n_references_norm"], s["n_references_direction"]) for name, s in model.training_["classes"].items()}
    # Farthest-point sampling leaves every unchosen atom closer to the references than their spacing.
    model.partial_fit(train[:3])
    assert {name: (s["n_references_norm"], s["n_references_direction"]) for name, s in model.training_["classes"].items()} == counts
    assert model.training_["n_frames"] == 11
    hot = emt_frames(4, seed=5, rattle=0.35)

    def scores():
        out = [model.predict(a) for a in hot]
        reference = np.concatenate([a.get_forces() for a in hot])
        metrics = class_metrics(np.concatenate([o["forces"] for o in out]), reference, np.concatenate([o["classes"] for o in out]))
        return metrics["classes"]["Au"]

    before = scores()
    model.partial_fit(hot)
    stats = model.training_["classes"]["Au"]
    assert stats["n_references_norm"] > counts["Au"][0] and stats["n_references_direction"] > counts["Au"][1]
    after = scores()
    assert after["norm_rmse"] < 0.2 * before["norm_rmse"]
    # Smooth environments (the default): 48.6 -> 25.4 degrees here; the hard rules roughly halve it.
    assert after["mean_angle_deg"] < 0.6 * before["mean_angle_deg"]
    # Closer pairs than in the first data: the wall moved below them instead of pushing on the frames learned.
    for atoms in hot:
        assert pair_wall.energy_forces(model.baseline_r_s_, atoms, np.zeros(len(atoms), dtype=int))[0] == 0.0
    # The grown model is a complete model: its file predicts what it does.
    model.save(tmp_path / "grown.cfm")
    np.testing.assert_allclose(load_model(tmp_path / "grown.cfm").predict_forces(hot[0]), model.predict_forces(hot[0]), atol=1e-9)


def test_dml_partial_fit_needs_the_fitted_references(ring_model, au_model, tmp_path):
    ring_model.save(tmp_path / "ring.cfm")
    with pytest.raises(ValueError, match="loaded from a file"):
        load_model(tmp_path / "ring.cfm").partial_fit(ring_frames(4, 1))
    grown = clone(au_model).fit(emt_frames(4, seed=0))
    with pytest.raises(ValueError, match="atom 1 is S, an element this model was not trained on"):
        grown.partial_fit(ring_frames(4, 1))
