"""The dart kind: TAD descriptors, the DART network, its training and its compiled prediction.

References: numpy (TAD with scipy's logistic, integer shell counts), finite differences for the
network's back-propagation and for the compiled forces, and the numpy forward pass of the same
weights for the compiled energies.
"""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from clusterforce import Calculator, _kernels
from clusterforce.cli import main
from clusterforce.core import registry
from clusterforce.core.modelfile import ModelFileError
from clusterforce.kinds.adam import Adam
from clusterforce.kinds.dart import DARTModel, shells_from_rdf
from clusterforce.kinds.dart.model import NETS
from clusterforce.kinds.dart.network import Mlp
from scipy.special import expit
from scipy.stats import spearmanr

SMALL = dict(feature_width=12, atom_hidden=(12,), interaction_hidden=(16, 8), progress=False)


def _frames(n: int, seed: int, shells: int = 2, amplitude: float = 0.15) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms = Icosahedron("Cu", shells)
        atoms.numbers[rng.choice(len(atoms), 4, replace=False)] = 79
        atoms.positions += rng.normal(0.0, amplitude, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        out.append(atoms)
    return out


@pytest.fixture(scope="module")
def trained():
    return DARTModel(max_epochs=100, r_J=3.0, r_K=4.6, width=0.3, **SMALL).fit(_frames(200, 0))


def test_tad_counts_neighbours_per_shell_and_species():
    atoms = _frames(1, 1)[0]
    species = (atoms.numbers == 79).astype(np.int32)
    x = _kernels.tad(atoms.positions, species, 2, 3.0, 4.6, 0.1)
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.nan)
    sj, sk = expit((3.0 - d) / 0.1), expit((4.6 - d) / 0.1)
    for s, member in enumerate([sj, sk - sj, 1 - sk]):
        for t in (0, 1):
            np.testing.assert_allclose(x[:, 2 * s + t], np.nansum(np.where(species == t, member, 0.0), axis=1), atol=1e-12)
    np.testing.assert_array_equal(x[:, 6:], np.eye(2)[species])
    # sharp boundaries: the paper's integer counts
    sharp = _kernels.tad(atoms.positions, np.zeros(len(atoms), np.int32), 1, 3.0, 4.6, 1e-6)
    np.testing.assert_allclose(sharp[:, 0], np.nansum(d < 3.0, axis=1), atol=1e-9)
    np.testing.assert_allclose(sharp[:, :3].sum(axis=1), len(atoms) - 1, atol=1e-12)


def test_network_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    net = Mlp([3, 5, 4, 2], rng)
    x = rng.normal(size=(6, 3))
    weights = rng.normal(size=(6, 2))

    def loss(inp):
        return float(np.sum(net.forward(inp)[0] * weights))

    out, cache = net.forward(x)
    grads, gx = net.backward(cache, weights)
    h = 1e-6
    for p, g in zip(net.params, grads):
        idx = tuple(rng.integers(0, s) for s in p.shape)
        old = p[idx]
        p[idx] = old + h
        up = loss(x)
        p[idx] = old - h
        down = loss(x)
        p[idx] = old
        assert g[idx] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)
    e = np.zeros_like(x)
    e[2, 1] = h
    assert gx[2, 1] == pytest.approx((loss(x + e) - loss(x - e)) / (2 * h), rel=1e-6)


def test_adam_minimises_a_quadratic():
    p = np.array([3.0, -2.0])
    opt = Adam([p], lr=0.1)
    for _ in range(500):
        opt.step([2 * (p - np.array([1.0, 0.5]))])
    np.testing.assert_allclose(p, [1.0, 0.5], atol=1e-3)


def test_compiled_energy_equals_the_numpy_network(trained):
    atoms = _frames(1, 7)[0]
    species = (atoms.numbers == 79).astype(np.int32)
    x = _kernels.tad(atoms.positions, species, 2, *trained.shells_, trained.width)
    z, shells = trained._frame_data(atoms, species, x)
    nets = {}
    for name in NETS:
        net = Mlp([1, 1], np.random.default_rng(0))
        net.W, net.b = trained.nets_[name]["W"], trained.nets_[name]["b"]
        nets[name] = net
    import scipy.sparse

    atom_e, _ = trained._forward(nets, z, [scipy.sparse.csr_matrix(a) for a in shells])
    out = trained.predict(atoms)
    np.testing.assert_allclose(out["energies"], atom_e + trained.e0_[species], atol=1e-10)
    assert out["energy"] == pytest.approx(out["energies"].sum(), abs=1e-10)


def test_forces_are_minus_the_energy_gradient(trained):
    atoms = _frames(1, 9)[0]
    forces = trained.predict(atoms)["forces"]
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)
    h = 1e-5
    for a, c in [(0, 0), (4, 1), (11, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(trained.predict(plus)["energy"] - trained.predict(minus)["energy"]) / (2 * h)
        assert forces[a, c] == pytest.approx(fd, abs=1e-6)


def test_training_learns_energies_it_did_not_see(trained):
    test = _frames(40, 2)
    pred = np.array([trained.predict(a)["energy"] for a in test])
    ref = np.array([a.get_potential_energy() for a in test])
    # Rattled clusters of one composition differ in energy mostly through distortions a
    # topological descriptor sees only in part: better than the mean, not much more.
    assert np.mean(np.abs(pred - ref)) < 0.8 * np.mean(np.abs(ref - ref.mean()))
    assert spearmanr(pred, ref)[0] > 0.5
    assert trained.training_["epochs"] > 1 and trained.training_["best_valid_mae_eV"] > 0


def test_shells_fall_between_neighbour_shells_of_the_data():
    frames = _frames(20, 3, shells=3, amplitude=0.05)
    r_j, r_k = shells_from_rdf(frames)
    assert 2.6 < r_j < 3.4  # Cu nearest neighbours ~2.5 A, second ~3.6 A
    assert r_k > 1.3 * r_j
    # the paper's rule: the first minimum, past the half-height flank; same r_K
    r_min, r_k_min = shells_from_rdf(frames, rule="minimum")
    assert r_j < r_min < 3.6 and r_k_min == r_k
    with pytest.raises(ValueError, match="rule"):
        shells_from_rdf(frames, rule="maximum")


def test_file_round_trip_calculator_and_errors(trained, tmp_path):
    path = tmp_path / "d.cfm"
    trained.save(path)
    atoms = _frames(1, 5)[0]
    again = registry.load_model(path)
    assert isinstance(again, DARTModel)
    np.testing.assert_allclose(again.predict(atoms)["forces"], trained.predict(atoms)["forces"], atol=1e-12)
    atoms.calc = Calculator(str(path))
    assert atoms.get_potential_energy() == pytest.approx(trained.predict(atoms)["energy"], abs=1e-10)
    assert atoms.get_forces().shape == (len(atoms), 3)
    with pytest.raises(ValueError, match="periodic"):
        trained.predict(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=[5, 5, 5], pbc=True))
    with pytest.raises(ValueError, match="Ag"):
        trained.predict(Atoms("AgCu", positions=[[0, 0, 0], [0, 0, 2.5]]))
    raw = path.read_bytes()
    (tmp_path / "cut.cfm").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError):
        registry.load_model(tmp_path / "cut.cfm")


def test_train_evaluate_and_screen_from_the_command_line(tmp_path, capsys):
    data, model, report = tmp_path / "train.extxyz", tmp_path / "dart.cfm", tmp_path / "eval.json"
    from ase.io import read, write

    write(data, _frames(30, 4))
    flags = ["--feature-width", "8", "--max-epochs", "5", "--r-j", "3.0", "--r-k", "4.6", "--quiet"]
    assert main(["train", "--kind", "dart", str(data), "-o", str(model), *flags]) == 0
    assert main(["evaluate", str(model), str(data), "--json", str(report)]) == 0
    out = json.loads(report.read_text())
    assert out["kind"] == "dart" and out["by_size"]["13"]["frames"] == 30 and out["energy_mae_kcal_per_mol"] > 0
    assert "Spearman" in capsys.readouterr().out
    screened = tmp_path / "screened.extxyz"
    assert main(["screen", str(model), str(data), "--bins", "4", "-o", str(screened), "--json", str(tmp_path / "s.json")]) == 0
    assert 1 <= json.loads((tmp_path / "s.json").read_text())["representatives"] == len(read(screened, ":")) <= 4


def _weights_norm(model: DARTModel) -> float:
    return float(np.sqrt(sum(np.sum(w**2) for name in NETS for w in model.nets_[name]["W"])))


def test_weight_decay_shrinks_the_weights_and_is_checked():
    frames = _frames(30, 6)
    common = dict(max_epochs=15, batch_size=4, r_J=3.0, r_K=4.6, width=0.3, **SMALL)
    plain = DARTModel(**common).fit(frames)
    # 105 steps at lr 1e-3: the decay alone would scale W by 0.98^105 ~ 0.12
    decayed = DARTModel(weight_decay=20.0, **common).fit(frames)
    assert _weights_norm(decayed) < 0.5 * _weights_norm(plain)
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="weight_decay"):
            DARTModel(weight_decay=bad, **common).fit(frames)


def test_largest_size_validation_holds_out_whole_sizes():
    frames = _frames(20, 7) + _frames(6, 8, shells=3)  # 13- and 55-atom clusters
    sizes = np.array([len(a) for a in frames])
    valid, train = DARTModel(validation="largest", validation_fraction=0.1)._split(sizes, np.random.default_rng(0))
    assert set(sizes[valid]) == {sizes.max()} and set(sizes[train]) == {sizes.min()}
    assert len(valid) == (sizes == sizes.max()).sum()
    # one size only: random frames, as validation="random"
    same = np.full(40, 13)
    valid, train = DARTModel(validation="largest")._split(same, np.random.default_rng(0))
    assert len(valid) == 4 and len(train) == 36
    with pytest.raises(ValueError, match="validation"):
        DARTModel(validation="smallest", max_epochs=1, **SMALL).fit(frames[:12])
