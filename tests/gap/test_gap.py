"""GAP sparse GP: kernel rows, solver, training on EMT clusters, forces, variances, model file."""

import dataclasses

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron
from clusterforce import _kernels
from clusterforce.core import modelfile
from clusterforce.core.calculator import Calculator
from clusterforce.descriptors.selection import cur_rows, farthest_point_sampling
from clusterforce.kinds.gap import Soap, ThreeBody, TwoBody, term_from_dict
from clusterforce.kinds.gap.design import Sample, sample_rows
from clusterforce.kinds.gap.kernels import Geometry, NBodyKernel, SoapKernel
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.solve import NormalEquations, _symmetrise_upper, inverse, solve, variance_matrix
from clusterforce.kinds.gap.sparse import select_sparse, uniform_grid
from scipy.stats import spearmanr
from sklearn.base import clone

TERMS = (
    TwoBody(delta=1.0, r_cut=5.0, width=1.0, theta=0.6, n_sparse=15),
    ThreeBody(delta=0.1, r_cut=3.8, width=1.0, theta=0.8, n_sparse=40),
    Soap(delta=0.1, r_cut=4.0, n_max=4, l_max=3, sigma=0.6, zeta=2, n_sparse=40),
)


def emt_clusters(n, seed, amplitude=0.08, alloy=True, scale=1.0):
    """Rattled 13-atom icosahedra (Cu, with Ag on two surface sites when alloy) with EMT labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = Icosahedron("Cu", 2)
        if alloy:
            atoms.numbers[rng.choice(np.arange(1, 13), size=2, replace=False)] = 47
        atoms.positions = atoms.positions * scale + rng.normal(scale=amplitude, size=(13, 3))
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def train_frames():
    return emt_clusters(30, seed=0)


@pytest.fixture(scope="module")
def model(train_frames):
    return GAPModel(terms=TERMS, progress=False).fit(train_frames)


def structure(seed=3):
    a = emt_clusters(1, seed)[0]
    species = (a.numbers == 47).astype(np.int32)  # Cu -> 0, Ag -> 1 (sorted by Z)
    return a, species


def geometry(atoms):
    return Geometry(atoms.positions, (atoms.numbers == 47).astype(np.int32))


# ---------------------------------------------------------------- kernel rows


@pytest.mark.parametrize("term", TERMS, ids=lambda t: t.kind)
def test_force_rows_are_minus_gradient_of_energy_row(term):
    a, species = structure()
    k = SoapKernel(term, [29, 47]) if isinstance(term, Soap) else NBodyKernel(term, 2)
    k.select_sparse([geometry(f) for f in emt_clusters(4, 1)])
    e_row, f_rows = k.rows(Geometry(a.positions, species))
    assert f_rows.shape == (13, 3, k.n_sparse)
    h = 1e-5
    for i in (0, 5):
        for x in range(3):
            p, m = a.positions.copy(), a.positions.copy()
            p[i, x] += h
            m[i, x] -= h
            fd = -(k.rows(Geometry(p, species))[0] - k.rows(Geometry(m, species))[0]) / (2 * h)
            np.testing.assert_allclose(f_rows[i, x], fd, atol=1e-6 * max(1.0, abs(f_rows).max()))
    # the rows the trainer builds (numpy for SOAP) equal the compiled predictor's rows
    e_cpp, f_cpp = k.predictor_term(None).rows(a.positions, species)
    np.testing.assert_allclose(e_cpp, e_row, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f_cpp, f_rows, rtol=1e-10, atol=1e-13)


def test_sample_rows_scale_by_sigma():
    a, species = structure()
    k = NBodyKernel(TERMS[0], 2)
    g = Geometry(a.positions, species)
    k.select_sparse([g])
    forces = np.ones((13, 3))
    s = Sample(g, 2.0, forces, energy_sigma=0.5, force_sigma=np.full(13, 0.1))
    rows, targets = sample_rows([k], s)
    e_row, f_rows = k.rows(g)
    assert rows.shape == (1 + 39, k.n_sparse)
    np.testing.assert_allclose(rows[0], e_row / 0.5)
    np.testing.assert_allclose(rows[1:], f_rows.reshape(39, -1) / 0.1)
    np.testing.assert_allclose(targets, np.concatenate([[4.0], np.full(39, 10.0)]))
    with pytest.raises(ValueError, match="neither an energy nor forces"):
        sample_rows([k], Sample(g, None, None, 1.0, np.ones(13), label="frame 7"))


# ---------------------------------------------------------------- solver


def test_chunked_normal_equations_equal_dense():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(103, 11)), rng.normal(size=103)
    eq = NormalEquations(11, chunk_rows=7)
    for lo in range(0, 103, 10):  # pieces that do not line up with the chunks
        eq.add(a[lo : lo + 10], b[lo : lo + 10])
    ata, atb = eq.finish()
    assert eq.n_rows == 103
    upper = np.triu(rng.normal(size=(10, 10)))
    _symmetrise_upper(upper, block=3)  # several column blocks
    np.testing.assert_array_equal(upper, upper.T)
    np.testing.assert_allclose(ata, a.T @ a, rtol=1e-12)
    np.testing.assert_allclose(atb, a.T @ b, rtol=1e-12)


def test_solve_matches_dense_solution_and_falls_back_on_singular_matrices():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 5))
    k_mm = x.T @ x + np.eye(5)
    a, b = rng.normal(size=(40, 5)), rng.normal(size=40)
    sol = solve(k_mm, a.T @ a, a.T @ b, jitter=1e-14)
    assert sol.method == "cholesky"
    np.testing.assert_allclose(sol.alpha, np.linalg.solve(k_mm + a.T @ a, a.T @ b), rtol=1e-9)
    # rank-deficient (a sparse point repeated, no data on it): Cholesky succeeds once jittered
    k_sing = np.ones((3, 3))
    sol = solve(k_sing, np.zeros((3, 3)), np.ones(3), jitter=0.0, max_jitter=1e-6)
    assert sol.method == "cholesky" and sol.jitter > 0
    np.testing.assert_allclose(k_sing @ sol.alpha, np.ones(3), rtol=1e-6)
    # indefinite beyond any allowed jitter: eigen solve in the positive subspace
    sol = solve(np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros((2, 2)), np.ones(2), max_jitter=1e-6)
    assert sol.method == "eigen"
    np.testing.assert_allclose(sol.alpha, [1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="non-positive diagonal"):
        solve(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2))


def test_variance_matrix_is_prior_minus_posterior_precision():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4))
    k_mm = x.T @ x + 0.5 * np.eye(4)
    ata = np.diag([3.0, 1.0, 0.0, 2.0])
    kept = k_mm.copy()
    k_inv = inverse(k_mm, jitter=0.0)
    np.testing.assert_array_equal(k_mm, kept)  # not overwritten
    v = variance_matrix(k_inv, k_mm + ata, jitter=0.0)
    np.testing.assert_allclose(v, np.linalg.inv(k_mm) - np.linalg.inv(k_mm + ata), atol=1e-10)
    np.testing.assert_array_equal(v, v.T)
    # singular beyond the allowed jitter: the pseudo-inverse over the kept eigen-directions
    sing = np.array([[1.0, 2.0], [2.0, 1.0]])
    np.testing.assert_allclose(inverse(sing, max_jitter=1e-6), np.full((2, 2), 1 / 6))  # eigenvalue 3 on (1, 1) kept, -1 dropped


# ---------------------------------------------------------------- sparse points


def test_uniform_grid_covers_the_occupied_range():
    rng = np.random.default_rng(0)
    r = rng.uniform(2.0, 5.0, size=(500, 1))
    pts = uniform_grid(r, 10)
    np.testing.assert_allclose(np.sort(pts[:, 0]), 2.0 + (np.arange(10) + 0.5) * 0.3, atol=0.01)
    # triangles fill part of their box: every point lies in an occupied region
    tri = np.sort(rng.uniform(2.0, 4.0, size=(2000, 3)), axis=1)
    pts = uniform_grid(tri, 30)
    assert len(pts) == 30
    assert np.all(np.diff(pts, axis=1) > -0.5)  # near the sorted (canonical) wedge
    with pytest.raises(ValueError, match="n_sparse must be >= 1"):
        uniform_grid(r, 0)


def test_cur_and_fps_pick_distinct_informative_rows():
    rng = np.random.default_rng(3)
    x = np.repeat(rng.normal(size=(5, 8)), 20, axis=0)  # 5 distinct environments, many copies
    for method in ("cur", "fps"):
        pts = select_sparse(x, 5, method)
        assert len(np.unique(pts, axis=0)) == 5
    assert len(farthest_point_sampling(x, 3)) == 3
    assert len(set(cur_rows(rng.normal(size=(50, 6)), 10))) == 10
    with pytest.raises(ValueError, match="unknown sparse method 'random'"):
        select_sparse(x, 2, "random")


# ---------------------------------------------------------------- trained model


def test_forces_are_minus_energy_gradient(model):
    a, _ = structure(seed=11)
    p = model.predict(a)
    h = 1e-5
    for i in (0, 4, 12):
        for x in range(3):
            b = a.copy()
            b.positions[i, x] += h
            ep = model.predict(b)["energy"]
            b.positions[i, x] -= 2 * h
            em = model.predict(b)["energy"]
            assert p["forces"][i, x] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)
    assert p["energies"].sum() == pytest.approx(p["energy"], abs=1e-10)
    np.testing.assert_allclose(p["forces"].sum(axis=0), 0.0, atol=1e-10)


def test_invariances(model):
    a, _ = structure(seed=12)
    p = model.predict(a)
    rot, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    b = a.copy()
    b.positions = a.positions @ rot.T + np.array([1.0, -2.0, 3.0])
    pb = model.predict(b)
    assert pb["energy"] == pytest.approx(p["energy"], abs=1e-10)
    np.testing.assert_allclose(pb["forces"], p["forces"] @ rot.T, atol=1e-10)
    perm = np.random.default_rng(1).permutation(len(a))
    pc = model.predict(a[perm])
    assert pc["energy"] == pytest.approx(p["energy"], abs=1e-10)
    np.testing.assert_allclose(pc["forces"], p["forces"][perm], atol=1e-10)


def test_reproduces_held_out_emt(model):
    test = emt_clusters(10, seed=99)
    m = model.score_frames(test)
    ref_f = np.concatenate([f.get_forces().ravel() for f in test])
    ref_e = np.array([f.get_potential_energy() / 13 for f in test]) * 1000
    assert m["force_rmse"] < 0.25 * ref_f.std()
    assert m["energy_rmse_mev_per_atom"] < 0.25 * ref_e.std()


def test_variance_small_at_training_points_and_large_far_away(model, train_frames):
    # 2b only: its sparse grid resolves the pair space, so the variance is the GP posterior's
    # (with 3b/SOAP the Nystrom residual of a small sparse set adds to it)
    pair = GAPModel(terms=TERMS[:1], progress=False).fit(train_frames)
    stretched = train_frames[0].copy()
    stretched.positions *= 1.35
    near, far = pair.predict(train_frames[0], properties=["uncertainty"]), pair.predict(stretched, properties=["uncertainty"])
    sigma_e2 = (pair.sigma_energy_ * np.sqrt(13)) ** 2
    assert near["energy_variance"] < sigma_e2  # the fitted energy pins the total down
    assert far["energy_variance"] > 100 * near["energy_variance"]
    assert np.median(far["energies_variance"]) > 2 * np.median(near["energies_variance"])
    full_near, full_far = model.predict(train_frames[0], properties=["uncertainty"]), model.predict(stretched, properties=["uncertainty"])
    assert np.all(full_near["energies_variance"] >= 0) and full_far["energy_variance"] > 5 * full_near["energy_variance"]
    # Force uncertainty (eV/A): larger on clusters rattled 4x more than the training ones, and
    # ranking the atoms by their actual force errors there.
    assert np.all(full_near["forces_variance"] >= 0)
    hot = emt_clusters(5, seed=40, amplitude=0.3)
    predicted = [model.predict(a, properties=["uncertainty"]) for a in hot]
    uncertainty = np.concatenate([p["uncertainty"] for p in predicted])
    errors = np.concatenate([np.linalg.norm(p["forces"] - a.get_forces(), axis=1) for p, a in zip(predicted, hot)])
    assert np.median(uncertainty) > 2 * np.median(full_near["uncertainty"])
    assert spearmanr(uncertainty, errors)[0] > 0.5


@pytest.mark.parametrize("terms", [TERMS[:1], TERMS[1:2], TERMS[2:], TERMS], ids=["2b", "3b", "soap", "all"])
def test_force_variance_is_the_second_derivative_of_the_energy_covariance(train_frames, terms):
    # Independent route: cov(E(X), E(X')) from the energy variance of X and X' placed 100 A
    # apart in one structure, and var(dE/dr) = var(E(r + h) - E(r - h)) / 4h^2. Checked for the
    # prior (V = 0) and for a random positive V (the explained part g^T V g).
    model = GAPModel(terms=list(terms), calibrate_uncertainty=False, progress=False).fit(train_frames[:10])
    atoms = emt_clusters(1, seed=5)[0]
    atoms.positions *= 1.05
    m = len(model.variance_)
    A = np.random.default_rng(0).normal(size=(m, m))
    for V in (np.zeros((m, m)), A @ A.T / m * 1e-2):
        model.variance_ = V
        model._build_predictor()
        out = model.predict(atoms, properties=["uncertainty"])
        np.testing.assert_allclose(out["uncertainty"], np.sqrt(out["forces_variance"].sum(axis=1)))

        def var_e(a):
            return model.predict(a, properties=["uncertainty"])["energy_variance"]

        h = 1e-3
        for k, x in [(0, 0), (3, 1), (7, 2), (12, 0)]:
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, x] += h
            minus.positions[k, x] -= h
            far = minus.copy()
            far.positions += 100.0
            fd = (2 * var_e(plus) + 2 * var_e(minus) - var_e(plus + far)) / (4 * h * h)
            assert out["forces_variance"][k, x] == pytest.approx(fd, rel=2e-4), (k, x)


def test_force_uncertainty_is_scaled_to_the_errors_of_left_out_groups():
    from clusterforce.kinds.gap import design as gp

    frames = emt_clusters(12, seed=3)
    groups = np.arange(12) % 3
    for atoms, g in zip(frames, groups):
        atoms.info["system"] = f"size{g}"
    terms = [TwoBody(r_cut=4.5, n_sparse=10)]
    model = GAPModel(terms=terms, progress=False).fit(frames)
    raw = GAPModel(terms=terms, calibrate_uncertainty=False, progress=False).fit(frames)
    assert model.training_["uncertainty_calibration"]["groups"] == 3
    # Independently: each group predicted by a model of the other groups' rows (same sparse points).
    err2, var = np.zeros(2), np.zeros(2)
    for g in range(3):
        rest = [model._sample(a, i) for i, a in enumerate(frames) if groups[i] != g]
        ata, atb = gp.accumulate(model.kernels_, rest, chunk_rows=64, progress=False).finish()
        other = GAPModel(terms=terms, calibrate_uncertainty=False, progress=False).fit(frames)
        other.normal_equations_ = (gp.sparse_covariance(model.kernels_), ata, atb)
        other._solve()
        for atoms in (a for a, k in zip(frames, groups) if k == g):
            p, species = other.predict(atoms, properties=["uncertainty"]), np.searchsorted(model.atomic_numbers_, atoms.numbers)
            np.add.at(err2, species, ((p["forces"] - atoms.get_forces()) ** 2).sum(axis=1))
            np.add.at(var, species, p["forces_variance"].sum(axis=1))
    np.testing.assert_allclose(model.uncertainty_scale_, np.sqrt(err2 / var), rtol=1e-6)
    probe = emt_clusters(1, seed=9)[0]
    species = np.searchsorted(model.atomic_numbers_, probe.numbers)
    scaled, unscaled = model.predict(probe, properties=["uncertainty"]), raw.predict(probe, properties=["uncertainty"])
    np.testing.assert_allclose(scaled["uncertainty"], model.uncertainty_scale_[species] * unscaled["uncertainty"], rtol=1e-6)
    np.testing.assert_allclose(scaled["forces"], unscaled["forces"], rtol=1e-9, atol=1e-9)  # only the uncertainty changes


def test_centre_entry_point_matches_whole_structure(model):
    a, species = structure(seed=13)
    whole = model.predict(a)
    forces = np.zeros((13, 3))
    for i in range(13):
        rel = np.delete(a.positions - a.positions[i], i, axis=0)
        nb = np.delete(np.arange(13), i)
        e, grad = model.predictor_.centre_energy(int(species[i]), rel, species[nb])
        assert e == pytest.approx(whole["energies"][i], abs=1e-12)
        forces[nb] -= grad
        forces[i] += grad.sum(axis=0)
    np.testing.assert_allclose(forces, whole["forces"], atol=1e-12)


def test_save_load_gives_identical_predictions(model, tmp_path):
    path = tmp_path / "m.cfm"
    model.save(path)
    a, species = structure(seed=14)
    p = model.predict(a, properties=["uncertainty"])
    loaded = GAPModel.load(path)
    q = loaded.predict(a, properties=["uncertainty"])
    # Equal to round-off, not bitwise: with several OpenMP threads the order of the force
    # reduction varies from call to call. Variances are prior - k^T V k, a difference of
    # nearly equal numbers, so the same round-off shows up relatively larger there.
    for key in ("energy", "forces", "energies"):
        np.testing.assert_allclose(q[key], p[key], rtol=1e-12, atol=1e-12)
    for key in ("energies_variance", "energy_variance", "forces_variance"):
        np.testing.assert_allclose(q[key], p[key], rtol=1e-3, atol=1e-10)
    cpp = _kernels.GapModel.read(str(path)).compute(a.positions, species, True)
    np.testing.assert_allclose(cpp["forces_variance"], p["forces_variance"], rtol=1e-3, atol=1e-10)
    np.testing.assert_allclose(cpp["forces"], p["forces"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpp["energy"], p["energy"], rtol=1e-12)
    meta = modelfile.load(path).metadata
    assert [term_from_dict(t) for t in meta["terms"]] == list(TERMS)
    assert meta["elements"] == ["Cu", "Ag"] and meta["training"]["n_frames"] == 30
    assert set(meta["training"]["metrics"]) >= {"energy_rmse_mev_per_atom", "force_rmse"}


def test_damaged_model_file_is_rejected(model, tmp_path):
    path = tmp_path / "m.cfm"
    model.save(path)
    mf = modelfile.load(path)
    arrays = dict(mf.arrays)
    arrays["terms/1/alpha"] = arrays["terms/1/alpha"][:-1]
    bad = tmp_path / "bad.cfm"
    modelfile.save(bad, kind="gap", arrays=arrays, metadata=mf.metadata)
    with pytest.raises(modelfile.ModelFileError, match="terms/1/alpha"):
        GAPModel.load(bad)
    with pytest.raises(ValueError, match="terms/1/alpha"):
        _kernels.GapModel.read(str(bad))


def test_calculator_serves_energy_and_forces(model):
    a, _ = structure(seed=15)
    p = model.predict(a)
    a.calc = Calculator(model)
    assert a.get_potential_energy() == pytest.approx(p["energy"])
    np.testing.assert_allclose(a.get_forces(), p["forces"])


# ---------------------------------------------------------------- options and validation


def test_e0_from_isolated_atoms_and_sigma_overrides():
    frames = emt_clusters(12, seed=5, alloy=False)
    atom = Icosahedron("Cu", 1)[:1]
    atom.calc = SinglePointCalculator(atom, energy=-1.5, forces=np.zeros((1, 3)))
    terms = (TwoBody(delta=1.0, r_cut=5.0, n_sparse=10),)
    base = GAPModel(terms=terms, progress=False).fit(frames + [atom])
    assert base.e0_ == {"Cu": -1.5}
    # a frame with a wrong energy but huge energy_sigma barely changes the fit
    wrong = frames[0].copy()
    wrong.calc = SinglePointCalculator(wrong, energy=frames[0].get_potential_energy() + 50.0, forces=frames[0].get_forces())
    wrong.info["energy_sigma"] = 1e6
    robust = GAPModel(terms=terms, progress=False).fit(frames + [atom, wrong])
    a = frames[1]
    assert robust.predict(a)["energy"] == pytest.approx(base.predict(a)["energy"], abs=1e-3)


def test_clone_round_trip(model):
    params = model.get_params()
    copy = clone(model)
    assert copy.get_params() == params
    assert not hasattr(copy, "predictor_")


def test_validation_messages(model, train_frames):
    with pytest.raises(ValueError, match="'theta' must be a positive number"):
        GAPModel(terms=(TwoBody(theta=-1.0),)).fit(train_frames)
    with pytest.raises(ValueError, match="'width' .* must not exceed 'r_cut'"):
        GAPModel(terms=(ThreeBody(r_cut=2.0, width=3.0),)).fit(train_frames)
    with pytest.raises(ValueError, match="'sigma_force' must be a positive number"):
        GAPModel(terms=TERMS[:1], sigma_force=0.0).fit(train_frames)
    with pytest.raises(ValueError, match="'e0' lacks an isolated-atom energy for Ag"):
        GAPModel(terms=TERMS[:1], e0={"Cu": 0.0}, progress=False).fit(train_frames)
    gold = train_frames[0].copy()
    gold.numbers[3] = 79
    with pytest.raises(ValueError, match="atom 3 is Au, an element this model was not trained on"):
        model.predict(gold)
    with pytest.raises(ValueError, match="unknown field"):
        term_from_dict({"kind": "2b", "cutoff": 5.0})


def test_periodic_forces_and_virial_are_energy_derivatives():
    from ase.build import bulk

    rng = np.random.default_rng(4)
    frames = []
    for _ in range(6):
        a = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
        a.positions += rng.normal(scale=0.08, size=a.positions.shape)
        a.calc = EMT()
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = SinglePointCalculator(a, energy=e, forces=f)
        frames.append(a)
    model = GAPModel(terms=(TERMS[0], TERMS[1], TERMS[2]), progress=False).fit(frames)
    a = frames[0].copy()
    a.positions[0] += [0.05, -0.03, 0.02]
    p = model.predict(a)
    h = 1e-5
    for x in range(3):
        b = a.copy()
        b.positions[1, x] += h
        ep = model.predict(b)["energy"]
        b.positions[1, x] -= 2 * h
        em = model.predict(b)["energy"]
        assert p["forces"][1, x] == pytest.approx(-(ep - em) / (2 * h), abs=1e-6)
    # virial W = -dE/d(strain): E(cell (1 + eps)) with atoms following the strain
    for i, j in ((0, 0), (0, 1), (2, 1)):
        eps = np.zeros((3, 3))
        eps[i, j] = h
        energies = []
        for sign in (1, -1):
            b = a.copy()
            b.set_cell(a.cell[:] @ (np.eye(3) + sign * eps).T, scale_atoms=True)
            energies.append(model.predict(b)["energy"])
        assert p["virial"][i, j] == pytest.approx(-(energies[0] - energies[1]) / (2 * h), abs=1e-6)
    a.calc = Calculator(model)
    np.testing.assert_allclose(a.get_stress(voigt=False), -p["virial"] / a.get_volume(), atol=1e-12)


# ---------------------------------------------------------------- command line


def gap_parser():
    import argparse

    from clusterforce.kinds.gap.kind import add_arguments

    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--plots")
    p.set_defaults(command="train")
    add_arguments(p)
    return p


def test_train_and_evaluate_from_flags_and_config(tmp_path, train_frames):
    from clusterforce.core.options import apply_config
    from clusterforce.kinds.gap.kind import evaluate, finish, terms_from_args, train

    config = tmp_path / "gap.yaml"
    config.write_text("terms: [2b, soap]\nn_sparse_soap: 25\nn_max_soap: 3\nl_max_soap: 2\nr_cut_soap: 4.0\nr_cut_2b: 5.0\n")
    argv = ["--config", str(config), "--quiet", "--n-sparse-soap", "30", "--plots", str(tmp_path / "plots")]
    parser = gap_parser()
    apply_config(parser, config)
    args = parser.parse_args(argv)
    terms = terms_from_args(args, ["Na"])
    assert [t.kind for t in terms] == ["2b", "soap"]
    assert terms[1].n_sparse == 30 and terms[1].n_max == 3 and terms[0].r_cut == 5.0  # flag beats config
    model = train(train_frames[:10], args)
    assert not model.maps_  # train stops before the finishing step, which clusterforce train/learn take
    finish(model, args)
    assert list(model.maps_) == [0]  # the 2b term is tabulated by default (--map)
    unmapped = train(train_frames[:10], parser.parse_args([*argv, "--no-map"]))
    finish(unmapped, parser.parse_args([*argv, "--no-map"]))
    assert not unmapped.maps_
    report = evaluate(model, train_frames[10:15], args)
    assert set(report) == {"kind", "energy_rmse_mev_per_atom", "energy_mae_mev_per_atom", "force_rmse", "force_mae", "n_frames"}
    assert report["kind"] == "gap" and report["n_frames"] == 5
    assert 0 < report["force_mae"] <= report["force_rmse"]
    assert (tmp_path / "plots" / "energy_parity.png").stat().st_size > 0
    assert (tmp_path / "plots" / "force_parity.png").stat().st_size > 0


def test_bad_flags_are_named():
    from clusterforce.kinds.gap.kind import terms_from_args, train

    args = gap_parser().parse_args(["--theta-3b", "0", "--terms", "3b"])
    with pytest.raises(ValueError, match="3b term: 'theta' must be a positive number"):
        terms_from_args(args, ["Cu"])
    args = gap_parser().parse_args(["--e0", "Cu:1.0", "--terms", "2b"])
    with pytest.raises(ValueError, match="--e0 expects ELEMENT=EV"):
        train([], args)


def test_mpi_ranks_share_the_normal_equations(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    script = tmp_path / "fit.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from mpi4py import MPI\n"
        "from test_gap import emt_clusters, TERMS\n"
        "from clusterforce.kinds.gap.model import GAPModel\n"
        "frames = emt_clusters(8, 0)\n"
        "m = GAPModel(terms=TERMS, progress=False).fit(frames, comm=MPI.COMM_WORLD)\n"
        "if MPI.COMM_WORLD.Get_rank() == 0:\n"
        f"    np.save({str(tmp_path / 'forces.npy')!r}, m.predict(frames[3])['forces'])\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    serial = GAPModel(terms=TERMS, progress=False).fit(emt_clusters(8, 0))
    np.testing.assert_allclose(np.load(tmp_path / "forces.npy"), serial.predict(emt_clusters(8, 0)[3])["forces"], atol=1e-5)


def test_plain_cpp_program_reads_the_model_file(model, tmp_path):
    """The header-only core compiles without Python and reproduces the Python prediction
    through the per-centre (LAMMPS-style) entry point."""
    import shutil
    import subprocess
    from pathlib import Path

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    include = Path(__file__).resolve().parents[2] / "cpp" / "include"
    source = tmp_path / "main.cpp"
    source.write_text(
        r"""
#include <cstdio>
#include <vector>
#include "clusterforce/gap.hpp"
using namespace clusterforce;
int main(int argc, char** argv) {
  GapModel model = read_gap_model(ModelFile::read(argv[1]));
  int n; std::scanf("%d", &n);
  std::vector<double> pos(3 * n); std::vector<int> sp(n);
  for (int i = 0; i < n; ++i) std::scanf("%d %lf %lf %lf", &sp[i], &pos[3 * i], &pos[3 * i + 1], &pos[3 * i + 2]);
  std::vector<double> forces(3 * n, 0.0);
  double energy = 0.0;
  for (int i = 0; i < n; ++i) {  // full neighbour list by hand, as a pair style would pass it
    std::vector<double> rel; std::vector<int> nsp, idx;
    for (int j = 0; j < n; ++j) {
      if (j == i) continue;
      for (int x = 0; x < 3; ++x) rel.push_back(pos[3 * j + x] - pos[3 * i + x]);
      nsp.push_back(sp[j]); idx.push_back(j);
    }
    std::vector<double> grad(rel.size(), 0.0);
    energy += model.centre_energy(sp[i], rel.data(), nsp.data(), (int)idx.size(), grad.data());
    for (std::size_t k = 0; k < idx.size(); ++k)
      for (int x = 0; x < 3; ++x) { forces[3 * idx[k] + x] -= grad[3 * k + x]; forces[3 * i + x] += grad[3 * k + x]; }
  }
  std::printf("%.17g\n", energy);
  for (double f : forces) std::printf("%.17g\n", f);
}
"""
    )
    exe = tmp_path / "gap_predict"
    subprocess.run([cxx, "-std=c++17", "-O1", "-Wno-unknown-pragmas", f"-I{include}", str(source), "-o", str(exe)], check=True)
    path = tmp_path / "m.cfm"
    model.save(path)
    a, species = structure(seed=16)
    stdin = f"{len(a)}\n" + "".join(f"{s} {x:.17g} {y:.17g} {z:.17g}\n" for s, (x, y, z) in zip(species, a.positions))
    out = np.array(
        subprocess.run([str(exe), str(path)], input=stdin, capture_output=True, text=True, check=True).stdout.split(), dtype=float
    )
    p = model.predict(a)
    assert out[0] == pytest.approx(p["energy"], abs=1e-10)
    np.testing.assert_allclose(out[1:].reshape(-1, 3), p["forces"], atol=1e-10)


def test_soap_term_shares_the_soap_schema():
    from clusterforce.descriptors.soap import SoapParams
    from clusterforce.kinds.gap.terms import term_from_dict

    with pytest.raises(ValueError, match=r"soap term: sigma must be > 0 Angstrom"):
        Soap(sigma=0.0).validate()
    with pytest.raises(ValueError, match=r"soap term: l_max must be in \[0, 20\]"):
        Soap(l_max=21).validate()
    # files written before SOAP settings had one schema call the width atom_sigma
    legacy = {**Soap().to_dict(), "atom_sigma": 0.45}
    del legacy["sigma"]
    assert term_from_dict(legacy).sigma == 0.45
    assert Soap(r_cut=5.0, n_max=8, l_max=6, sigma=0.5).soap_params == SoapParams(5.0, 8, 6, 0.5)


def test_partial_fit_equals_a_fit_on_all_frames_with_the_same_sparse_points(train_frames):
    from clusterforce.kinds.gap import design as gp

    first, extra = train_frames[:3], train_frames[3:]
    terms = [TwoBody(r_cut=4.5, n_sparse=10), Soap(r_cut=3.5, n_max=3, l_max=2, sigma=0.4, n_sparse=12)]
    model = GAPModel(terms=terms, progress=False).fit(first)
    model.partial_fit(extra)
    # From scratch: every frame's rows with the same kernels (sparse points) and e0.
    samples = [model._sample(a, i) for i, a in enumerate(train_frames)]
    eq = gp.accumulate(model.kernels_, samples, chunk_rows=64, progress=False)
    ata, atb = eq.finish()
    reference = GAPModel(terms=terms, progress=False).fit(first)  # same seed: the same sparse points
    reference.normal_equations_ = (gp.sparse_covariance(model.kernels_), ata, atb)
    reference._solve()
    # alpha itself is ill-conditioned (|alpha| ~ 1e6 here); what must agree is what it predicts.
    for seed in (5, 6):
        probe = structure(seed)[0]
        got, want = model.predict(probe), reference.predict(probe)
        assert abs(got["energy"] - want["energy"]) < 1e-7
        np.testing.assert_allclose(got["forces"], want["forces"], rtol=0, atol=1e-6)
    assert model.training_["n_frames"] == len(train_frames)
    probe = structure(5)[0]
    before = GAPModel(terms=terms, progress=False).fit(first).predict(probe)["forces"]
    assert not np.allclose(model.predict(probe)["forces"], before)  # the update changed the model


def test_partial_fit_moves_the_baseline_below_closer_pairs(train_frames):
    from clusterforce.core import baseline as pair_wall

    terms = [TwoBody(r_cut=4.5, n_sparse=10)]
    model = GAPModel(terms=terms, baseline=True, progress=False).fit(train_frames[:3])
    squeezed = train_frames[3].copy()
    squeezed.positions *= 0.85  # every pair shorter than in the first frames
    squeezed.calc = SinglePointCalculator(squeezed, energy=train_frames[3].get_potential_energy(), forces=train_frames[3].get_forces())
    model.partial_fit([squeezed])
    np.testing.assert_allclose(model.baseline_r_s_, pair_wall.fit_pair_wall(train_frames[:3] + [squeezed], model.element_list_))
    species = np.searchsorted(model.atomic_numbers_, squeezed.numbers)
    assert pair_wall.energy_forces(model.baseline_r_s_, squeezed, species)[0] == 0.0


def test_preset_follows_the_elements_and_flags_override_it():
    from clusterforce.kinds.gap.kind import terms_from_args
    from clusterforce.kinds.gap.terms import PRESETS, preset_for

    assert preset_for(["Na"]) == "gap-sodium" and preset_for(["K", "Na"]) == "gap-sodium"
    assert preset_for(["Au"]) == preset_for(["Ag", "Au"]) == preset_for(["Ga"]) == "metal"
    assert preset_for(["Au", "S", "C", "H"]) == preset_for(["Na", "H"]) == "ligand"
    for elements, preset in ((["Na"], "gap-sodium"), (["Au"], "metal"), (["H", "C", "S", "Au"], "ligand")):
        assert terms_from_args(gap_parser().parse_args([]), elements) == PRESETS[preset]
    terms = terms_from_args(gap_parser().parse_args(["--preset", "gap-sodium", "--n-max-soap", "5", "--terms", "soap"]), ["Au"])
    assert terms == (dataclasses.replace(PRESETS["gap-sodium"][2], n_max=5),)


def test_estimator_without_terms_takes_the_preset_of_its_data(train_frames):
    from clusterforce.kinds.gap.terms import PRESETS

    assert set(train_frames[0].get_chemical_symbols()) <= {"Cu", "Ag"}
    model = GAPModel(variance=False, progress=False).fit(train_frames[:3])
    assert [k.term for k in model.kernels_] == list(PRESETS["metal"])
    assert model.terms is None  # the constructor argument is left as given (scikit-learn convention)


def test_noise_comes_from_the_preset_unless_given(train_frames, tmp_path):
    from clusterforce.kinds.gap.kind import train
    from clusterforce.kinds.gap.terms import PRESET_NOISE

    frames = train_frames[:3]
    metal = GAPModel(terms=TERMS[:1], variance=False, progress=False).fit(frames)
    assert (metal.sigma_energy_, metal.sigma_force_) == PRESET_NOISE["metal"] == (0.01, 0.02)
    assert metal.training_["sigma_energy"] == 0.01 and metal.sigma_energy is None
    given = GAPModel(terms=TERMS[:1], sigma_energy=0.003, variance=False, progress=False).fit(frames)
    assert (given.sigma_energy_, given.sigma_force_) == (0.003, 0.02)
    # A different noise is a different fit; the same noise given explicitly is the same fit.
    explicit = GAPModel(terms=TERMS[:1], sigma_energy=0.01, sigma_force=0.02, variance=False, progress=False).fit(frames)
    np.testing.assert_allclose(explicit.alpha_[0], metal.alpha_[0], rtol=1e-12)
    assert not np.allclose(given.alpha_[0], metal.alpha_[0])
    # The command line takes the noise of the preset it uses, also one named with --preset.
    args = gap_parser().parse_args(["--terms", "2b", "--n-sparse-2b", "5", "--preset", "gap-sodium", "--no-variance"])
    assert train(frames, args).sigma_energy == PRESET_NOISE["gap-sodium"][0] == 0.001
    args = gap_parser().parse_args(["--terms", "2b", "--n-sparse-2b", "5", "--sigma-energy", "0.004", "--no-variance"])
    assert train(frames, args).sigma_energy == 0.004


def test_zeta_2_soap_predicts_through_a_quadratic_form_equal_to_the_kernel_sum(train_frames):
    # F = 20 features (n_max 2, l_max 1, two species) < 40 sparse points per species: A is used.
    soap = Soap(delta=0.1, r_cut=4.0, n_max=2, l_max=1, sigma=0.6, zeta=2, n_sparse=40)
    model = GAPModel(terms=(soap,), variance=False, progress=False).fit(train_frames)
    term = model.kernels_[0].predictor_term(model.alpha_[0])
    assert term.uses_quadratic_form(0) and term.uses_quadratic_form(1)
    assert not model.kernels_[0].predictor_term(model.alpha_[0][:0]).uses_quadratic_form(0)  # no weights, no A
    offsets = []
    for seed in (5, 6):
        a, _ = structure(seed)
        p = model.predict(a)
        rows, _ = sample_rows(model.kernels_, Sample(model._geometry(a, "t"), 0.0, np.zeros((13, 3)), 1.0, np.ones(13)))
        # The design rows contract the kernel sum over sparse points in numpy: the independent path.
        np.testing.assert_allclose(p["forces"], (rows[1:] @ model.alpha_[0]).reshape(-1, 3), rtol=0, atol=1e-10)
        offsets.append(p["energy"] - rows[0] @ model.alpha_[0])
    assert offsets[0] == pytest.approx(offsets[1], abs=1e-10)  # the same e0 sum: same composition
