import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list
from clusterforce.descriptors.neighbors import NeighborList, neighbor_list, neighbor_list_atoms
from threadpoolctl import threadpool_limits

TRICLINIC = np.array([[8.0, 0.0, 0.0], [3.0, 7.0, 0.0], [1.0, 2.0, 9.0]])
SMALL_TRICLINIC = np.array([[2.5, 0.0, 0.0], [1.0, 2.2, 0.0], [0.3, -0.4, 2.1]])


def _sorted_by_i_j_s(i, j, D, d, S):
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], j, i))
    return i[order], j[order], D[order], d[order], S[order]


def _assert_matches_ase(atoms, cutoff):
    ref = _sorted_by_i_j_s(*ase_neighbor_list("ijDdS", atoms, cutoff))
    nl = neighbor_list_atoms(atoms, cutoff)
    ours = (nl.i, nl.j, nl.D, nl.d, nl.S)
    assert len(nl) == len(ref[0]) > 0
    for name, a, b in zip("ijDdS", ours, ref):
        if name in "ijS":
            assert a.dtype == np.int64
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=name)
    return nl


def _random_atoms(n, low, high, seed, **kwargs):
    rng = np.random.default_rng(seed)
    return Atoms(f"Au{n}", positions=rng.uniform(low, high, size=(n, 3)), **kwargs)


def test_random_cluster_matches_ase():
    nl = _assert_matches_ase(_random_atoms(60, -6.0, 6.0, seed=1), 4.0)
    assert (nl.S == 0).all()
    assert (nl.i != nl.j).all()


def test_orthorhombic_cell_matches_ase():
    _assert_matches_ase(_random_atoms(50, 0.0, 12.0, seed=2, cell=[12.0, 13.0, 14.0], pbc=True), 4.5)


def test_triclinic_cell_with_atoms_outside_it_matches_ase():
    _assert_matches_ase(_random_atoms(40, -4.0, 16.0, seed=3, cell=TRICLINIC, pbc=True), 5.0)


@pytest.mark.parametrize("pbc", [[1, 0, 0], [0, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]])
def test_mixed_pbc_matches_ase(pbc):
    nl = _assert_matches_ase(_random_atoms(40, -4.0, 16.0, seed=4, cell=TRICLINIC, pbc=pbc), 5.0)
    assert (nl.S[:, ~np.array(pbc, dtype=bool)] == 0).all()


@pytest.mark.parametrize("pbc", [True, [1, 0, 1]])
def test_cutoff_longer_than_cell_gives_several_images(pbc):
    nl = _assert_matches_ase(_random_atoms(3, 0.0, 3.0, seed=5, cell=SMALL_TRICLINIC, pbc=pbc), 7.0)
    assert np.abs(nl.S).max() >= 3
    assert ((nl.i == nl.j) & (nl.S != 0).any(axis=1)).any()


def test_single_atom_sees_only_its_images():
    atoms = Atoms("Na", positions=[[0.3, 0.2, 0.1]], cell=SMALL_TRICLINIC, pbc=True)
    nl = _assert_matches_ase(atoms, 4.0)
    assert (nl.S != 0).any(axis=1).all()


def test_zero_cell_vector_along_non_periodic_axis():
    atoms = _random_atoms(30, 0.0, 9.0, seed=6, cell=[[9.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]], pbc=[True, True, False])
    _assert_matches_ase(atoms, 4.0)


def test_rattled_bulk_matches_ase():
    atoms = bulk("Au", "fcc", a=4.08).repeat((4, 4, 4))
    atoms.rattle(0.05, seed=7)
    _assert_matches_ase(atoms, 5.0)


def test_pairs_are_sorted_and_consistent():
    atoms = _random_atoms(40, -4.0, 16.0, seed=8, cell=TRICLINIC, pbc=[1, 1, 0])
    nl = neighbor_list(atoms.positions, 5.0, cell=atoms.cell.array, pbc=atoms.pbc)
    keys = np.column_stack([nl.i, nl.j, nl.S])
    assert (np.diff(np.lexsort(keys.T[::-1])) == 1).all()
    assert len(np.unique(keys, axis=0)) == len(nl)
    D = atoms.positions[nl.j] + nl.S @ TRICLINIC - atoms.positions[nl.i]
    np.testing.assert_allclose(nl.D, D, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nl.d, np.linalg.norm(D, axis=1), rtol=0, atol=1e-12)
    assert (nl.d < 5.0).all()


def test_result_does_not_depend_on_thread_count():
    atoms = _random_atoms(200, 0.0, 20.0, seed=9, cell=[20.0, 20.0, 20.0], pbc=True)
    with threadpool_limits(limits=1, user_api="openmp"):
        one = neighbor_list_atoms(atoms, 5.0)
    with threadpool_limits(limits=2, user_api="openmp"):
        two = neighbor_list_atoms(atoms, 5.0)
    for name in "ijDdS":
        assert np.array_equal(getattr(one, name), getattr(two, name))


def test_empty_and_isolated():
    empty = neighbor_list(np.zeros((0, 3)), 3.0)
    assert isinstance(empty, NeighborList) and len(empty) == 0
    assert empty.D.shape == (0, 3) and empty.S.shape == (0, 3)
    far = neighbor_list([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]], 3.0)
    assert len(far) == 0


def test_cluster_cell_is_ignored_without_pbc():
    atoms = _random_atoms(30, -5.0, 5.0, seed=10)
    a = neighbor_list(atoms.positions, 4.0)
    b = neighbor_list(atoms.positions, 4.0, cell=np.zeros((3, 3)), pbc=False)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in "ijDdS")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((4, 2)), 3.0), {}, r"positions must have shape \(n_atoms, 3\), got \(4, 2\)"),
        ((np.zeros(3), 3.0), {}, r"positions must have shape \(n_atoms, 3\)"),
        ((np.zeros((2, 3)), -1.0), {}, r"cutoff must be a positive finite length, got -1"),
        ((np.zeros((2, 3)), 0.0), {}, r"cutoff must be a positive finite length"),
        ((np.zeros((2, 3)), np.nan), {}, r"cutoff must be a positive finite length"),
        ((np.array([[0, 0, 0], [1, 2, 3], [np.nan, 0, 0]]), 3.0), {}, r"position of atom 2 is not finite"),
        ((np.zeros((2, 3)), 3.0), {"pbc": True}, r"needs a cell"),
        ((np.zeros((2, 3)), 3.0), {"cell": np.eye(3), "pbc": [1, 0]}, r"pbc must be a bool or three bools"),
        ((np.zeros((2, 3)), 3.0), {"cell": np.eye(2), "pbc": True}, r"cell must have shape \(3, 3\)"),
        (
            (np.zeros((2, 3)), 3.0),
            {"cell": [[1, 0, 0], [2, 0, 0], [0, 0, 1]], "pbc": True},
            r"cell is singular along its periodic axes",
        ),
        ((np.zeros((2, 3)), 3.0), {"cell": np.diag([5.0, 0.0, 5.0]), "pbc": [1, 1, 0]}, r"cell is singular"),
        ((np.zeros((2, 3)), 3.0), {"cell": np.diag([5.0, np.inf, 5.0]), "pbc": True}, r"cell\[1\] is not finite"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        neighbor_list(*args, **kwargs)


def test_shortest_pair_distances_match_brute_force():
    from ase.build import molecule
    from ase.data import atomic_numbers
    from clusterforce.descriptors.neighbors import shortest_pair_distances

    atoms = molecule("CH3CH2SH")
    got = shortest_pair_distances(atoms, 2.5)
    D = atoms.get_all_distances()
    expected = {}
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            if D[i, j] < 2.5:
                a, b = sorted((atoms[i].symbol, atoms[j].symbol), key=atomic_numbers.get, reverse=True)
                expected[f"{a}-{b}"] = min(expected.get(f"{a}-{b}", np.inf), D[i, j])
    assert got.keys() == expected.keys() and "S-C" in got and "C-H" in got
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12)
