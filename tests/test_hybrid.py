"""Hybrid optimisation: model steps checked and corrected by reference single points."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.cluster import Icosahedron
from ase.optimize import BFGS
from clusterforce.workflows.hybrid import ForceCorrection, HybridOptimizer


@pytest.fixture
def rattled_cu13():
    atoms = Icosahedron("Cu", 2)
    atoms.positions += np.random.default_rng(0).normal(scale=0.25, size=atoms.positions.shape)
    return atoms


def _checkpoint_energies(result):
    energies = [result.reference_energies[0]]
    energies += [e for e, ok in zip(result.reference_energies[1:], result.accepted) if ok]
    return np.array(energies)


def test_converges_on_reference_forces_with_a_poor_model(rattled_cu13):
    atoms = rattled_cu13.copy()
    # Lennard-Jones with made-up parameters: the wrong forces, only roughly the right shape.
    result = HybridOptimizer(atoms, LennardJones(sigma=2.3, epsilon=0.4, rc=6.0), EMT()).run(fmax=0.05, steps=150)
    assert result.converged and result.reference_fmax[-1] <= 0.05
    atoms.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(result.final_energy, abs=1e-9)
    assert np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max() <= 0.05
    assert np.all(np.diff(_checkpoint_energies(result)) < 0)
    plain = rattled_cu13.copy()
    plain.calc = EMT()
    bfgs = BFGS(plain, maxstep=0.1, logfile=None)
    bfgs.run(fmax=0.05, steps=150)
    # Same minimum as a plain reference BFGS.
    assert result.final_energy == pytest.approx(plain.get_potential_energy(), abs=5e-3)


def test_noisy_model_is_rejected_and_energy_never_rises(rattled_cu13):
    class Noisy(EMT):
        """EMT plus fresh 3 eV/Angstrom noise on every call: many model steps go uphill."""

        rng = np.random.default_rng(1)

        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = self.results["forces"] + self.rng.normal(scale=3.0, size=self.results["forces"].shape)

    atoms = rattled_cu13.copy()
    result = HybridOptimizer(atoms, Noisy(), EMT(), check_every=4).run(fmax=0.05, steps=40)
    assert not all(result.accepted)
    assert np.all(np.diff(_checkpoint_energies(result)) < 0)
    assert result.final_energy <= result.start_energy
    atoms.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(result.final_energy, abs=1e-9)


def test_reference_failure_at_a_trial_structure_is_a_rejection(rattled_cu13):
    class Flaky(EMT):
        calls = 0

        def calculate(self, *args, **kwargs):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("SCF did not converge")
            super().calculate(*args, **kwargs)

    result = HybridOptimizer(rattled_cu13.copy(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0), Flaky()).run(fmax=0.05, steps=60)
    assert result.accepted[0] is False and np.isnan(result.reference_energies[1])
    assert result.final_energy < result.start_energy


def test_extrapolation_flag_ends_a_segment(rattled_cu13):
    class Flagging(LennardJones):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["extrapolating"] = np.ones(len(self.atoms), dtype=bool)

    result = HybridOptimizer(rattled_cu13.copy(), Flagging(sigma=2.3, epsilon=0.4, rc=6.0), EMT(), check_every=8).run(fmax=0.05, steps=10)
    # Every segment is one model step long: one reference call per model step.
    assert result.reference_calls == result.model_steps + 1


def test_force_correction_reproduces_observed_errors_as_a_gradient_field():
    rng = np.random.default_rng(3)
    correction = ForceCorrection(length=0.5, memory=4)
    points = [rng.normal(scale=0.3, size=6) for _ in range(5)]
    errors = [rng.normal(size=6) for _ in range(5)]
    for x, c in zip(points, errors):
        correction.add(x, c)
    correction.condition(errors[-1])
    # Only the 4 most recent observations are kept, and the GP goes through each of them.
    for x, c in zip(points[1:], errors[1:]):
        assert np.allclose(correction(x), c, atol=1e-4)
    assert not np.allclose(correction(points[0]), errors[0], atol=1e-2)
    # c = -grad r: its Jacobian (finite differences) is symmetric, so the corrected force stays conservative.
    x0, h = rng.normal(scale=0.3, size=6), 1e-6
    jac = np.array([(correction(x0 + h * e) - correction(x0 - h * e)) / (2 * h) for e in np.eye(6)])
    assert np.abs(jac).max() > 1e-2
    assert np.allclose(jac, jac.T, atol=1e-6)
    # Far from every observation the correction returns to the mean (the checkpoint's error).
    assert np.allclose(correction(x0 + 50.0), errors[-1], atol=1e-9)


def test_nan_model_forces_stop_at_the_last_checkpoint(rattled_cu13):
    class BreaksAfter(LennardJones):
        """The poor LJ model until its 6th force call, NaN on atom 2 from then on."""

        calls = 0

        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            BreaksAfter.calls += 1
            if BreaksAfter.calls >= 6:
                self.results["forces"][2] = np.nan

    atoms = rattled_cu13.copy()
    result = HybridOptimizer(atoms, BreaksAfter(sigma=2.3, epsilon=0.4, rc=6.0), EMT(), check_every=3).run(fmax=0.05, steps=60)
    # Call 1 is the start; calls 2-5 are model steps 1-4, so model step 5 is the first NaN.
    expected = "model step 5: the position or force of atoms 2 (Cu) is not finite (NaN or inf); returned to the last checkpoint"
    assert result.stopped == expected
    assert not result.converged and result.model_steps == 4 and np.isfinite(atoms.positions).all()
    atoms.calc = EMT()
    assert atoms.get_potential_energy() == pytest.approx(result.final_energy, abs=1e-9)


def test_a_nan_reference_result_rejects_its_trial(rattled_cu13):
    class NanOnce(EMT):
        calls = 0

        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            NanOnce.calls += 1
            if NanOnce.calls == 2:
                self.results["energy"] = np.nan

    result = HybridOptimizer(rattled_cu13.copy(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0), NanOnce()).run(fmax=0.05, steps=40)
    assert result.accepted[0] is False and np.isnan(result.reference_energies[1]) and result.final_energy < result.start_energy
