"""OAMLM: the compiled prediction step against numpy, equivariance, fitting, model state."""

import itertools

import numpy as np
import pytest
from align_structures import compact_cluster, metal_cluster, pair_forces, rotated, sorted_distances, zoo
from clusterforce.kinds.dml.align import align
from clusterforce.kinds.dml.environments import Environments, extract_environments
from clusterforce.kinds.dml.oamlm import OAMLM
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.exceptions import NotFittedError


# ------------------------------------------------------ plain numpy eqs. 11-17
def np_rotation(p, s):
    """Eq. 11 with the reference as source (A = sum s p^T), R = V diag(1, 1, det) U^T."""
    U, _, Vt = np.linalg.svd(s.T @ p)
    return Vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))]) @ U.T


def np_align_h(p_env, s_env):
    """H scheme: anchors (C, H, H), the two H in both orders; g of eq. 12."""
    best = None
    for perm in ([0, 1, 2], [0, 2, 1]):
        p, s = p_env[:3], s_env[perm]
        R = np_rotation(p, s)
        g = np.linalg.norm(p - s @ R.T, axis=1).sum() / 4
        if best is None or g < best[0]:
            best = (g, R)
    return best


def np_align_cloud(p_cloud, s_cloud):
    """Generic scheme: centre + input's two nearest against every ordered reference pair; g' of
    eq. 13 over the larger cloud (input on a tie), nearest atoms incl. the other centre."""
    best = None
    for a, b in itertools.permutations(range(len(s_cloud)), 2):
        R = np_rotation(p_cloud[:2], s_cloud[[a, b]])
        rot = s_cloud @ R.T
        big, other = (p_cloud, rot) if len(p_cloud) >= len(rot) else (rot, p_cloud)
        other = np.vstack([other, np.zeros(3)])
        nearest = cdist(big, other).min(axis=1)
        g = np.sqrt((nearest**2).sum()) / (1 + len(big))
        if best is None or g < best[0]:
            best = (g, R)
    return best


def np_predict(d_in, B_c, B_g, T, g, R, sigma2):
    """Eq. 15-17 and the documented uncertainties."""
    d_c, g_hat = d_in @ B_c, d_in @ B_g
    r = np.einsum("kab,kb->ka", R, T)
    w = np.exp(-((g / sigma2) ** 2))
    v = (w * d_c) @ r / w.sum()
    spread = 1 - np.linalg.norm(v) / (w @ np.abs(d_c) / w.sum())
    residual = np.sqrt(w @ (g_hat - g) ** 2 / w.sum())
    return v / np.linalg.norm(v), spread, residual, w.sum()


def _random_model(envs: Environments, n_features: int, seed: int, sigma2: float) -> OAMLM:
    rng = np.random.default_rng(seed)
    K = len(envs)
    T = rng.normal(size=(K, 3))
    state = {
        "X_ref": rng.uniform(size=(K, n_features)),
        "B_c": rng.normal(scale=0.3, size=(K, K)),
        "B_g": rng.normal(scale=0.3, size=(K, K)),
        "T": T / np.linalg.norm(T, axis=1, keepdims=True),
    }
    state.update({f"references/{k}": v for k, v in envs.to_arrays().items()})
    return OAMLM.from_state_dict(state, {"sigma2": sigma2})


@pytest.mark.parametrize("case", ["H", "generic"])
def test_compiled_prediction_equals_numpy_reference(case):
    rng = np.random.default_rng(20)
    if case == "H":
        refs = extract_environments(zoo(rng))["H"]
        inputs = extract_environments(zoo(rng, noise=0.15))["H"][:6]
        points = lambda envs: [a[:3] for a in envs.anchors]  # noqa: E731
        np_align = np_align_h
    else:
        refs = Environments.concatenate([extract_environments(compact_cluster(rng))["Na"] for _ in range(3)])
        inputs = Environments.concatenate([extract_environments(compact_cluster(rng))["Na"] for _ in range(2)])
        points = lambda envs: [c[:n] for c, n in zip(envs.cloud, envs.n_cloud)]  # noqa: E731
        np_align = np_align_cloud
        assert refs.n_cloud.max() <= 3  # at most 6 ordered pairs: the prefilter keeps all
    sigma2 = 0.7
    model = _random_model(refs, n_features=4, seed=21, sigma2=sigma2)
    X = rng.uniform(size=(len(inputs), 4))
    diag = model.predict_diagnostics(X, inputs)
    d_in = cdist(X, model.X_ref_)
    for i, p in enumerate(points(inputs)):
        fits = [np_align(p, s) for s in points(refs)]
        g = np.array([f[0] for f in fits])
        R = np.array([f[1] for f in fits])
        v, spread, residual, wsum = np_predict(d_in[i], model.B_c_, model.B_g_, model.T_, g, R, sigma2)
        np.testing.assert_allclose(diag["v"][i], v, atol=1e-10)
        assert diag["spread"][i] == pytest.approx(spread, abs=1e-10)
        assert diag["g_residual"][i] == pytest.approx(residual, abs=1e-10)
        assert diag["weight_sum"][i] == pytest.approx(wsum, rel=1e-10)
        g_cpp, R_cpp = align(inputs[[i]], refs)
        np.testing.assert_allclose(g_cpp[0], g, atol=1e-10)
        np.testing.assert_allclose(R_cpp[0], R, atol=1e-10)
    np.testing.assert_array_equal(model.predict(X, inputs), diag["v"])
    np.testing.assert_array_equal(model.predict_uncertainty(X, inputs), diag["spread"])


# ------------------------------------------------------ a learnable toy system
def _toy(frames):
    X = np.vstack([sorted_distances(a, 6) for a in frames])
    F = np.vstack([pair_forces(a) for a in frames])
    envs = Environments.concatenate([extract_environments(a, frame=k)["Na"] for k, a in enumerate(frames)])
    return X, F, envs


def _angles(v, F):
    cos = np.einsum("ij,ij->i", v, F) / np.linalg.norm(F, axis=1)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture(scope="module")
def toy_model():
    rng = np.random.default_rng(22)
    frames = [metal_cluster(rng, n=8) for _ in range(10)]
    X, F, envs = _toy(frames)
    return OAMLM(sigma2=0.1).fit(X, envs, F), frames


def test_directions_are_equivariant_and_recovered_on_rotated_copies(toy_model):
    model, frames = toy_model
    X, F, envs = _toy(frames)
    copies = [rotated(a, seed=30 + k, permute=False) for k, a in enumerate(frames)]
    Xr, Fr, envs_r = _toy([c for c, _, _ in copies])
    Rs = np.repeat([R for _, R, _ in copies], 8, axis=0)
    v, v_rot = model.predict(X, envs), model.predict(Xr, envs_r)
    np.testing.assert_allclose(v_rot, np.einsum("nab,nb->na", Rs, v), atol=1e-8)
    assert _angles(v_rot, Fr).mean() < 2.0
    spread = model.predict_uncertainty(Xr, envs_r)
    assert np.all((spread >= 0) & (spread <= 1))


def test_uncertainty_grows_away_from_the_training_data(toy_model):
    model, frames = toy_model
    X, _, envs = _toy(frames)
    Xn, _, envs_n = _toy([metal_cluster(np.random.default_rng(23), n=8) for _ in range(3)])
    seen, new = model.predict_diagnostics(X, envs), model.predict_diagnostics(Xn, envs_n)
    assert np.median(new["spread"]) > np.median(seen["spread"])
    assert np.median(new["g_residual"]) > np.median(seen["g_residual"])
    assert np.median(new["weight_sum"]) < np.median(seen["weight_sum"])


def _fibonacci_sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z, phi = 1 - 2 * k / n, np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def test_numeric_loss_reaches_the_global_minimum_of_eq14(toy_model):
    # Independent reference: eq. 14 in numpy on 20000 directions, refined by scipy from the best.
    from scipy.optimize import minimize

    model, frames = toy_model
    numeric = clone(model).set_params(loss="numeric")
    numeric.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    Xn, _, envs_n = _toy([metal_cluster(np.random.default_rng(24), n=8), metal_cluster(np.random.default_rng(26), n=8)])
    v_num, v_an = numeric.predict(Xn, envs_n), model.predict(Xn, envs_n)
    np.testing.assert_allclose(np.linalg.norm(v_num, axis=1), 1.0, atol=1e-12)
    assert np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", v_num, v_an), -1, 1))).max() > 1.0  # not the analytic v
    d_c = cdist(Xn, model.X_ref_) @ model.B_c_
    g, R = align(envs_n, model.references_)
    r = np.einsum("nkab,kb->nka", R, model.T_)
    grid = _fibonacci_sphere(20000)
    found = 0
    for i in range(len(Xn)):
        w = np.exp(-((g[i] - g[i].min()) * (g[i] + g[i].min())) / model.sigma2**2)

        def eq14(u, i=i, w=w):
            v = u / np.linalg.norm(u, axis=-1, keepdims=True)
            return -(w * np.exp(-(((d_c[i] - v @ r[i].T) / model.sigma1) ** 2))).sum(axis=-1)

        best = minimize(eq14, grid[np.argmin(eq14(grid))], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14})
        assert eq14(v_num[i]) <= eq14(v_an[i]) + 1e-12
        found += eq14(v_num[i]) <= best.fun + 1e-9
    # Three deterministic starts are not a guarantee: eq. 14 is multimodal.
    assert found >= 0.8 * len(Xn), f"{found}/{len(Xn)} at the global minimum"


def test_numeric_loss_recovers_a_common_direction():
    # On its own training atoms the reference aligned with itself (g = 0, weight 1, d_c = 1)
    # dominates eq. 14: the minimum is that atom's force direction, up to B_c's ridge residual.
    rng = np.random.default_rng(25)
    frames = [metal_cluster(rng, n=8) for _ in range(4)]
    X, F, envs = _toy(frames)
    model = OAMLM(sigma2=0.1, loss="numeric").fit(X, envs, F)
    cos = np.einsum("ij,ij->i", model.predict(X, envs), F / np.linalg.norm(F, axis=1)[:, None])
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5


# ------------------------------------------------------ estimator contract
def test_state_dict_round_trip_and_clone(toy_model):
    model, frames = toy_model
    X, _, envs = _toy(frames[:2])
    state = model.state_dict()
    assert all(a.dtype in (np.float64, np.int64) for a in state.values())
    back = OAMLM.from_state_dict(state, model.get_params())
    np.testing.assert_array_equal(back.predict(X, envs), model.predict(X, envs))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "B_c_")
    with pytest.raises(NotFittedError):
        fresh.predict(X, envs)
    del state["B_g"]
    with pytest.raises(ValueError, match=r"arrays \['B_g'\] are missing"):
        OAMLM.from_state_dict(state, {})
    state = model.state_dict()
    state["T"] = state["T"][:-1]
    with pytest.raises(ValueError, match="'T' has shape"):
        OAMLM.from_state_dict(state, {})


def test_fit_and_predict_validate_their_inputs(toy_model):
    model, frames = toy_model
    X, F, envs = _toy(frames[:2])
    F[3] = 0.0
    with pytest.raises(ValueError, match=r"forces of rows \[3\] are zero"):
        OAMLM().fit(X, envs, F)
    with pytest.raises(ValueError, match="loss must be one of"):
        OAMLM(loss="fancy").fit(X, envs, F)
    with pytest.raises(ValueError, match="sigma2 must be a positive number"):
        OAMLM(sigma2=-1.0).fit(X, envs, F)
    with pytest.raises(ValueError, match="15 environments for 16 descriptor rows"):
        OAMLM().fit(X, envs[:15], F)
    with pytest.raises(ValueError, match="fitted with 6"):
        model.predict(X[:, :4], envs)
