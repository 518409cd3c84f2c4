import gzip

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from clusterforce.data import (
    DataError,
    by_size,
    dataset_hash,
    datasets,
    frame_label,
    get_energy,
    get_forces,
    group_split,
    read_frames,
    train_test_split_frames,
    validate_frames,
)
from clusterforce.data import io as data_io
from clusterforce.kinds.dml.scaler import MinMaxScaler
from sklearn.base import clone


def make_frame(n=4, seed=0, energy=-1.0, forces=True, system="Au4"):
    """A non-periodic cluster on a 2.5 Angstrom grid (no overlaps) with stored results."""
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(3)], dtype=float)
    pos = 2.5 * grid[rng.permutation(len(grid))[:n]]
    atoms = Atoms(["Au"] * n, positions=pos)
    results = {}
    if energy is not None:
        results["energy"] = energy
    if forces:
        results["forces"] = rng.normal(size=(n, 3))
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.info["system"] = system
    return atoms


def write_extxyz(path, frames):
    ase.io.write(str(path), frames, format="extxyz")
    return str(path)


# --------------------------------------------------------------------------- read_frames


def test_read_frames_tags_source_file_and_index(tmp_path):
    a = write_extxyz(tmp_path / "a.extxyz", [make_frame(seed=s, energy=-s) for s in range(3)])
    b = write_extxyz(tmp_path / "b.xyz", [make_frame(n=5, seed=9)])
    frames = read_frames([a, b])
    assert [f.info["source_file"] for f in frames] == [a, a, a, b]
    assert [f.info["source_index"] for f in frames] == [0, 1, 2, 0]
    assert [get_energy(f) for f in frames[:3]] == [0.0, -1.0, -2.0]
    np.testing.assert_allclose(get_forces(frames[3]), make_frame(n=5, seed=9).calc.results["forces"], atol=1e-7)


@pytest.mark.parametrize(
    "index, expected",
    [
        (":", [0, 1, 2, 3, 4]),
        ("1:", [1, 2, 3, 4]),
        ("::2", [0, 2, 4]),
        (3, [3]),
        (np.int64(3), [3]),
        ("-1", [4]),
        ("-2:", [3, 4]),
        ("::-2", [4, 2, 0]),
    ],
)
def test_read_frames_index_gives_position_in_file(tmp_path, index, expected):
    path = write_extxyz(tmp_path / "f.extxyz", [make_frame(energy=-float(s)) for s in range(5)])
    frames = read_frames(path, index=index)
    assert [f.info["source_index"] for f in frames] == expected
    assert [get_energy(f) for f in frames] == [-float(i) for i in expected]


def test_read_frames_gzip_and_trajectory(tmp_path):
    frames = [make_frame(seed=s) for s in range(2)]
    plain = write_extxyz(tmp_path / "f.extxyz", frames)
    with open(plain, "rb") as src, gzip.open(tmp_path / "f.extxyz.gz", "wb") as dst:
        dst.write(src.read())
    ase.io.write(str(tmp_path / "f.traj"), frames)
    got_gz = read_frames(tmp_path / "f.extxyz.gz")
    got_traj = read_frames(tmp_path / "f.traj")
    assert len(got_gz) == len(got_traj) == 2
    for f, g, t in zip(frames, got_gz, got_traj):
        np.testing.assert_allclose(get_forces(g), get_forces(f), atol=1e-7)
        np.testing.assert_allclose(get_forces(t), get_forces(f))
    (second,) = read_frames(tmp_path / "f.extxyz.gz", index="1:")
    np.testing.assert_array_equal(second.positions, got_gz[1].positions)
    truncated = tmp_path / "cut.extxyz.gz"
    truncated.write_bytes((tmp_path / "f.extxyz.gz").read_bytes()[:-40])
    with pytest.raises(DataError, match=r"cut\.extxyz\.gz: could not parse"):
        read_frames(truncated)


def test_read_frames_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.extxyz: file not found"):
        read_frames(tmp_path / "nothere.extxyz")


def test_read_frames_empty_and_garbage(tmp_path):
    (tmp_path / "empty.extxyz").write_text("")
    (tmp_path / "bad.extxyz").write_text("this is not xyz\n")
    (tmp_path / "short.xyz").write_text("3\n\nAu 0 0 0\n")
    with pytest.raises(DataError, match=r"empty\.extxyz: could not parse: .*Empty file"):
        read_frames(tmp_path / "empty.extxyz")
    with pytest.raises(DataError, match=r"bad\.extxyz: could not parse: XYZError"):
        read_frames(tmp_path / "bad.extxyz")
    with pytest.raises(DataError, match=r"short\.xyz: could not parse: .*expected 3"):
        read_frames(tmp_path / "short.xyz")


def test_read_frames_bad_index_and_no_paths(tmp_path):
    path = write_extxyz(tmp_path / "f.extxyz", [make_frame(), make_frame()])
    with pytest.raises(DataError, match=r"f\.extxyz: frame index 5 is out of range"):
        read_frames(path, index=5)
    with pytest.raises(DataError, match=r"frame index -3 is out of range for 2 frames"):
        read_frames(path, index=-3)
    with pytest.raises(DataError, match=r"f\.extxyz: no frames found"):
        read_frames(path, index="10:")
    with pytest.raises(DataError, match="no input files given"):
        read_frames([])


# --------------------------------------------------------------------------- get_energy / get_forces


def test_energy_and_forces_from_info_and_arrays():
    atoms = Atoms("Au2", positions=[[0, 0, 0], [2.8, 0, 0]])
    assert get_energy(atoms) is None and get_forces(atoms) is None
    atoms.info["energy"] = -3.5
    atoms.arrays["forces"] = np.ones((2, 3))
    assert get_energy(atoms) == -3.5
    np.testing.assert_array_equal(get_forces(atoms), np.ones((2, 3)))


def test_reference_keys_take_precedence_over_calculator():
    atoms = make_frame(energy=-1.0)
    atoms.info["REF_energy"] = -7.0
    atoms.arrays["REF_forces"] = np.full((4, 3), 0.5)
    assert get_energy(atoms) == -7.0
    np.testing.assert_array_equal(get_forces(atoms), np.full((4, 3), 0.5))


def test_calculator_result_beats_plain_info_key_and_stale_result_is_ignored():
    atoms = make_frame(energy=-1.0)
    atoms.info["energy"] = -2.0
    assert get_energy(atoms) == -1.0
    atoms.positions[0, 0] += 0.1  # the stored result no longer belongs to this geometry
    assert get_energy(atoms) == -2.0
    assert get_forces(atoms) is None


def test_live_calculator_is_not_asked_to_compute():
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    atoms.calc = EMT()
    assert get_energy(atoms) is None
    atoms.get_potential_energy()
    assert get_energy(atoms) == pytest.approx(atoms.calc.results["energy"])


def test_get_forces_returns_a_copy():
    atoms = make_frame()
    get_forces(atoms)[:] = 0.0
    assert np.abs(get_forces(atoms)).sum() > 0


def test_non_numeric_energy_names_the_frame():
    atoms = Atoms("Au", info={"energy": "high", "source_file": "x.extxyz", "source_index": 7})
    with pytest.raises(DataError, match=r"x\.extxyz, frame 7: energy 'high' is not a number"):
        get_energy(atoms)


def test_frame_label():
    atoms = Atoms("Au")
    assert frame_label(atoms, 3) == "frame 3"
    atoms.info.update(source_file="t.extxyz", source_index=12)
    assert frame_label(atoms, 3) == "t.extxyz, frame 12"


# --------------------------------------------------------------------------- validate_frames


def labelled(atoms, index, name="train.extxyz"):
    atoms.info.update(source_file=name, source_index=index)
    return atoms


def test_validate_accepts_good_frames():
    validate_frames([make_frame(seed=s) for s in range(3)], need_energy=True, need_forces=True)


def test_validate_missing_forces_names_file_frame_and_hint():
    frames = [labelled(make_frame(), 0), labelled(make_frame(forces=False), 12)]
    validate_frames(frames, need_energy=True, need_forces=False)
    hint = "this model kind trains on forces — add them or use --kind gap with energies"
    expected = (
        r"train\.extxyz, frame 12: no forces found \(looked in .*arrays\['forces'\] and the "
        r"attached calculator\); this model kind trains on forces"
    )
    with pytest.raises(DataError, match=expected):
        validate_frames(frames, need_energy=False, need_forces=True, hint=hint)


def test_validate_missing_and_nonfinite_energy():
    frames = [labelled(make_frame(energy=None), 0), labelled(make_frame(energy=float("nan")), 1)]
    validate_frames(frames, need_energy=False, need_forces=True)
    expected = r"frame 0: no energy found \(looked in info\['REF_energy'\].*add a total energy in eV"
    with pytest.raises(DataError, match=expected):
        validate_frames(frames, need_energy=True, need_forces=False)
    with pytest.raises(DataError, match=r"frame 1: energy is nan"):
        validate_frames(frames, need_energy=True, need_forces=False)


def test_validate_forces_shape_and_finiteness():
    wrong_shape = make_frame()
    wrong_shape.calc = None
    wrong_shape.info["energy"] = -1.0
    wrong_shape.arrays["forces"] = np.zeros((4, 3))
    wrong_shape.new_array("REF_forces", np.zeros((4, 2)))
    nonfinite = make_frame()
    nonfinite.calc.results["forces"][2, 1] = np.inf
    with pytest.raises(DataError, match=r"frame 0: forces have shape \(4, 2\), expected \(4, 3\) for 4 atoms"):
        validate_frames([wrong_shape], need_energy=True, need_forces=True)
    with pytest.raises(DataError, match=r"frame 0: forces are not finite for atoms 2;"):
        validate_frames([nonfinite], need_energy=True, need_forces=True)


def test_validate_nonfinite_positions():
    atoms = make_frame()
    atoms.positions[1, 2] = np.nan
    atoms.calc = None
    with pytest.raises(DataError, match=r"frame 0: positions are not finite for atoms 1;"):
        validate_frames([atoms], need_energy=False, need_forces=False)


def test_validate_overlapping_atoms_reports_pair_and_distance():
    atoms = make_frame()
    atoms.calc = None
    atoms.positions[3] = atoms.positions[1] + [0.3, 0.0, 0.0]
    with pytest.raises(DataError, match=r"closer than min_distance=0\.5 Angstrom: atoms 1 and 3 at 0\.300 Angstrom"):
        validate_frames([labelled(atoms, 4)], need_energy=False, need_forces=False)
    validate_frames([atoms], need_energy=False, need_forces=False, min_distance=0.2)


def test_validate_overlap_across_periodic_boundary():
    atoms = Atoms("Na2", positions=[[0.1, 5, 5], [9.8, 5, 5]], cell=[10, 10, 10], pbc=False)
    validate_frames([atoms], need_energy=False, need_forces=False)
    atoms.pbc = True
    with pytest.raises(DataError, match=r"atoms 0 and 1 at 0\.300 Angstrom"):
        validate_frames([atoms], need_energy=False, need_forces=False)


def test_validate_periodic_cell_problems():
    thin = Atoms("Na", cell=[10, 10, 0.3], pbc=True)
    singular = Atoms("Na", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 5]], pbc=True)
    with pytest.raises(DataError, match=r"only 0\.3 Angstrom thick along axis 2"):
        validate_frames([thin], need_energy=False, need_forces=False)
    with pytest.raises(DataError, match=r"cell .* is singular but pbc=\[True, True, True\]"):
        validate_frames([singular], need_energy=False, need_forces=False)


def test_validate_collects_several_problems_and_truncates():
    frames = [labelled(make_frame(energy=None, forces=False), i) for i in range(8)]
    with pytest.raises(DataError) as info:
        validate_frames(frames, need_energy=True, need_forces=True)
    text = str(info.value)
    assert text.startswith("16 problem(s) in 8 of 8 frames:")
    assert "frame 0: no energy found" in text and "frame 0: no forces found" in text
    assert "frame 4: no energy found" in text and "frame 5:" not in text
    assert text.endswith("... and 6 more")


def test_validate_argument_errors():
    with pytest.raises(DataError, match="no frames to validate"):
        validate_frames([], need_energy=False, need_forces=False)
    with pytest.raises(DataError, match="frame 0: frame has no atoms"):
        validate_frames([Atoms()], need_energy=False, need_forces=False)
    with pytest.raises(ValueError, match="min_distance must be a finite number >= 0"):
        validate_frames([make_frame()], need_energy=False, need_forces=False, min_distance=-1)
    with pytest.raises(TypeError, match="frame 0 is a str, expected ase.Atoms"):
        validate_frames(["Au"], need_energy=False, need_forces=False)


# --------------------------------------------------------------------------- splits


def test_train_test_split_is_reproducible_disjoint_and_ordered():
    frames = [make_frame(energy=-float(i)) for i in range(20)]
    train, test = train_test_split_frames(frames, test_size=0.25, seed=3)
    again = train_test_split_frames(frames, test_size=0.25, seed=3)
    other = train_test_split_frames(frames, test_size=0.25, seed=4)
    ids = lambda fs: [id(f) for f in fs]  # noqa: E731
    assert len(test) == 5 and len(train) == 15
    assert ids(again[0]) == ids(train) and ids(again[1]) == ids(test)
    assert ids(other[1]) != ids(test)
    assert sorted(ids(train) + ids(test)) == sorted(ids(frames))
    energies = [get_energy(f) for f in test]
    assert energies == sorted(energies, reverse=True)
    assert len(train_test_split_frames(frames, test_size=3)[1]) == 3


def test_train_test_split_errors():
    frames = [make_frame() for _ in range(3)]
    with pytest.raises(ValueError, match=r"test_size must be a fraction in \(0, 1\) or a number of frames, got 1\.5"):
        train_test_split_frames(frames, test_size=1.5)
    with pytest.raises(DataError, match="cannot split 3 frames with test_size=3: that leaves 0 training"):
        train_test_split_frames(frames, test_size=3)
    with pytest.raises(DataError, match="cannot split 1 frames"):
        train_test_split_frames(frames[:1], test_size=0.5)


def test_group_split_by_info_key_and_by_size():
    frames = [make_frame(n=n, system=f"Au{n}") for n in (3, 4, 5, 4, 3)]
    train, test = group_split(frames, group="system", test_groups=["Au4"])
    assert [len(f) for f in train] == [3, 5, 3] and [len(f) for f in test] == [4, 4]
    train, test = group_split(frames, group=by_size, test_groups=[3, 5])
    assert [len(f) for f in train] == [4, 4] and [len(f) for f in test] == [3, 5, 3]


def test_group_split_errors():
    frames = [make_frame(n=n) for n in (3, 4)]
    with pytest.raises(ValueError, match=r"unknown test group\(s\) \[7\]; the frames have groups \[3, 4\]"):
        group_split(frames, group=by_size, test_groups=[7])
    with pytest.raises(DataError, match="contain every frame, so nothing is left to train on"):
        group_split(frames, group=by_size, test_groups=[3, 4])
    with pytest.raises(ValueError, match="test_groups is empty"):
        group_split(frames, group=by_size, test_groups=[])
    del frames[1].info["system"]
    with pytest.raises(DataError, match=r"frame 1: no info\['system'\] to group by"):
        group_split(frames, group="system", test_groups=["Au4"])
    with pytest.raises(DataError, match="frame 0: group value of type ndarray is not hashable"):
        group_split(frames, group=lambda a: a.positions, test_groups=[1])


# --------------------------------------------------------------------------- MinMaxScaler


def test_minmax_scaler_maps_training_data_to_unit_range():
    X = np.array([[1.0, 5.0, -2.0], [3.0, 5.0, 0.0], [2.0, 5.0, 2.0]])
    scaler = MinMaxScaler().fit(X)
    Y = scaler.transform(X)
    np.testing.assert_allclose(Y, [[0.0, 0.0, 0.0], [1.0, 0.0, 0.5], [0.5, 0.0, 1.0]])
    np.testing.assert_array_equal(scaler.data_min_, [1.0, 5.0, -2.0])
    np.testing.assert_array_equal(scaler.data_max_, [3.0, 5.0, 2.0])
    np.testing.assert_array_equal(scaler.scale_, [0.5, 1.0, 0.25])
    np.testing.assert_allclose(scaler.inverse_transform(Y), X)
    np.testing.assert_allclose(MinMaxScaler().fit_transform(X), Y)
    X_new = np.array([[5.0, 6.0, -4.0]])
    np.testing.assert_allclose(scaler.transform(X_new), [[2.0, 1.0, -0.5]])


def test_minmax_scaler_state_dict_round_trip_and_clone():
    X = np.random.default_rng(0).normal(size=(10, 4))
    scaler = MinMaxScaler().fit(X)
    state = scaler.state_dict()
    assert set(state) == {"data_min", "data_max", "scale"}
    assert all(v.dtype == np.float64 and v.shape == (4,) for v in state.values())
    restored = MinMaxScaler.from_state_dict(state)
    np.testing.assert_array_equal(restored.transform(X), scaler.transform(X))
    assert clone(scaler).get_params() == scaler.get_params() == {}
    assert not hasattr(clone(scaler), "scale_")


def test_minmax_scaler_errors():
    with pytest.raises(Exception, match="not fitted"):
        MinMaxScaler().transform(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\), got shape \(3,\)"):
        MinMaxScaler().fit(np.zeros(3))
    with pytest.raises(ValueError, match="X has 0 samples"):
        MinMaxScaler().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="fit: X contains NaN"):
        MinMaxScaler().fit(np.array([[np.nan, 1.0]]))
    scaler = MinMaxScaler().fit(np.eye(3))
    with pytest.raises(ValueError, match="transform: X has 2 features, the scaler was fitted on 3"):
        scaler.transform(np.zeros((1, 2)))
    state = scaler.state_dict()
    with pytest.raises(ValueError, match=r"missing \['scale'\]"):
        MinMaxScaler.from_state_dict({k: state[k] for k in ("data_min", "data_max")})
    with pytest.raises(ValueError, match=r"1-D and of equal length, got shapes"):
        MinMaxScaler.from_state_dict({**state, "scale": np.ones(2)})
    with pytest.raises(ValueError, match="'data_max' contains non-finite values"):
        MinMaxScaler.from_state_dict({**state, "data_max": np.array([1.0, np.inf, 1.0])})
    with pytest.raises(ValueError, match="'scale' does not match"):
        MinMaxScaler.from_state_dict({**state, "scale": np.full(3, 2.0)})


# --------------------------------------------------------------------------- dataset_hash


def test_dataset_hash_is_stable_and_covers_every_field(tmp_path):
    frames = [make_frame(seed=s, energy=-float(s)) for s in range(3)]
    for f in frames:  # values exact in decimal so the extxyz round trip is bit-identical
        f.calc.results["forces"] = np.round(f.calc.results["forces"], 2)
    digest = dataset_hash(frames)
    assert len(digest) == 64 and digest == dataset_hash(frames)
    assert dataset_hash(read_frames(write_extxyz(tmp_path / "h.extxyz", frames))) == digest

    def changed(edit):
        copies = [f.copy() for f in frames]
        for c, f in zip(copies, frames):
            c.calc = SinglePointCalculator(c, **f.calc.results)
        edit(copies[1])
        return dataset_hash(copies)

    edits = [
        lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-9),
        lambda a: a.numbers.__setitem__(0, 78),
        lambda a: a.set_cell([5, 5, 5]),
        lambda a: a.set_pbc([True, False, False]),
        lambda a: a.calc.results.__setitem__("energy", -1.0 + 1e-12),
        lambda a: a.calc.results["forces"].__setitem__((0, 0), 0.123),
        lambda a: a.calc.results.pop("forces"),
    ]
    digests = {changed(e) for e in edits}
    assert digest not in digests and len(digests) == len(edits)
    assert changed(lambda a: a.info.update(source_file="elsewhere.extxyz")) == digest


def test_dataset_hash_known_value():
    # Model files store this hash: a change of byte layout must be deliberate (bump the "v1" tag).
    atoms = Atoms("Au2", positions=[[0, 0, 0], [2.5, 0, 0]], info={"energy": -1.5})
    atoms.arrays["forces"] = np.array([[0.5, 0, 0], [-0.5, 0, 0]])
    assert dataset_hash([atoms]) == KNOWN_HASH


KNOWN_HASH = "40ee56572f8cf7ec42a46f10cac8c098754491ac225d72185d949dc83f9859d8"


# --------------------------------------------------------------------------- shipped datasets


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    frames = [make_frame(seed=s, energy=-float(s)) for s in range(2)]
    with gzip.open(tmp_path / "tiny.extxyz.gz", "wt") as fh:
        ase.io.write(fh, frames, format="extxyz")
    (tmp_path / "tiny.md").write_text("# tiny\nTwo Au4 frames for tests.\n")
    (tmp_path / "nocard.extxyz.gz").write_bytes((tmp_path / "tiny.extxyz.gz").read_bytes())
    monkeypatch.setattr(data_io, "DATASETS_DIR", tmp_path)
    return tmp_path


def test_datasets_load_available_path_card(data_dir):
    assert datasets.available() == ["nocard", "tiny"]
    assert datasets.path("tiny") == data_dir / "tiny.extxyz.gz"
    frames = datasets.load("tiny")
    assert [get_energy(f) for f in frames] == [0.0, -1.0]
    assert [f.info["source_index"] for f in frames] == [0, 1]
    assert datasets.card("tiny").startswith("# tiny")


def test_datasets_errors(data_dir, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'rings'; available: nocard, tiny"):
        datasets.load("rings")
    with pytest.raises(DataError, match=r"dataset 'nocard' has no data card .*nocard\.md"):
        datasets.card("nocard")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(data_io, "DATASETS_DIR", empty)
    with pytest.raises(ValueError, match=r"unknown dataset 'na'; available: none \(no \*\.extxyz\.gz files in"):
        datasets.path("na")


@pytest.mark.parametrize("name", datasets.available())
def test_shipped_dataset_is_valid_and_documented(name):
    frames = datasets.load(name)
    validate_frames(frames, need_energy=True, need_forces=True)
    assert all({"method", "system"} <= set(f.info) for f in frames)
    assert datasets.card(name).strip()


def test_read_frames_accepts_shipped_dataset_names():
    name = datasets.available()[0]
    frames = read_frames(f"dataset:{name}", index="0:2")
    assert len(frames) == 2
    assert frames[0].info["source_file"].endswith(f"{name}.extxyz.gz")
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        read_frames("dataset:nope")


def test_au_thiolate_datasets_carry_isomer_tags_and_charge():
    au38 = datasets.load("au38")
    systems = [f.info["system"] for f in au38]
    assert systems.count("Au38_Q") == systems.count("Au38_T") == 100
    assert all(len(f) == 158 and f.get_chemical_formula(mode="metal") == "Au38C24H72S24" for f in au38)
    au25 = datasets.load("au25")
    assert all(len(f) == 115 and f.info["charge"] == -1 for f in au25)
