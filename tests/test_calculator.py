import numpy as np
import pytest
from ase import units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.io import read
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE, LBFGS, MDMin
from clusterforce import Calculator
from clusterforce.workflows.optimize import ForceOnlyAtoms


def test_forces_equal_model_predict(rattled_au13, emt_force_model):
    calc = Calculator(emt_force_model)
    rattled_au13.calc = calc
    np.testing.assert_array_equal(rattled_au13.get_forces(), emt_force_model.predict(rattled_au13)["forces"])
    assert calc.results["uncertainty"].shape == (13,)


def test_force_only_model_refuses_energy_with_reason(rattled_au13, emt_force_model):
    rattled_au13.calc = Calculator(emt_force_model)
    with pytest.raises(PropertyNotImplementedError, match=r"kind 'emt-forces'\) is force-only"):
        rattled_au13.get_potential_energy()


def test_caching_follows_check_state(rattled_au13, emt_force_model):
    rattled_au13.calc = Calculator(emt_force_model)
    rattled_au13.get_forces()
    rattled_au13.get_forces()
    assert emt_force_model.calls == 1
    rattled_au13.positions[0, 0] += 0.01
    rattled_au13.get_forces()
    assert emt_force_model.calls == 2


def test_unknown_element_is_named(rattled_au13, emt_force_model):
    rattled_au13[4].symbol = "Pt"
    rattled_au13.calc = Calculator(emt_force_model)
    with pytest.raises(ValueError, match=r"atom 4 is Pt, an element this model was not trained on"):
        rattled_au13.get_forces()


def test_stress_on_cluster_is_not_defined(rattled_au13, emt_force_model):
    rattled_au13.calc = Calculator(emt_force_model)
    with pytest.raises(PropertyNotImplementedError):
        rattled_au13.get_stress()


@pytest.mark.parametrize("optimizer", [BFGS, LBFGS, FIRE, MDMin])
def test_runs_under_ase_optimisers(rattled_au13, emt_force_model, optimizer, tmp_path):
    rattled_au13.calc = Calculator(emt_force_model)
    opt = optimizer(ForceOnlyAtoms(rattled_au13), logfile=str(tmp_path / "log"), trajectory=str(tmp_path / "t.traj"))
    assert opt.run(fmax=0.1, steps=300)
    assert np.linalg.norm(rattled_au13.get_forces(), axis=1).max() <= 0.1
    assert len(read(tmp_path / "t.traj", ":")) == opt.nsteps + 1


def test_runs_under_ase_md(rattled_au13, emt_force_model):
    rattled_au13.calc = Calculator(emt_force_model)
    rattled_au13.set_momenta(np.random.default_rng(0).normal(scale=0.5, size=(13, 3)))
    VelocityVerlet(rattled_au13, timestep=2 * units.fs).run(5)
    Langevin(rattled_au13, timestep=2 * units.fs, temperature_K=300, friction=0.01, fixcm=False, rng=np.random.default_rng(0)).run(5)
    assert np.isfinite(rattled_au13.positions).all()
