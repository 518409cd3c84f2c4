"""Repulsive pair baseline: -dE/dx forces, zero on the training data, pushes squeezed atoms apart,
the same numbers from Python, the ASE calculator and LAMMPS."""

import numpy as np
import pytest
from _frames import emt_frames, ring_frames
from clusterforce import baseline as pair_wall
from clusterforce.calculator import Calculator
from clusterforce.dml.model import DMLModel
from clusterforce.gap import TwoBody
from clusterforce.gap.model import GAPModel

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
        from ase import Atoms

        dimer = Atoms("Au2", positions=[[0, 0, 0], [0, 0, r]])
        energy, forces = pair_wall.energy_forces(r_s, dimer, np.array([0, 0]))
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
    model = GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12)], baseline=True, progress=False).fit(frames)
    plain = GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=12)], progress=False).fit(frames)
    atoms = squeezed(frames[0], 0.75)
    with_wall, without = model.predict(atoms), plain.predict(atoms)
    species = np.zeros(len(atoms), dtype=int)
    e_wall, f_wall = pair_wall.energy_forces(model.baseline_r_s_, atoms, species)
    assert e_wall > 0.1
    assert with_wall["energy"] - without["energy"] == pytest.approx(e_wall, rel=1e-9)
    np.testing.assert_allclose(with_wall["forces"] - without["forces"], f_wall, rtol=0, atol=1e-9)
    on_training = model.predict(frames[1])["energy"] - plain.predict(frames[1])["energy"]
    assert on_training == 0.0
