import logging

import numpy as np
import pytest
from clusterforce.descriptors.selection import extend_maximin, rs_maximin
from clusterforce.kinds.dml.emlm import DEFAULT_BETA, EMLM
from clusterforce.kinds.dml.ridge import ridge_solve
from sklearn.base import clone
from sklearn.exceptions import NotFittedError


def _smooth(X):
    return np.sin(2 * X[:, 0]) + 0.5 * np.cos(3 * X[:, 1]) * X[:, 2]


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3))
    return X, _smooth(X)


def test_emlm_solves_eq8_normal_equations():
    X, y = _data(40)
    Y = np.c_[y, y**2]
    model = EMLM(beta=0.3).fit(X, Y)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    n, k = D.shape
    W = np.linalg.solve(D.T @ D + 0.3 * n / k * np.eye(k), D.T @ Y)
    np.testing.assert_allclose(model.coef_, W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.predict(X[:5]), D[:5] @ W, rtol=1e-8, atol=1e-10)


def test_emlm_interpolates_training_points_and_generalises():
    X, y = _data(400)
    Xt, yt = _data(200, seed=1)
    model = EMLM().fit(X, y)
    assert model.beta is None and DEFAULT_BETA == pytest.approx(np.sqrt(np.finfo(float).eps))
    assert np.max(np.abs(model.predict(X) - y)) < 1e-4
    pred = model.predict(Xt)
    assert pred.shape == (200,)
    assert np.sqrt(np.mean((pred - yt) ** 2)) < 0.1 * yt.std()


def test_emlm_clips_to_training_range_far_from_data():
    X, y = _data(100)
    far = X[:3] + 50.0  # distances to every reference grow, so d.W leaves the data's range
    raw = EMLM(clip=False).fit(X, y).predict(far)
    clipped = EMLM().fit(X, y).predict(far)
    assert np.any((raw < y.min()) | (raw > y.max()))
    np.testing.assert_allclose(clipped, np.clip(raw, y.min(), y.max()))
    np.testing.assert_allclose(EMLM().fit(X, y).predict(X), EMLM(clip=False).fit(X, y).predict(X), atol=1e-4)


def test_emlm_clone_get_params_and_state_round_trip():
    X, y = _data(50)
    model = EMLM(beta=1e-6)
    assert clone(model).get_params() == {"beta": 1e-6, "clip": True}
    model.fit(X, y)
    assert not hasattr(clone(model), "coef_")
    again = EMLM.from_state_dict(model.state_dict(), model.get_params())
    np.testing.assert_array_equal(again.predict(X[:7]), model.predict(X[:7]))


def test_emlm_validation_messages():
    X, y = _data(20)
    with pytest.raises(NotFittedError):
        EMLM().predict(X)
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        EMLM(beta=-1.0).fit(X, y)
    model = EMLM().fit(X, y)
    with pytest.raises(ValueError, match="3 features"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="coef has 3 rows but there are 20 references"):
        EMLM.from_state_dict({"references": X, "coef": np.zeros(3)})


def test_ridge_solve_falls_back_when_singular(caplog):
    rng = np.random.default_rng(3)
    A = rng.normal(size=(30, 5))
    D = np.c_[A, A[:, :2]]  # duplicated columns: DᵀD is exactly singular
    Y = rng.normal(size=(30, 2))
    with caplog.at_level(logging.INFO, logger="clusterforce.kinds.dml.ridge"):
        W = ridge_solve(D, Y, 0.0)
    assert "SVD least squares" in caplog.text
    np.testing.assert_allclose(W, np.linalg.lstsq(D, Y, rcond=None)[0], atol=1e-10)
    # Well conditioned: the Cholesky path gives the ridge solution.
    W = ridge_solve(A, Y, 0.5)
    np.testing.assert_allclose(W, np.linalg.solve(A.T @ A + 0.5 * np.eye(5), A.T @ Y), rtol=1e-10)
    with pytest.raises(ValueError, match=r"D must be \(N, K\)"):
        ridge_solve(A, Y[:3], 0.1)


def test_rs_maximin_is_farthest_point_sampling():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4))
    idx = rs_maximin(X, 12, random_state=7)
    assert len(set(idx.tolist())) == 12
    np.testing.assert_array_equal(idx, rs_maximin(X, 12, random_state=7))
    for step in range(1, 12):
        dmin = np.linalg.norm(X[:, None] - X[idx[:step]][None], axis=-1).min(axis=1)
        assert dmin[idx[step]] == pytest.approx(dmin.max())


def test_rs_maximin_edge_cases():
    X = np.zeros((5, 2))  # all duplicates: still returns distinct indices
    assert len(set(rs_maximin(X, 4, random_state=0).tolist())) == 4
    np.testing.assert_array_equal(rs_maximin(X, 9), np.arange(5))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rs_maximin(X, 0)
    with pytest.raises(ValueError, match="2-D array"):
        rs_maximin(np.zeros(4), 2)


def test_extend_maximin_continues_farthest_point_sampling():
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0)), -1).reshape(-1, 2)  # spacing 1
    near = grid[:6] + rng.uniform(-0.3, 0.3, (6, 2))  # repeats of known points: none is added
    far = np.array([[10.0, 10.0], [10.2, 10.0], [-6.0, 2.0]])  # two new regions, one of them seen twice
    # The farthest first; [10, 10] then lies 0.2 from a reference, closer than the spacing.
    np.testing.assert_array_equal(extend_maximin(grid, np.vstack([near, far])), [7, 8])
    assert extend_maximin(grid, np.empty((0, 2))).size == 0
    with pytest.raises(ValueError, match="references"):
        extend_maximin(grid[:1], far)


def test_distance_regression_chunks_match_one_shot(monkeypatch):
    import clusterforce.kinds.dml.emlm as emlm

    X, y = _data(30)
    model = EMLM().fit(X, y)
    full = model.predict(X)
    monkeypatch.setattr(emlm, "_CHUNK_ELEMENTS", 7 * len(X))  # 7 rows per chunk
    np.testing.assert_allclose(model.predict(X), full, rtol=0, atol=1e-12)
