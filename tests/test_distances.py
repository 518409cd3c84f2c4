import numpy as np
import pytest
from clusterforce import _kernels
from clusterforce.descriptors.distances import euclidean_distances, squared_row_norms
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits


def _supported_isas():
    isas = []
    for isa in ("generic", "avx2", "avx512"):
        try:
            _kernels.resolve_isa(isa)
        except ValueError:
            continue
        isas.append(isa)
    return isas


ISAS = _supported_isas()
# (n, k, f). Fewer than 32 rows of X take the unpacked path: single rows, row counts that
# leave remainders, feature counts that are not a multiple of the vector width. From 32 rows
# on the packed path: partial register tiles, K=1, feature counts at and across the 256-wide
# feature block, output tiles wider than 256, several passes.
SHAPES = [
    (1, 1, 1),
    (1, 9, 5),
    (3, 40, 300),
    (7, 10, 17),
    (31, 20, 700),
    (32, 1, 5),
    (40, 33, 256),
    (50, 17, 3),
    (97, 300, 257),
    (64, 40, 700),
]


def _scale(x, y):
    return max(np.linalg.norm(x, axis=1).max(initial=1.0), np.linalg.norm(y, axis=1).max(initial=1.0))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("exact", [False, True])
def test_matches_cdist(isa, shape, exact):
    n, k, f = shape
    rng = np.random.default_rng(n * 1000 + k + f)
    x = rng.normal(size=(n, f)) + 0.5
    y = rng.normal(size=(k, f))
    scale = _scale(x, y)
    ref = cdist(x, y)
    got = _kernels.euclidean_distances(x, y, exact=exact, isa=isa)
    assert got.shape == (n, k)
    assert np.abs(got - ref).max() <= 1e-12 * scale
    got_sq = _kernels.euclidean_distances(x, y, exact=exact, squared=True, isa=isa)
    assert np.abs(got_sq - ref**2).max() <= 1e-12 * scale**2


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("exact", [False, True])
def test_identical_and_near_duplicate_rows(isa, exact):
    # Large common offset: |x|^2 + |y|^2 - 2 x.y cancels almost completely here.
    rng = np.random.default_rng(7)
    base = 1e3 + rng.normal(size=(20, 300))
    x = np.vstack([base, base[:5] + 1e-9 * rng.normal(size=(5, 300))])
    y = np.vstack([base[::-1], base[3:9]])
    got = _kernels.euclidean_distances(x, y, exact=exact, isa=isa)
    ref = cdist(x, y)
    assert not np.isnan(got).any()
    assert np.abs(got - ref).max() <= 1e-12 * _scale(x, y)
    identical = (x[:, None, :] == y[None, :, :]).all(axis=2)
    assert identical.sum() == 26
    assert (got[identical] == 0.0).all()
    # near duplicates keep their relative accuracy, not just 1e-12 of the norm
    near = (ref > 0) & (ref < 1e-6)
    assert near.any()
    assert np.allclose(got[near], ref[near], rtol=1e-6, atol=0)


def test_self_distances_have_zero_diagonal_and_are_symmetric():
    x = np.random.default_rng(3).normal(size=(50, 40)) * 30.0
    d = euclidean_distances(x)
    assert (np.diag(d) == 0.0).all()
    np.testing.assert_allclose(d, d.T, rtol=0, atol=1e-12 * _scale(x, x))


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (0, 0, 2), (3, 4, 0)])
@pytest.mark.parametrize("exact", [False, True])
def test_empty_inputs(shape, exact):
    n, k, f = shape
    d = euclidean_distances(np.ones((n, f)), np.ones((k, f)), exact=exact)
    assert d.shape == (n, k)
    assert (d == 0.0).all()


def test_precomputed_norms_are_used_and_reusable():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(60, 50)), rng.normal(size=(25, 50))  # >= 32 rows: the gram path
    yn = squared_row_norms(y)
    np.testing.assert_allclose(yn, np.einsum("ij,ij->i", y, y), rtol=1e-14)
    plain = euclidean_distances(x, y)
    assert np.array_equal(euclidean_distances(x, y, Y_sqnorms=yn), plain)
    assert np.array_equal(euclidean_distances(x, y, X_sqnorms=squared_row_norms(x), Y_sqnorms=yn), plain)
    # the norms really enter the gram formula: shifting them shifts the squared distances
    shifted = euclidean_distances(x, y, Y_sqnorms=yn + 1.0, squared=True)
    np.testing.assert_allclose(shifted, plain**2 + 1.0, rtol=1e-12)


def test_result_does_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 260)), rng.normal(size=(2900, 260))
    cases = [(x, False), (x, True), (x[:10], False)]  # packed gram, packed exact, few rows
    with threadpool_limits(limits=1, user_api="openmp"):
        one = [euclidean_distances(a, y, exact=e) for a, e in cases]
    with threadpool_limits(limits=2, user_api="openmp"):
        two = [euclidean_distances(a, y, exact=e) for a, e in cases]
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


def test_accepts_non_contiguous_and_other_dtypes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 30))
    y = rng.integers(-3, 3, size=(12, 15)).astype(np.int32)
    ref = cdist(x[:, ::2], y.astype(float))
    np.testing.assert_allclose(euclidean_distances(x[:, ::2], y), ref, rtol=0, atol=1e-12 * _scale(x, x))
    np.testing.assert_allclose(euclidean_distances(x[:, ::2].astype(np.float32), y), cdist(x[:, ::2].astype(np.float32), y), rtol=1e-6)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 10)), rng.normal(size=(15, 10))
    xc, yc = x.copy(), y.copy()
    euclidean_distances(x, y)
    euclidean_distances(x, y, exact=True)
    assert np.array_equal(x, xc) and np.array_equal(y, yc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": np.ones(3)}, r"X must be a 2-d array .* got shape \(3,\)"),
        ({"X": np.ones((2, 3)), "Y": np.ones((2, 3, 1))}, r"Y must be a 2-d array"),
        ({"X": np.ones((2, 3)), "Y": np.ones((4, 5))}, r"same number of features, got X \(2, 3\) and Y \(4, 5\)"),
        ({"X": np.array([[1.0, np.nan]])}, r"X contains NaN or infinity \(first at index \(0, 1\)\)"),
        ({"X": np.ones((2, 2)), "Y": np.array([[0.0, np.inf]])}, r"Y contains NaN or infinity"),
        ({"X": np.ones((2, 2)), "Y_sqnorms": np.ones(3)}, r"Y_sqnorms must have shape \(2,\)"),
        ({"X": np.ones((2, 2)), "X_sqnorms": np.ones((2, 1))}, r"X_sqnorms must have shape \(2,\)"),
        ({"X": np.ones((2, 2)), "Y_sqnorms": np.array([1.0, -1.0])}, r"Y_sqnorms holds squared norms and must be >= 0"),
        ({"X": np.ones((2, 2)), "Y_sqnorms": np.array([1.0, np.nan])}, r"Y_sqnorms contains NaN"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        euclidean_distances(**kwargs)


def test_squared_row_norms_rejects_bad_input():
    with pytest.raises(ValueError, match=r"X must be a 2-d array"):
        squared_row_norms(np.ones(4))
    with pytest.raises(ValueError, match=r"X contains NaN"):
        squared_row_norms(np.array([[np.nan]]))


def test_binding_checks_shapes_itself():
    with pytest.raises(ValueError, match=r"same number of features"):
        _kernels.euclidean_distances(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"unknown instruction set 'sse9'"):
        _kernels.euclidean_distances(np.ones((2, 3)), np.ones((2, 3)), isa="sse9")
