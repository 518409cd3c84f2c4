import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from clusterforce.workflows.datagen import build, from_file, gold_thiolate_ring, rng_stream
from clusterforce.workflows.datagen.builders import NEAREST_NEIGHBOUR, agau_icosahedron, decahedron, icosahedron, random_compact


def _pairs(atoms, a, b):
    sym = np.array(atoms.get_chemical_symbols())
    d = atoms.get_all_distances()
    return d[np.ix_(sym == a, sym == b)]


@pytest.mark.parametrize("n", [4, 5, 6])
def test_ring_has_paper_geometry(n):
    atoms = gold_thiolate_ring(n)
    assert atoms.get_chemical_formula(mode="metal") == f"Au{n}C{n}H{3 * n}S{n}"
    au_s = _pairs(atoms, "Au", "S")
    # every Au binds exactly two S at 2.30 A, every S two Au
    assert np.all(np.sum(np.isclose(au_s, 2.30, atol=1e-9), axis=1) == 2)
    assert np.all(np.sum(np.isclose(au_s, 2.30, atol=1e-9), axis=0) == 2)
    assert np.allclose(np.sort(_pairs(atoms, "S", "C"), axis=1)[:, 0], 1.82)
    assert np.allclose(np.sort(_pairs(atoms, "C", "H"), axis=1)[:, :3], 1.09)
    d = atoms.get_all_distances() + 10 * np.eye(len(atoms))
    assert d.min() > 1.0
    # S alternate 1 A above and below the mean plane of the sulfurs
    s_z = atoms.positions[atoms.numbers == 16, 2]
    s_z = s_z - s_z.mean()
    assert np.allclose(np.abs(s_z[: 2 * (n // 2)]), 1.0, atol=0.25)
    assert np.all(np.sign(s_z[0:-1:2]) != np.sign(s_z[1::2]))


def test_ring_rejects_too_small():
    with pytest.raises(ValueError, match="n >= 3"):
        gold_thiolate_ring(2)


def test_icosahedron_nearest_neighbour_and_sizes():
    atoms = icosahedron("Na", 55, 3.66)
    d = atoms.get_all_distances() + 10 * np.eye(55)
    assert len(atoms) == 55
    assert d.min() == pytest.approx(3.66)
    assert not atoms.pbc.any()
    with pytest.raises(ValueError, match="icosahedral sizes are \\[13, 55, 147"):
        icosahedron("Na", 20, 3.66)


def test_decahedron_sizes():
    compact = decahedron("Ga", 55, 2.7)
    extent = np.ptp(compact.positions, axis=0)
    assert extent.max() < 2.0 * extent.min()  # the (3, 3, 0) decahedron, not a 2-atom-thick rod
    atoms = decahedron("Ga", 13, 2.7)
    assert len(atoms) == 13
    assert (atoms.get_all_distances() + 10 * np.eye(13)).min() == pytest.approx(2.7)
    with pytest.raises(ValueError, match="no Marks decahedron has 14 atoms; decahedral sizes up to 150 are \\[7, 13, 19"):
        decahedron("Ga", 14, 2.7)


def test_random_compact_is_reproducible_and_respects_min_distance():
    a = random_compact("Na", 30, 3.66, rng_stream(3, 0))
    b = random_compact("Na", 30, 3.66, rng_stream(3, 0))
    c = random_compact("Na", 30, 3.66, rng_stream(4, 0))
    assert np.array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)
    d = a.get_all_distances() + 10 * np.eye(30)
    assert d.min() >= 0.75 * 3.66
    # compact: radius of gyration within 30 % of a close-packed sphere of 30 atoms
    r_sphere = (3 * 30 * 3.66**3 / (np.sqrt(2) * 4 * np.pi)) ** (1 / 3)
    r_g = np.sqrt(np.mean(np.sum((a.positions - a.positions.mean(0)) ** 2, axis=1)))
    assert abs(r_g - np.sqrt(3 / 5) * r_sphere) < 0.3 * r_sphere


def test_random_compact_reports_impossible_packing():
    with pytest.raises(ValueError, match="could not place 40 Na atoms"):
        random_compact("Na", 40, 3.66, rng_stream(0), min_distance_factor=1.2, max_attempts=2000)


def test_agau_fraction_and_validation():
    atoms = agau_icosahedron(55, 0.3, rng_stream(1))
    assert atoms.get_chemical_symbols().count("Au") == round(0.3 * 55)
    with pytest.raises(ValueError, match="fraction-au must be between 0 and 1, got 1.5"):
        agau_icosahedron(55, 1.5, rng_stream(1))


def test_build_names_and_errors():
    names = [s.name for s in build("ring", [4, 5])] + [s.name for s in build("na", [13], shape="decahedral")]
    assert names == ["ring4", "ring5", "Na13"]
    assert build("ga", [20], shape="random", rng=rng_stream(0))[0].atoms.get_chemical_formula() == "Ga20"
    with pytest.raises(ValueError, match="unknown system 'cu'"):
        build("cu", [13])
    with pytest.raises(ValueError, match="needs at least one size"):
        build("na", [])
    with pytest.raises(ValueError, match="unknown cluster shape 'cubic'"):
        build("na", [13], shape="cubic")


@pytest.fixture()
def cluster_file(tmp_path):
    frames = []
    for i, n in enumerate([3, 4, 4, 5]):
        a = Atoms(["Na"] * n, positions=np.arange(3 * n, dtype=float).reshape(n, 3) * (i + 1), cell=[20, 20, 20], pbc=True)
        frames.append(a)
    path = tmp_path / "clusters.extxyz"
    write(path, frames)
    return path


def test_from_file_by_size_index_and_slice(cluster_file):
    by_size = from_file(cluster_file, sizes=[4, 5])
    assert [s.source for s in by_size] == ["clusters.extxyz@1", "clusters.extxyz@3"]
    assert [s.name for s in by_size] == ["Na4", "Na5"]
    assert not by_size[0].atoms.pbc.any()
    assert np.allclose(by_size[0].atoms.positions.mean(axis=0), 0.0)
    assert [s.source for s in from_file(cluster_file, index="-1")] == ["clusters.extxyz@3"]
    assert [s.source for s in from_file(cluster_file, index="1:")] == [f"clusters.extxyz@{i}" for i in (1, 2, 3)]
    assert [s.source for s in from_file(cluster_file, index="2:", sizes=[4])] == ["clusters.extxyz@2"]


def test_from_file_errors(cluster_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.xyz does not exist"):
        from_file(tmp_path / "missing.xyz")
    with pytest.raises(ValueError, match=r"no frame with 7 atoms .* atom counts present: \[3, 4, 5\]"):
        from_file(cluster_file, sizes=[7])
    with pytest.raises(ValueError, match="--index 9 is out of range: .* has 4 frames"):
        from_file(cluster_file, index="9")
    with pytest.raises(ValueError, match="--index 'x' is not an integer or a slice"):
        from_file(cluster_file, index="x")
    with pytest.raises(ValueError, match="selects no frame"):
        from_file(cluster_file, index="5:")


def test_nearest_neighbour_table_covers_builders():
    assert {"Na", "Ga", "Ag", "Au"} <= set(NEAREST_NEIGHBOUR)
