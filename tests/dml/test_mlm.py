import numpy as np
import pytest
from clusterforce.kinds.dml.mlm import MLM
from sklearn.base import clone
from sklearn.kernel_ridge import KernelRidge


def _data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3))
    Y = np.c_[np.sin(2 * X[:, 0]) + 0.5 * np.cos(3 * X[:, 1]) * X[:, 2], np.cos(X[:, 0] + X[:, 1])]
    return X, Y


def test_mlm_reaches_kernel_ridge_accuracy():
    X, Y = _data(400, 0)
    Xt, Yt = _data(150, 1)
    for y, yt in ((Y[:, 0], Yt[:, 0]), (Y, Yt)):
        pred = MLM().fit(X, y).predict(Xt)
        assert pred.shape == yt.shape
        krr = KernelRidge(kernel="rbf", alpha=1e-3).fit(X, y).predict(Xt)
        rmse = np.sqrt(np.mean((pred - yt) ** 2))
        assert rmse < 3.0 * np.sqrt(np.mean((krr - yt) ** 2))
        assert rmse < 0.1 * yt.std()


def test_mlm_multilateration_recovers_training_outputs():
    X, Y = _data(60, 2)
    model = MLM().fit(X, Y)
    np.testing.assert_allclose(model.predict_distances(X[:4]), np.linalg.norm(Y[:4, None] - Y[None], axis=-1), atol=1e-5)
    np.testing.assert_allclose(model.predict(X[:4]), Y[:4], atol=1e-4)


def test_mlm_clone_state_round_trip_and_validation():
    X, Y = _data(40, 3)
    model = MLM(beta=1e-7)
    assert clone(model).get_params() == {"beta": 1e-7}
    model.fit(X, Y[:, 0])
    again = MLM.from_state_dict(model.state_dict(), model.get_params())
    np.testing.assert_array_equal(again.predict(X[:3]), model.predict(X[:3]))
    assert again.predict(X[:3]).shape == (3,)
    with pytest.raises(ValueError, match="beta must be finite"):
        MLM(beta=float("nan")).fit(X, Y)
    with pytest.raises(ValueError, match=r"expected coef \(40, 40\)"):
        MLM.from_state_dict({**model.state_dict(), "coef": np.zeros((3, 3))})
