"""SOAP: values and gradients against dscribe and finite differences, physics checks, validation."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from clusterforce.descriptors.soap import SOAP
from clusterforce.workflows.datagen import gold_thiolate_ring
from dscribe.descriptors import SOAP as DscribeSOAP
from scipy.spatial.transform import Rotation

AUSCH = ["Au", "S", "C", "H"]


def na_cluster(n_atoms: int = 16, seed: int = 7) -> Atoms:
    """Random compact Na cluster: rejection sampling in a sphere, nearest neighbours >= 3.2 A."""
    rng = np.random.default_rng(seed)
    radius = 2.2 * n_atoms ** (1 / 3)
    pos: list[np.ndarray] = []
    while len(pos) < n_atoms:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius and all(np.linalg.norm(p - q) >= 3.2 for q in pos):
            pos.append(p)
    return Atoms(f"Na{n_atoms}", positions=np.array(pos))


def rocksalt() -> Atoms:
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.positions += np.random.default_rng(3).normal(scale=0.08, size=atoms.positions.shape)
    atoms.pbc = (True, False, True)
    return atoms


STRUCTURES = {"na16": (na_cluster, ["Na"]), "au4ring": (lambda: gold_thiolate_ring(4), AUSCH)}

# A sub-grid touching every value of r_cut {3.5, 4, 5}, n_max {2, 4, 7}, l_max {0, 3, 4, 6},
# sigma {0.25, 0.5, 1}; the benchmark runs the full grid.
GRID = [
    (3.5, 2, 0, 0.25),
    (4.0, 4, 3, 0.5),
    (5.0, 7, 6, 1.0),
    (4.0, 7, 4, 0.25),
    (3.5, 4, 6, 1.0),
    (5.0, 2, 4, 0.5),
]


def rel_dev(ours: np.ndarray, ref: np.ndarray) -> float:
    """Max over rows of max|ours - ref| / max|ref| (per feature vector)."""
    ours, ref = np.atleast_2d(ours), np.atleast_2d(ref)
    return float((np.abs(ours - ref).max(axis=1) / np.abs(ref).max(axis=1)).max())


def dense_gradients(grad, pair_center, pair_atom, n_centers, n_atoms):
    out = np.zeros((n_centers, n_atoms, 3, grad.shape[-1]))
    np.add.at(out, (pair_center, pair_atom), grad)
    return out


def numeric_gradient(soap, atoms, center, atom, eps=1e-4):
    out = np.zeros((3, soap.n_features))
    for d in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, d] += eps
        minus.positions[atom, d] -= eps
        out[d] = (soap.compute(plus, centers=[center]) - soap.compute(minus, centers=[center]))[0] / (2 * eps)
    return out


@pytest.mark.parametrize("name", STRUCTURES)
@pytest.mark.parametrize("r_cut,n_max,l_max,sigma", GRID)
def test_values_match_dscribe(name, r_cut, n_max, l_max, sigma):
    build, species = STRUCTURES[name]
    atoms = build()
    params = dict(species=species, r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma)
    ref = DscribeSOAP(**params).create(atoms)
    ours = SOAP(**params).compute(atoms)
    assert ours.shape == ref.shape
    assert rel_dev(ours, ref) <= 1e-6


def test_basis_matches_dscribe():
    for r_cut, n_max, l_max in [(3.5, 7, 6), (5.0, 4, 3), (4.0, 1, 2)]:
        ds = DscribeSOAP(species=["Na"], r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=0.5)
        ours = SOAP(species=["Na"], r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=0.5)._kernel
        np.testing.assert_allclose(ours.alphas, ds._alphas, rtol=1e-12)
        np.testing.assert_allclose(ours.betas, ds._betas, rtol=1e-8, atol=1e-10 * np.abs(ds._betas).max())


@pytest.mark.parametrize("r_cut,n_max,l_max,sigma", [(4.0, 4, 3, 0.5), (5.0, 7, 6, 0.25)])
def test_periodic_values_match_dscribe(r_cut, n_max, l_max, sigma):
    atoms = rocksalt()
    params = dict(species=["Na", "Cl"], r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma, periodic=True)
    assert rel_dev(SOAP(**params).compute(atoms), DscribeSOAP(**params).create(atoms)) <= 1e-6


def test_poly_weighting_values_match_dscribe():
    atoms = gold_thiolate_ring(4)
    weighting = {"function": "poly", "r0": 4.2, "c": 1.5, "m": 2.0, "w0": 0.5}
    params = dict(species=AUSCH, r_cut=4.0, n_max=4, l_max=4, sigma=0.4)
    ref = DscribeSOAP(**params, weighting=dict(weighting)).create(atoms)
    assert rel_dev(SOAP(**params, weighting=weighting).compute(atoms), ref) <= 1e-6


@pytest.mark.parametrize("name", STRUCTURES)
@pytest.mark.parametrize("r_cut,n_max,l_max,sigma", [(4.0, 4, 3, 0.5), (5.0, 7, 6, 0.25)])
def test_gradients_match_dscribe(name, r_cut, n_max, l_max, sigma):
    build, species = STRUCTURES[name]
    atoms = build()
    params = dict(species=species, r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma)
    centers = [0, 3, len(atoms) - 1]
    ref_d, ref_v = DscribeSOAP(**params).derivatives(atoms, centers=centers, attach=True, method="analytical")
    values, grad, pc, pa = SOAP(**params).compute_with_gradients(atoms, centers=centers)
    assert rel_dev(values, ref_v) <= 1e-6
    dense = dense_gradients(grad, pc, pa, len(centers), len(atoms))
    for c in range(len(centers)):
        assert np.abs(dense[c] - ref_d[c]).max() <= 1e-6 * np.abs(ref_d[c]).max()


@pytest.mark.parametrize(
    "case",
    ["na16", "au4ring", "periodic", "poly"],
)
def test_gradients_match_finite_differences(case):
    weighting = None
    if case == "periodic":
        atoms, species, periodic = rocksalt(), ["Na", "Cl"], True
    else:
        build, species = STRUCTURES["au4ring" if case == "poly" else case]
        atoms, periodic = build(), False
    if case == "poly":
        weighting = {"function": "poly", "r0": 4.0, "c": 1.0, "m": 3.0}
    soap = SOAP(species=species, r_cut=4.0, n_max=5, l_max=5, sigma=0.4, periodic=periodic, weighting=weighting)
    center = 2
    values, grad, pc, pa = soap.compute_with_gradients(atoms, centers=[1, center])
    rows = np.flatnonzero(pc == 1)
    assert pa[rows[0]] == center  # the centre comes first
    checked = [rows[0], rows[1], rows[len(rows) // 2], rows[-1]]
    for k in checked:
        num = numeric_gradient(soap, atoms, center, pa[k])
        assert np.abs(grad[k] - num).max() <= 1e-6 * np.abs(grad[rows]).max()


@pytest.mark.parametrize("case", ["au4ring", "periodic"])
def test_contracted_gradients_match_full_gradients(case):
    if case == "periodic":
        atoms, soap = rocksalt(), SOAP(species=["Na", "Cl"], r_cut=4.0, n_max=4, l_max=4, sigma=0.5, periodic=True)
    else:
        atoms, soap = gold_thiolate_ring(4), SOAP(species=AUSCH, r_cut=4.0, n_max=4, l_max=4, sigma=0.5)
    centers = [0, 2, 3]
    weights = np.random.default_rng(2).normal(size=(len(centers), soap.n_features))
    _, grad, pc, pa = soap.compute_with_gradients(atoms, centers=centers)
    expected = np.zeros((len(atoms), 3))
    np.add.at(expected, pa, np.einsum("kaf,kf->ka", grad, weights[pc]))
    out = soap.contract_gradients(atoms, weights, centers=centers)
    np.testing.assert_allclose(out, expected, atol=1e-12 * np.abs(expected).max())
    # ... and it is the gradient of sum(weights * values): a finite-difference check.
    atom, eps = 1, 1e-5
    for d in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, d] += eps
        minus.positions[atom, d] -= eps
        num = (weights * (soap.compute(plus, centers=centers) - soap.compute(minus, centers=centers))).sum() / (2 * eps)
        assert abs(num - out[atom, d]) <= 1e-6 * np.abs(out).max()
    with pytest.raises(ValueError, match=r"weights must have shape \(n_centers, n_features\)"):
        soap.contract_gradients(atoms, weights[:, :-1], centers=centers)


def test_core_entry_point_matches_structure():
    atoms = gold_thiolate_ring(4)
    soap = SOAP(species=AUSCH, r_cut=4.0, n_max=4, l_max=4, sigma=0.5)
    values, grad, pc, pa = soap.compute_with_gradients(atoms)
    center = 5
    others = [j for j in range(len(atoms)) if j != center]
    # A shuffled neighbour list, with one far atom that must be ignored.
    order = np.random.default_rng(0).permutation(others)
    rel = atoms.positions[order] - atoms.positions[center]
    rel = np.vstack([rel, [[soap.cutoff + 0.01, 0.0, 0.0]]])
    numbers = np.append(atoms.numbers[order], 1)
    v, g = soap.compute_environment(atoms.numbers[center], rel, numbers, gradients=True)
    np.testing.assert_allclose(v, values[center], rtol=0, atol=1e-12 * np.abs(v).max())
    assert g.shape == (len(rel) + 1, 3, soap.n_features)
    assert not g[-1].any()
    rows = np.flatnonzero(pc == center)
    dense = np.zeros((len(atoms), 3, soap.n_features))
    dense[pa[rows]] = grad[rows]
    np.testing.assert_allclose(g[0], dense[center], atol=1e-12 * np.abs(g).max())
    np.testing.assert_allclose(g[1:-1], dense[order], atol=1e-12 * np.abs(g).max())


def test_neighbourhoods_give_the_structure_values():
    # Ragged neighbour lists (the dml model file's reference atoms): a cluster and a periodic
    # cell whose atoms see their own images; centres in any order, one with no neighbours.
    from clusterforce.kinds.dml.descriptor import SoapDescriptor

    cell = bulk("Au", "fcc", a=4.08, cubic=True)
    cell.rattle(0.05, seed=4)
    for atoms in (gold_thiolate_ring(4), cell, Atoms("Au", positions=[[0, 0, 0]])):
        descriptor = SoapDescriptor(n_max=4, l_max=3, species=sorted(set(atoms.get_chemical_symbols()) | {"Au"})).fit([])
        centers = np.random.default_rng(1).permutation(len(atoms))
        nb = descriptor.neighbourhoods(atoms, centers)
        np.testing.assert_array_equal(descriptor.compute_neighbourhoods(nb), descriptor.compute(atoms, centers))
    soap = SOAP(species=AUSCH, r_cut=4.0, n_max=3, l_max=2, sigma=0.5)
    with pytest.raises(ValueError, match="offsets must be non-decreasing"):
        soap.compute_neighbourhoods([79, 79], [0, 2, 1], np.zeros((2, 3)) + 1.0, [16, 16])
    with pytest.raises(ValueError, match="neighbour 1 is Na"):
        soap.compute_neighbourhoods([79], [0, 2], np.ones((2, 3)), [16, 11])


def test_rotation_translation_permutation_invariance():
    atoms = gold_thiolate_ring(4)
    soap = SOAP(species=AUSCH, r_cut=5.0, n_max=4, l_max=6, sigma=0.5)
    values, grad, pc, pa = soap.compute_with_gradients(atoms)
    rot = Rotation.random(random_state=11).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ rot.T + [3.0, -7.0, 1.5]
    v2, g2, pc2, pa2 = soap.compute_with_gradients(moved)
    assert rel_dev(v2, values) <= 1e-10
    # Gradients rotate with the structure: g2[k, a] = sum_b rot[a, b] g[k, b].
    np.testing.assert_array_equal(pa2, pa)
    np.testing.assert_allclose(g2, np.einsum("ab,kbf->kaf", rot, grad), atol=1e-10 * np.abs(grad).max())
    perm = np.random.default_rng(5).permutation(len(atoms))
    shuffled = atoms[perm]
    v3, g3, pc3, pa3 = soap.compute_with_gradients(shuffled)
    assert rel_dev(v3, values[perm]) <= 1e-10
    dense = dense_gradients(grad, pc, pa, len(atoms), len(atoms))
    dense3 = dense_gradients(g3, pc3, pa3, len(atoms), len(atoms))
    np.testing.assert_allclose(dense3, dense[perm][:, perm], atol=1e-10 * np.abs(grad).max())


def test_locality():
    atoms = na_cluster()
    soap = SOAP(species=["Na"], r_cut=4.0, n_max=4, l_max=4, sigma=0.5)
    center = 0
    base = soap.compute(atoms, centers=[center])
    direction = atoms.positions[center] - atoms.positions.mean(axis=0)
    direction /= np.linalg.norm(direction)
    for distance, changes in [(soap.cutoff + 1e-6, False), (soap.cutoff - 1e-3, True)]:
        extra = atoms + Atoms("Na", positions=[atoms.positions[center] + distance * direction])
        # Keep the extra atom away from every other atom too, so only the centre could see it.
        v, grad, pc, pa = soap.compute_with_gradients(extra, centers=[center])
        assert (len(atoms) in pa) == changes
        assert (np.abs(v - base).max() > 1e-12 * np.abs(base).max()) == changes


def test_smoothness_at_cutoff():
    rel = np.array([[2.0, 0.5, 1.0], [-1.5, 2.2, 0.3]])
    numbers = [11, 11, 11]
    hard = SOAP(species=["Na"], r_cut=4.0, n_max=7, l_max=4, sigma=0.25)
    smooth = SOAP(
        species=["Na"],
        r_cut=4.0,
        n_max=7,
        l_max=4,
        sigma=0.25,
        weighting={"function": "poly", "r0": 4.5, "c": 1.0, "m": 2.0},
    )
    for soap, r_edge in [(hard, hard.cutoff), (smooth, 4.5)]:

        def at(r, soap=soap):
            return soap.compute_environment(11, np.vstack([rel, [[r, 0.0, 0.0]]]), numbers, gradients=True)

        v_in, g_in = at(r_edge - 1e-7)
        v_out, g_out = at(r_edge + 1e-7)
        jump = np.abs(v_in - v_out).max() / np.abs(v_out).max()
        if soap is hard:
            # dscribe's truncation: the atom's Gaussian is cut where it has decayed to 1e-3.
            assert 1e-5 < jump < 2e-3
        else:
            assert jump < 1e-10
            # The gradient of the crossing atom vanishes at r0 as well.
            assert np.abs(g_in[3]).max() < 1e-6 * np.abs(g_in).max()
            assert not g_out[3].any()


def test_get_location_matches_dscribe():
    params = dict(species=AUSCH, r_cut=4.0, n_max=3, l_max=2, sigma=0.5)
    ds, ours = DscribeSOAP(**params), SOAP(**params)
    for pair in [("Au", "Au"), ("S", "Au"), ("C", "H"), ("H", "H")]:
        assert ours.get_location(pair) == ds.get_location(pair)
    assert ours.n_features == ds.get_number_of_features()


def test_params_round_trip_and_inputs_unchanged():
    atoms = gold_thiolate_ring(4)
    before = atoms.positions.copy()
    soap = SOAP(species=["H", "C", 16, "Au"], r_cut=4.0, n_max=3, l_max=2, sigma=0.5)
    again = SOAP(**soap.get_params())
    assert again.get_params() == soap.get_params()
    np.testing.assert_array_equal(soap.compute(atoms), again.compute(atoms.positions, atoms.numbers))
    np.testing.assert_array_equal(atoms.positions, before)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"n_max": 0}, "n_max must be >= 1"),
        ({"l_max": -1}, r"l_max must be in \[0, 20\]"),
        ({"l_max": 21}, r"l_max must be in \[0, 20\]"),
        ({"r_cut": 0.0}, "r_cut must be > 1 Angstrom"),
        ({"r_cut": 1.0}, "r_cut must be > 1 Angstrom"),
        ({"sigma": 0.0}, "sigma must be > 0"),
        ({"n_max": 2.5}, "n_max must be an integer"),
        ({"species": []}, "species must be a non-empty list"),
        ({"species": ["Na", "Xx"]}, "'Xx' is not a chemical symbol"),
        ({"weighting": {"function": "pow", "r0": 1, "c": 1, "m": 1}}, "'pow' is not supported"),
        ({"weighting": {"function": "poly", "r0": 4.0}}, r"missing \['c', 'm'\]"),
        ({"weighting": {"function": "poly", "r0": -1.0, "c": 1, "m": 1}}, "r0 > 0"),
    ],
)
def test_parameter_validation(change, message):
    params = dict(species=["Na"], r_cut=4.0, n_max=4, l_max=3, sigma=0.5)
    params.update(change)
    with pytest.raises(ValueError, match=message):
        SOAP(**params)


def test_input_validation():
    soap = SOAP(species=["Na"], r_cut=4.0, n_max=2, l_max=2, sigma=0.5)
    atoms = na_cluster(5)
    atoms.numbers[3] = 79
    with pytest.raises(ValueError, match=r"atom 3 is Au \(atomic number 79\).*\['Na'\]"):
        soap.compute(atoms)
    with pytest.raises(ValueError, match=r"centers\[1\] = 9 is not an atom index of this 5-atom"):
        soap.compute(na_cluster(5), centers=[0, 9])
    with pytest.raises(ValueError, match="numbers .* are required"):
        soap.compute(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="numbers has 1 entries but there are 2 positions"):
        soap.compute(np.zeros((2, 3)), [11])
    with pytest.raises(ValueError, match=r"positions must have shape \(n_atoms, 3\)"):
        soap.compute(np.zeros((2, 2)), [11, 11])
    bad = np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    with pytest.raises(ValueError, match="position of atom 1 is not finite"):
        soap.compute(bad, [11, 11])
    with pytest.raises(ValueError, match=r"neighbour 1 is Au"):
        soap.compute_environment(11, np.ones((2, 3)), [11, 79])
    with pytest.raises(ValueError, match=r"rel must have shape \(n_neighbors, 3\)"):
        soap.compute_environment(11, np.ones((2, 2)), [11, 11])
