"""2-body / 3-body descriptors: cutoff, gradients by finite differences, invariances, channels."""

import numpy as np
import pytest
from clusterforce import _kernels


def neighbours(seed, n=9, n_species=2, scale=1.6):
    rng = np.random.default_rng(seed)
    rel = rng.normal(scale=scale, size=(n, 3))
    species = rng.integers(0, n_species, size=n).astype(np.int32)
    return rel, species


def descriptors(order, rel, species, centre=0, n_species=2, r_cut=3.5, width=1.0):
    return _kernels.nbody_centre_descriptors(order, r_cut, width, n_species, centre, rel, species)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_finite_differences(order, seed):
    rel, species = neighbours(seed)
    d = descriptors(order, rel, species)
    assert len(d["q"]) > 0
    h = 1e-6
    for t in range(len(d["q"])):
        for a in range(order - 1):
            j = d["atoms"][t, a]
            for x in range(3):
                plus, minus = rel.copy(), rel.copy()
                plus[j, x] += h
                minus[j, x] -= h
                dp, dm = descriptors(order, plus, species), descriptors(order, minus, species)
                # instance t keeps its index: the same neighbours stay inside the cutoff
                np.testing.assert_allclose((dp["q"][t] - dm["q"][t]) / (2 * h), d["dq"][t, :, a, x], atol=1e-6)
                fd_w = (dp["weight"][t] - dm["weight"][t]) / (2 * h)
                np.testing.assert_allclose(fd_w, d["dweight"][t, a, x], atol=1e-6)


def test_cutoff_weight_is_smooth_at_the_edges():
    r = np.array([0.5, 2.49, 2.5, 3.0, 3.4999, 3.5, 3.6])
    rel = np.stack([r, np.zeros_like(r), np.zeros_like(r)], axis=1)
    d = descriptors(2, rel, np.zeros(len(r), dtype=np.int32), n_species=1)
    by_r = dict(zip(np.round(d["q"][:, 0], 6), d["weight"]))
    assert by_r[0.5] == 1.0 and by_r[2.49] == 1.0 and by_r[2.5] == 1.0
    assert by_r[3.0] == pytest.approx(0.5)
    assert by_r[3.4999] == pytest.approx(0.0, abs=1e-7)
    assert 3.5 not in by_r and 3.6 not in by_r  # at and beyond r_cut: no instance at all
    assert abs(d["dweight"][np.argmax(d["q"][:, 0])]).max() < 1e-3  # slope vanishes at r_cut


def test_pair_descriptor_is_the_distance():
    rel, species = neighbours(3)
    d = descriptors(2, rel, species, r_cut=10.0)
    np.testing.assert_allclose(d["q"][:, 0], np.linalg.norm(rel[d["atoms"][:, 0]], axis=1))


def test_triplet_descriptor_invariant_to_rotation_and_neighbour_order():
    rel, species = neighbours(4, n_species=1)
    sp = np.zeros_like(species)
    d = descriptors(3, rel, sp, n_species=1)
    q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))
    perm = np.random.default_rng(6).permutation(len(rel))
    d2 = descriptors(3, rel[perm] @ q.T, sp[perm], n_species=1)
    # single species: canonical q is the sorted side lengths of each triangle
    np.testing.assert_allclose(d["q"], np.sort(d["q"], axis=1))

    def key(a):
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_allclose(key(d["q"]), key(d2["q"]), atol=1e-12)


def test_triplet_sides_follow_species_order():
    # centre species 1, neighbours species 0 and 1: atoms ordered (neighbour 0, centre, neighbour 1)
    rel = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    d = descriptors(3, rel, np.array([0, 1], dtype=np.int32), centre=1)
    r_jk = np.linalg.norm(rel[0] - rel[1])
    # ordered atoms (j: s0, i: s1, k: s1); sides (j-i, j-k, i-k); the two s1 atoms may swap
    np.testing.assert_allclose(d["q"][0], [1.0, r_jk, 2.0])


def test_channels_cover_every_species_combination():
    assert _kernels.n_nbody_channels(2, 3) == 6
    assert _kernels.n_nbody_channels(3, 3) == 10
    rel, species = neighbours(7, n=30, n_species=3, scale=1.2)
    for order, n_channels in ((2, 6), (3, 10)):
        channels = set()
        for centre in range(3):
            channels |= set(descriptors(order, rel, species, centre=centre, n_species=3)["channel"].tolist())
        assert channels <= set(range(n_channels))
    pairs = {
        (min(c, s), max(c, s)): ch
        for c in range(3)
        for s, ch in zip(
            species[descriptors(2, rel, species, centre=c, n_species=3)["atoms"][:, 0]],
            descriptors(2, rel, species, centre=c, n_species=3)["channel"],
        )
    }
    assert len(set(pairs.values())) == len(pairs)  # one channel per unordered species pair


def test_structure_descriptors_list_every_centre():
    pos = np.array([[0.0, 0, 0], [2.0, 0, 0], [0, 2.0, 0]])
    sp = np.zeros(3, dtype=np.int32)
    d = _kernels.nbody_structure_descriptors(3, 3.5, 1.0, 1, pos, sp)
    assert sorted(d["centre"].tolist()) == [0, 1, 2]  # one triangle seen from each corner
    np.testing.assert_allclose(d["q"], np.tile(np.sort([2.0, 2.0, np.sqrt(8)]), (3, 1)))


def test_bad_inputs_are_rejected_with_their_values():
    rel, species = neighbours(0)
    with pytest.raises(ValueError, match="width must be in"):
        descriptors(2, rel, species, width=5.0)
    with pytest.raises(ValueError, match="order must be 2 or 3"):
        descriptors(4, rel, species)
    with pytest.raises(IndexError, match="centre species index 5"):
        descriptors(2, rel, species, centre=5)
    with pytest.raises(ValueError, match="species must have shape"):
        _kernels.nbody_centre_descriptors(2, 3.5, 1.0, 2, 0, rel, species[:-1])
    with pytest.raises(ValueError, match="sits on the centre"):
        descriptors(2, np.zeros((1, 3)), np.zeros(1, dtype=np.int32))


def test_inputs_are_not_modified():
    rel, species = neighbours(1)
    rel0, sp0 = rel.copy(), species.copy()
    descriptors(3, rel, species)
    np.testing.assert_array_equal(rel, rel0)
    np.testing.assert_array_equal(species, sp0)
