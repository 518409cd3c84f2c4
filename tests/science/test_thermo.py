"""Multiple-histogram heat capacities against the exact answer and against pymbar's MBAR."""

import numpy as np
import pytest
from clusterforce.workflows.thermo import (
    KB_EV,
    MultipleHistogram,
    OverlapWarning,
    block_bootstrap,
    heat_capacity,
    lindemann_index,
    reduced_heat_capacity,
)

# A two-basin model with a melting-like peak: a "solid" of D harmonic degrees of freedom and a
# "liquid" basin DELTA eV higher with exp(S) times more states. Canonical potential energies are
# then exactly a mixture of Gamma(D/2, kT) and DELTA + Gamma(D/2, kT).
D, DELTA, S = 30, 0.5, 20.0


def _liquid_fraction(t):
    return 1.0 / (1.0 + np.exp(-S + DELTA / (KB_EV * t)))


def _sample(t, n, rng):
    kt = KB_EV * t
    u = rng.gamma(D / 2, kt, size=n)
    return u + DELTA * (rng.random(n) < _liquid_fraction(t))


def _exact_cv(t):
    p = _liquid_fraction(t)
    kt = KB_EV * t
    var = D / 2 * kt**2 + DELTA**2 * p * (1 - p)
    return var / kt**2


@pytest.fixture(scope="module")
def replicas():
    rng = np.random.default_rng(7)
    temps = np.linspace(200.0, 380.0, 13)
    return [_sample(t, 4000, rng) for t in temps], temps


def test_heat_capacity_matches_exact_two_basin_model(replicas):
    energies, temps = replicas
    grid = np.linspace(210.0, 370.0, 33)
    cv = heat_capacity(energies, temps, grid)
    exact = _exact_cv(grid)
    assert exact.max() > 3 * D / 2  # the model has a real peak
    np.testing.assert_allclose(cv, exact, rtol=0.15)
    assert abs(grid[np.argmax(cv)] - grid[np.argmax(exact)]) <= 10.0


def test_heat_capacity_agrees_with_pymbar(replicas):
    pymbar = pytest.importorskip("pymbar")
    energies, temps = replicas
    grid = np.linspace(200.0, 380.0, 37)
    ours = heat_capacity(energies, temps, grid)
    u = np.concatenate(energies)
    betas = 1.0 / (KB_EV * temps)
    mbar = pymbar.MBAR(np.outer(betas, u), np.array([e.size for e in energies]), initialize="BAR")
    theirs = []
    for t in grid:
        beta = 1.0 / (KB_EV * t)
        res = mbar.compute_multiple_expectations(np.vstack([u, u**2]), beta * u, compute_covariance=False)
        mean, second = res["mu"]
        theirs.append((second - mean**2) * beta**2)
    np.testing.assert_allclose(ours, theirs, rtol=0.01)


def test_single_replica_reduces_to_its_fluctuations():
    rng = np.random.default_rng(1)
    u = rng.normal(-10.0, 0.05, size=5000)
    cv = heat_capacity([u], [300.0], [300.0])
    assert cv[0] == pytest.approx(u.var() / (KB_EV * 300.0) ** 2, rel=1e-12)


def test_mean_energy_reproduces_replica_means(replicas):
    energies, temps = replicas
    mh = MultipleHistogram(energies, temps).fit()
    np.testing.assert_allclose(mh.mean_energy(temps), [e.mean() for e in energies], atol=0.02)  # a few standard errors of the means


def test_disjoint_replicas_warn():
    rng = np.random.default_rng(2)
    energies = [rng.normal(0.0, 0.01, 500), rng.normal(5.0, 0.01, 500)]
    with pytest.warns(OverlapWarning, match="100 K and 400 K"):
        heat_capacity(energies, [100.0, 400.0], [200.0])


def test_bootstrap_error_is_small_and_positive(replicas):
    energies, temps = replicas
    grid = np.array([250.0, 300.0])
    best, err = block_bootstrap([e[:1000] for e in energies], temps, grid, n_boot=10, seed=3)
    assert np.all(err > 0) and np.all(err < 0.2 * best)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="2 energy arrays but 1 temperatures"):
        heat_capacity([np.ones(3), np.ones(3)], [300.0], [300.0])
    with pytest.raises(ValueError, match="replica 0.*non-finite"):
        heat_capacity([np.array([1.0, np.nan])], [300.0], [300.0])


def test_reduced_heat_capacity_is_one_in_harmonic_limit():
    n = 55
    assert reduced_heat_capacity(np.array([(3 * n - 6) / 2]), n)[0] == pytest.approx(1.0)


def test_interior_peak_ignores_the_ladder_edges():
    from clusterforce.workflows.thermo import interior_peak

    grid = np.linspace(150, 350, 201)
    bump = np.exp(-((grid - 258) ** 2) / 200)
    assert interior_peak(grid, bump) == pytest.approx(258.0)
    rising = bump + ((grid - 150) / 200) ** 6 * 3  # larger at the upper edge than at the bump
    assert np.argmax(rising) == grid.size - 1 and interior_peak(grid, rising) == pytest.approx(258.0, abs=2)
    assert interior_peak(grid, grid) is None  # monotone: no peak inside the ladder


def test_lindemann_running_sums_equal_the_trajectory_formula():
    from clusterforce.workflows.thermo import Lindemann

    rng = np.random.default_rng(4)
    traj = rng.normal(scale=0.05, size=(50, 6, 3)) + rng.normal(scale=2.0, size=(1, 6, 3))
    i, j = np.triu_indices(6, k=1)
    r = np.linalg.norm(traj[:, i] - traj[:, j], axis=-1)
    assert lindemann_index(traj) == pytest.approx(np.mean(r.std(axis=0) / r.mean(axis=0)), rel=1e-10)
    # Saved and restored half way, as a resumed replica does.
    first = Lindemann(6)
    for frame in traj[:20]:
        first.add(frame)
    second = Lindemann.from_state(6, first.state())
    for frame in traj[20:]:
        second.add(frame)
    assert second.value == pytest.approx(lindemann_index(traj), rel=1e-12)


def test_lindemann_index_rigid_and_vibrating():
    rng = np.random.default_rng(4)
    base = rng.normal(size=(10, 3)) * 3
    rigid = np.repeat(base[None], 20, axis=0)
    assert lindemann_index(rigid) == pytest.approx(0.0, abs=1e-12)
    shaken = rigid + rng.normal(scale=0.3, size=rigid.shape)
    assert 0.02 < lindemann_index(shaken) < 0.3


def test_tracked_peak_spread_follows_one_peak_not_the_highest():
    from clusterforce.workflows.thermo import tracked_peak_spread

    grid = np.linspace(100, 350, 251)
    rng = np.random.default_rng(0)
    # A bump near 210 K and an edge-side bump near 330 K of about the same height: the highest
    # maximum of each noisy curve jumps between them, the bump itself moves by ~2 K.
    shifts = rng.normal(0, 2.0, 200)
    curves = np.array([np.exp(-(((grid - 210 - d) / 15) ** 2)) + 1.01 * np.exp(-(((grid - 330) / 15) ** 2)) * rng.uniform(0.97, 1.03)
                       for d in shifts])  # fmt: skip
    highest = grid[np.argmax(curves, axis=1)]
    assert np.std(highest) > 30
    assert tracked_peak_spread(grid, curves, 210.0) == pytest.approx(np.std(np.round(210 + shifts)), abs=0.6)
