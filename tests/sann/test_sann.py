"""The sann kind: descriptors, the network's derivatives, the Kalman filter, training and the
compiled prediction.

References: finite differences (descriptor gradients, every network derivative, forces of a
one-species model), least squares (the Kalman filter on a linear model), the numpy network
(compiled energies and the decoupled forces of eq. 12).
"""

import json

import numpy as np
import pytest
from _frames import rattled_icosahedron
from ase.calculators.emt import EMT
from clusterforce import Calculator, _kernels
from clusterforce.cli import main
from clusterforce.core import registry
from clusterforce.kinds.sann import SANNModel
from clusterforce.kinds.sann.kalman import GlobalEKF
from clusterforce.kinds.sann.network import SannNetwork
from scipy.spatial.transform import Rotation

EXPONENTS, XI = [0.0028, 0.011, 0.059], [0.005, 0.06, 0.48]
SMALL = dict(exponents=EXPONENTS, xi=XI, l_max=4, hidden=(10, 10), r_cut=6.0, progress=False)


def _cluster(seed: int, alloy: bool = False, amplitude: float = 0.12):
    atoms = rattled_icosahedron(seed, "Au", substitute={47: (1, 5, 9)} if alloy else None, amplitude=amplitude)
    atoms.calc = EMT()
    atoms.get_forces()
    return atoms


@pytest.fixture(scope="module")
def gold():
    return SANNModel(epochs=3, **SMALL).fit([_cluster(s) for s in range(40)])


@pytest.fixture(scope="module")
def alloy():
    return SANNModel(epochs=1, z_eff={"Ag": 8.03, "Au": 10.94}, **SMALL).fit([_cluster(s, alloy=True) for s in range(12)])


def test_descriptor_gradients_and_invariance():
    atoms = _cluster(0, alloy=True)
    species = (atoms.numbers == 79).astype(np.int32)
    masses = np.array([107.87, 196.97])
    args = (masses, 8.0, [0.0028, 0.004, 0.011, 0.028, 0.059], 9, [0.005, 0.06, 0.48])
    d = _kernels.sann_descriptors(atoms.positions, species, *args)
    assert d["energy"].shape == (13, 5 * 10 + 3)
    assert not np.allclose(d["energy"], d["force"])  # MEAD weights differ from 1
    h = 1e-5
    for atom, c in [(0, 0), (5, 1), (12, 2)]:
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, c] += h
        minus[atom, c] -= h
        fd = (_kernels.sann_descriptors(plus, species, *args)["force"] - _kernels.sann_descriptors(minus, species, *args)["force"]) / (
            2 * h
        )
        np.testing.assert_allclose(d["force_gradient"][:, :, atom, c], fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    rotated = _kernels.sann_descriptors(atoms.positions @ Rotation.random(random_state=2).as_matrix().T + 3.0, species, *args)
    np.testing.assert_allclose(rotated["energy"], d["energy"], rtol=1e-10)
    perm = np.random.default_rng(1).permutation(len(atoms))
    permuted = _kernels.sann_descriptors(atoms.positions[perm], species[perm], *args)
    np.testing.assert_allclose(permuted["energy"], d["energy"][perm], rtol=1e-10)


def test_network_derivatives_match_finite_differences():
    rng = np.random.default_rng(0)
    net = SannNetwork(4, (5, 3), rng)
    z, v = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    h = 1e-6
    e_rows, d_rows = net.energy_rows(z), net.directional_rows(z, v)
    theta = net.theta.copy()
    for k in rng.choice(net.n_params, 12, replace=False):
        net.theta[k] = theta[k] + h
        e_up, d_up = net.energy(z), net.input_gradient(z) @ np.eye(4)
        net.theta[k] = theta[k] - h
        e_down, d_down = net.energy(z), net.input_gradient(z) @ np.eye(4)
        net.theta[k] = theta[k]
        np.testing.assert_allclose(e_rows[:, k], (e_up - e_down) / (2 * h), atol=1e-7)
        np.testing.assert_allclose(d_rows[:, k], np.sum((d_up - d_down) * v, axis=1) / (2 * h), atol=1e-7)
    fd = np.array([(net.energy(z + h * np.eye(4)[c]) - net.energy(z - h * np.eye(4)[c])) / (2 * h) for c in range(4)]).T
    np.testing.assert_allclose(net.input_gradient(z), fd, atol=1e-8)


def test_kalman_filter_solves_a_linear_least_squares_problem():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.7 + rng.normal(0, 0.1, 200)
    design = np.column_stack([x, np.ones(200)])
    theta = np.zeros(4)
    ekf = GlobalEKF(theta, p0=1e8, forgetting=1.0, forgetting_decay=1.0)
    for lo in range(0, 200, 5):  # several rows per update, as the (3N+1) error vector of a cluster
        rows = design[lo : lo + 5]
        ekf.update(rows, y[lo : lo + 5] - rows @ theta)
    np.testing.assert_allclose(theta, np.linalg.lstsq(design, y, rcond=None)[0], atol=1e-6)


def test_compiled_prediction_is_the_numpy_network(alloy):
    atoms = _cluster(30, alloy=True)
    species = (atoms.numbers == 79).astype(np.int32)
    d = alloy._descriptors(atoms, species)
    energy = alloy.e_scale_ * alloy.net_.energy((d["energy"] - alloy.mean_e_) / alloy.scale_e_) + alloy.e0_[species]
    zf = (d["force"] - alloy.mean_f_) / alloy.scale_f_
    v = -(alloy.w_beta_[species][:, None, None] * d["force_gradient"].reshape(13, -1, 39)) / alloy.scale_f_[None, :, None]
    forces = alloy.e_scale_ * np.einsum("nk,nkc->c", alloy.net_.input_gradient(zf), v).reshape(13, 3)
    out = alloy.predict(atoms)
    np.testing.assert_allclose(out["energies"], energy, atol=1e-10)
    np.testing.assert_allclose(out["forces"], forces, atol=1e-10)
    np.testing.assert_allclose(alloy.w_beta_, [8.03 / 18.97, 10.94 / 18.97])


def test_one_species_forces_are_the_energy_gradient_and_training_learns(gold):
    atoms = _cluster(50)
    out = gold.predict(atoms)
    h = 1e-5
    for a, c in [(0, 0), (6, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        assert out["forces"][a, c] == pytest.approx(-(gold.predict(plus)["energy"] - gold.predict(minus)["energy"]) / (2 * h), abs=1e-6)
    test = [_cluster(s) for s in range(100, 110)]
    err = np.concatenate([gold.predict(a)["forces"].ravel() - a.get_forces().ravel() for a in test])
    ref = np.concatenate([a.get_forces().ravel() for a in test])
    assert np.sqrt(np.mean(err**2)) < 0.5 * np.sqrt(np.mean(ref**2))
    assert gold.training_["optimizer"] == "kalman" and gold.training_["kalman_seconds_per_update"] > 0


def test_the_papers_alloy_needs_no_effective_charges_and_a_missing_one_is_named():
    model = SANNModel(epochs=1, **SMALL).fit([_cluster(0, alloy=True), _cluster(1, alloy=True)])
    assert model.w_beta_ == pytest.approx(np.array([8.030, 10.940]) / 18.97)  # Ag 5s, Au 6s (Clementi, Raimondi, Reinhardt 1967)
    platinum = rattled_icosahedron(0, "Au", substitute={78: (1, 5, 9)})
    platinum.calc = EMT()
    platinum.get_forces()
    with pytest.raises(ValueError, match="no effective nuclear charge for Pt"):
        SANNModel(epochs=1, **SMALL).fit([platinum])


def test_adam_also_trains(gold):
    frames = [_cluster(s) for s in range(20)]
    model = SANNModel(optimizer="adam", epochs=15, learning_rate=3e-3, **SMALL).fit(frames)
    losses = model.training_["validation_loss"]
    assert losses[-1] < losses[0]


def test_file_calculator_and_command_line(gold, tmp_path, capsys):
    path = tmp_path / "s.cfm"
    gold.save(path)
    atoms = _cluster(60)
    loaded = registry.load_model(path)
    np.testing.assert_allclose(loaded.predict(atoms)["forces"], gold.predict(atoms)["forces"], atol=1e-12)
    atoms.calc = Calculator(str(path))
    assert atoms.get_potential_energy() == pytest.approx(gold.predict(atoms)["energy"], abs=1e-10)
    data = tmp_path / "train.extxyz"
    from ase.io import write

    write(data, [_cluster(s) for s in range(12)])
    flags = ["--epochs", "1", "--l-max", "3", "--hidden", "6", "6", "--r-cut", "5.0", "--quiet"]
    assert main(["train", "--kind", "sann", str(data), "-o", str(tmp_path / "t.cfm"), *flags]) == 0
    assert main(["evaluate", str(tmp_path / "t.cfm"), str(data), "--json", str(tmp_path / "e.json")]) == 0
    assert json.loads((tmp_path / "e.json").read_text())["force_rmse"] > 0


def _last_layer_theta(model: SANNModel) -> np.ndarray:
    """View of theta_L = (w_L, b_L): the last H + 1 entries of the flat parameter vector."""
    return model.net_.theta[-(model.hidden[-1] + 1) :]


def test_energies_and_forces_are_linear_in_the_last_layer(gold):
    # Perturbing theta_L by d must change E by energy_row . d and F by force_rows d exactly: an
    # independent check of the compiled Jacobian d a_L / d input behind the force rows.
    import copy

    atoms = _cluster(77)
    species = np.zeros(len(atoms), dtype=np.int32)
    energy_row, force_rows = gold._network().last_layer_rows(atoms.positions, species)
    assert force_rows.shape == (3 * len(atoms), gold.hidden[-1] + 1)
    np.testing.assert_array_equal(force_rows[:, -1], 0.0)  # the bias does not move with r
    base = gold.predict(atoms)
    perturbed = copy.deepcopy(gold)
    d = np.random.default_rng(3).normal(scale=0.1, size=energy_row.size)
    _last_layer_theta(perturbed)[...] += d
    perturbed._build_predictor()
    moved = perturbed.predict(atoms)
    np.testing.assert_allclose(moved["forces"].ravel() - base["forces"].ravel(), force_rows @ d, rtol=0, atol=1e-9)
    assert moved["energy"] - base["energy"] == pytest.approx(energy_row @ d, abs=1e-9)


def test_uncertainty_is_positive_and_the_same_through_ase(gold):
    atoms = _cluster(78)
    assert gold.provides_uncertainty
    assert set(gold.training_["uncertainty"]) >= {"sigma_energy_eV_per_frame", "sigma_force_eV_per_A", "prior_variance"}
    predicted = gold.predict(atoms, properties=["uncertainty"])
    assert predicted["forces_variance"].shape == (13, 3) and predicted["uncertainty"].shape == (13,)
    assert np.all(np.isfinite(predicted["uncertainty"])) and np.all(predicted["uncertainty"] > 0)
    np.testing.assert_allclose(predicted["uncertainty"], np.sqrt(predicted["forces_variance"].sum(axis=1)), rtol=1e-12)
    through_ase = Calculator(gold).get_property("uncertainty", atoms)
    np.testing.assert_allclose(through_ase, predicted["uncertainty"], rtol=0, atol=1e-12)


def test_uncertainty_is_scaled_to_the_validation_frames_errors(gold):
    # The frames early stopping held out (the fit's split: 10 % of a permutation seeded by
    # random_state): their summed predicted force variance equals their summed squared force error.
    frames = [_cluster(s) for s in range(40)]
    held_out = np.random.default_rng(gold.random_state).permutation(40)[:4]
    assert gold.training_["uncertainty"]["validation_frames"] == 4
    var = sum(float(gold.predict(frames[i], properties=["uncertainty"])["forces_variance"].sum()) for i in held_out)
    err2 = sum(float(np.sum((gold.predict(frames[i])["forces"] - frames[i].get_forces()) ** 2)) for i in held_out)
    assert var == pytest.approx(err2, rel=1e-9)


def test_uncertainty_grows_away_from_the_training_data(gold):
    # Compressed by 15%: the force rows (descriptor gradients) leave the span the training frames
    # constrained. Expanding by 15% instead LOWERS this uncertainty (0.011 -> 0.008 eV/Angstrom on
    # this model): the neighbours move towards the flat tail of the descriptors, every force row
    # shrinks, and a last-layer variance is quadratic in the rows. It flags new bonding, not sparsity.
    train = [_cluster(s) for s in range(5)]
    compressed = [a.copy() for a in train]
    for a in compressed:
        a.positions = a.positions.mean(axis=0) + 0.85 * (a.positions - a.positions.mean(axis=0))
    inside = np.mean([gold.predict(a, properties=["uncertainty"])["uncertainty"].mean() for a in train])
    outside = np.mean([gold.predict(a, properties=["uncertainty"])["uncertainty"].mean() for a in compressed])
    assert outside > 1.5 * inside


def test_file_without_covariance_loads_without_uncertainty(gold, tmp_path):
    import copy

    old = copy.deepcopy(gold)
    old.last_layer_covariance_ = None  # as a file written before sann uncertainties
    old.save(tmp_path / "old.cfm")
    loaded = registry.load_model(tmp_path / "old.cfm")
    assert not loaded.provides_uncertainty
    assert "uncertainty" not in Calculator(loaded).implemented_properties
    np.testing.assert_allclose(loaded.predict(_cluster(5))["forces"], gold.predict(_cluster(5))["forces"], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="this sann model provides no per-atom uncertainty") as err:
        loaded.predict(_cluster(5), properties=["uncertainty"])
    assert "\n" not in str(err.value)
    gold.save(tmp_path / "new.cfm")
    reloaded = registry.load_model(tmp_path / "new.cfm")
    np.testing.assert_allclose(
        reloaded.predict(_cluster(5), properties=["uncertainty"])["uncertainty"],
        gold.predict(_cluster(5), properties=["uncertainty"])["uncertainty"],
        atol=1e-12,
    )
