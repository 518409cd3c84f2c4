import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read
from ase.optimize import BFGS
from clusterforce import Calculator
from clusterforce.workflows.optimize import CURVATURE_EPS, ForceOnlyOptimizer, _GuardedBFGS, curvature_ok, parse_partwise
from conftest import EMTForceModel


def emt_energy(atoms):
    ref = atoms.copy()
    ref.calc = EMT()
    return ref.get_potential_energy()


def test_force_only_bfgs_lowers_reference_energy(rattled_au13, emt_force_model, tmp_path):
    atoms = rattled_au13
    atoms.calc = Calculator(emt_force_model)
    e0 = emt_energy(atoms)
    opt = ForceOnlyOptimizer(atoms, maxstep=0.1, trajectory=tmp_path / "opt.traj", logfile=tmp_path / "opt.log")
    result = opt.run(fmax=0.05, steps=100)
    assert result.converged
    assert result.fmax[-1] <= 0.05
    assert emt_energy(atoms) < e0 - 0.1
    frames = read(tmp_path / "opt.traj", ":")
    assert len(frames) == result.nsteps + 1
    assert "fmax" in (tmp_path / "opt.log").read_text()


def test_maxstep_bounds_every_displacement(rattled_au13, emt_force_model):
    atoms = rattled_au13
    atoms.calc = Calculator(emt_force_model)
    opt = ForceOnlyOptimizer(atoms, maxstep=0.02)
    before = atoms.get_positions()
    for _ in range(5):
        opt.run(fmax=0.0, steps=1)
        after = atoms.get_positions()
        assert np.linalg.norm(after - before, axis=1).max() <= 0.02 + 1e-12
        before = after


def test_partwise_schedule_and_resets(rattled_au13, emt_force_model, tmp_path):
    atoms = rattled_au13
    atoms.calc = Calculator(emt_force_model)
    parts = parse_partwise("0-5:4,6-12:2", atoms)
    opt = ForceOnlyOptimizer(atoms, maxstep=0.05, parts=parts, reset_every=6, trajectory=tmp_path / "p.traj")
    result = opt.run(fmax=0.0, steps=14)
    assert result.nsteps == 14
    assert result.parts == (["0-5"] * 4 + ["6-12"] * 2) * 2 + ["0-5"] * 2
    assert result.resets == [6, 12]
    frames = read(tmp_path / "p.traj", ":")
    groups = {"0-5": set(range(6)), "6-12": set(range(6, 13))}
    for before, after, part in zip(frames, frames[1:], result.parts):
        moved = set(np.flatnonzero(np.linalg.norm(after.positions - before.positions, axis=1) > 0))
        assert moved and moved <= groups[part]


def test_hessian_reset_restores_initial_hessian(rattled_au13, emt_force_model):
    atoms = rattled_au13
    atoms.calc = Calculator(emt_force_model)
    opt = ForceOnlyOptimizer(atoms, maxstep=0.05, alpha=70.0)
    opt.run(fmax=0.0, steps=3)
    bfgs = opt._optimizers[0]
    assert not np.allclose(bfgs.H, 70.0 * np.eye(3 * len(atoms)))
    opt.reset_hessians()
    opt.run(fmax=0.0, steps=1)  # first step after a reset uses the initial Hessian
    np.testing.assert_allclose(bfgs.H, 70.0 * np.eye(3 * len(atoms)))


def test_fixed_atoms_never_move(rattled_au13, emt_force_model):
    atoms = rattled_au13
    atoms.set_constraint(FixAtoms(indices=[0, 1, 2]))
    atoms.calc = Calculator(emt_force_model)
    start = atoms.get_positions()
    ForceOnlyOptimizer(atoms, maxstep=0.1).run(fmax=0.01, steps=20)
    np.testing.assert_array_equal(atoms.get_positions()[:3], start[:3])
    assert np.abs(atoms.get_positions()[3:] - start[3:]).max() > 0


def test_partwise_by_class_names(rattled_au13):
    classes = ["Au_core"] * 5 + ["Au_unit"] * 4 + ["S"] * 4
    parts = parse_partwise("outer:24,core:12", rattled_au13, classes)
    assert [p.name for p in parts] == ["outer", "core"]
    np.testing.assert_array_equal(parts[0].indices, np.arange(5, 13))
    np.testing.assert_array_equal(parts[1].indices, np.arange(5))
    assert parts[0].steps == 24 and parts[1].steps == 12


@pytest.mark.parametrize(
    "spec, message",
    [
        ("outer", "is not GROUP:STEPS"),
        ("0-3:0", "is not GROUP:STEPS"),
        ("0-99:5", "atom index 99 is out of range for 13 atoms"),
        ("Xx:5", "partwise group 'Xx' is unknown"),
        ("core:5", "needs atom classes"),
    ],
)
def test_partwise_errors(rattled_au13, spec, message):
    with pytest.raises(ValueError, match=message):
        parse_partwise(spec, rattled_au13)


def test_bad_arguments(rattled_au13, emt_force_model):
    rattled_au13.calc = Calculator(emt_force_model)
    with pytest.raises(ValueError, match="maxstep must be positive"):
        ForceOnlyOptimizer(rattled_au13, maxstep=0)
    with pytest.raises(ValueError, match="reset_every must be a positive"):
        ForceOnlyOptimizer(rattled_au13, reset_every=0)


class _SqueezingModel(EMTForceModel):
    """EMT forces plus a pull between atoms 0 and 1, flagged as extrapolating below 2.4 Angstrom
    (how a dml model reports a pair closer than its training data)."""

    def predict(self, atoms, *, properties=None):
        out = super().predict(atoms, properties=properties)
        bond = atoms.positions[1] - atoms.positions[0]
        d = np.linalg.norm(bond)
        out["forces"][0] += 3.0 * bond / d
        out["forces"][1] -= 3.0 * bond / d
        out["extrapolating"] = np.zeros(len(atoms), dtype=bool)
        out["extrapolating"][[0, 1]] = d < 2.4
        return out


def test_stop_when_extrapolating(rattled_au13, tmp_path):
    atoms = rattled_au13.copy()
    atoms.calc = Calculator(_SqueezingModel())
    traj = tmp_path / "squeeze.traj"
    result = ForceOnlyOptimizer(atoms, maxstep=0.05, trajectory=traj).run(fmax=0.01, steps=100)  # stops by default
    assert not result.converged and result.stopped.startswith(f"step {result.nsteps}: atoms 0 (Au), 1 (Au) are flagged as extrapolating")
    assert 0 < result.nsteps < 100
    frames = read(traj, ":")
    stopped_at = frames[result.nsteps]
    stopped_at.calc = Calculator(_SqueezingModel())
    stopped_at.get_forces()
    assert stopped_at.get_distance(0, 1) < 2.4 and stopped_at.calc.results["extrapolating"][[0, 1]].all()
    # The atoms are returned to the step with the lowest RMS force (the last trajectory frame too).
    assert np.array_equal(atoms.positions, frames[result.best_step].positions)
    assert np.array_equal(frames[-1].positions, atoms.positions) and len(frames) == result.nsteps + 2
    # Without the stop the pull goes on; flags on fixed atoms do not stop a run.
    free_run = rattled_au13.copy()
    free_run.calc = Calculator(_SqueezingModel())
    assert ForceOnlyOptimizer(free_run, maxstep=0.05, stop_when_extrapolating=False).run(fmax=0.01, steps=result.nsteps + 5).stopped == ""
    fixed = rattled_au13.copy()
    fixed.set_constraint(FixAtoms(indices=[0, 1]))
    fixed.calc = Calculator(_SqueezingModel())
    assert ForceOnlyOptimizer(fixed, maxstep=0.05, stop_when_extrapolating=True).run(fmax=0.05, steps=60).stopped == ""


class _Swirl(EMT):
    """A non-conservative force field: F = J (x - c) with J antisymmetric, a swirl around the
    centre. Every step along F moves atoms outwards, so the forces grow without end."""

    def calculate(self, atoms=None, properties=("forces",), system_changes=None):
        self.atoms = atoms.copy()
        r = atoms.positions - atoms.positions.mean(axis=0)
        forces = np.stack([-r[:, 1], r[:, 0], np.zeros(len(r))], axis=1)
        self.results = {"forces": forces, "energy": np.nan}


def test_patience_stops_a_non_conservative_descent_at_its_best_structure(rattled_au13):
    atoms = rattled_au13.copy()
    start = atoms.positions.copy()
    atoms.calc = _Swirl()
    result = ForceOnlyOptimizer(atoms, maxstep=0.05, patience=10).run(fmax=0.01, steps=100)
    assert not result.converged and result.nsteps == 10 and result.best_step == 0
    assert "RMS force has not fallen below its lowest value" in result.stopped
    assert np.array_equal(atoms.positions, start)
    # Without patience it runs the whole budget with ever larger forces.
    free_run = rattled_au13.copy()
    free_run.calc = _Swirl()
    result = ForceOnlyOptimizer(free_run, maxstep=0.05).run(fmax=0.01, steps=30)
    assert result.stopped == "" and result.nsteps == 30 and result.fmax[-1] > result.fmax[0]
    with pytest.raises(ValueError, match="patience"):
        ForceOnlyOptimizer(rattled_au13.copy(), patience=0)


def test_swirl_keeps_the_hessian_finite_and_positive_definite(rattled_au13):
    """dr . dg of the swirl is zero up to round-off: the guarded update is skipped instead of dividing by it."""
    atoms = rattled_au13.copy()
    atoms.calc = _Swirl()
    opt = ForceOnlyOptimizer(atoms, maxstep=0.05, stop_when_extrapolating=False)
    result = opt.run(fmax=0.01, steps=15)
    assert result.stopped == "" and np.all(np.isfinite(result.fmax)) and np.isfinite(atoms.positions).all()
    np.testing.assert_array_equal(opt._optimizers[0].H, 70.0 * np.eye(3 * len(atoms)))


def test_curvature_guard():
    dr = np.array([1.0, 0.0, 0.0])
    assert curvature_ok(dr, np.array([2.0, 1.0, 0.0]))
    assert not curvature_ok(dr, np.array([0.0, 1.0, 0.0]))  # zero curvature: exactly what a swirl gives
    assert not curvature_ok(dr, np.array([-1.0, 0.0, 0.0]))  # negative curvature would make H indefinite
    assert not curvature_ok(dr, np.array([0.5 * CURVATURE_EPS, 1.0, 0.0]))  # round-off, relative to |dr| |dg|


def test_guarded_bfgs_update_agrees_with_ase_where_the_curvature_is_positive(rattled_au13):
    atoms = rattled_au13.copy()
    atoms.calc = EMT()
    guarded, plain = _GuardedBFGS(atoms.copy(), logfile=None), BFGS(atoms.copy(), logfile=None)
    for opt in (guarded, plain):
        opt.atoms.calc = EMT()
        opt.run(fmax=0.0, steps=4)
    np.testing.assert_allclose(guarded.H, plain.H, rtol=1e-12)


class _BreaksAtCall(EMT):
    """EMT whose forces on atom 3 turn NaN from its ``k``-th force call on."""

    def __init__(self, k):
        super().__init__()
        self.k, self.calls = k, 0

    def calculate(self, atoms=None, properties=("forces",), system_changes=None):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls >= self.k:
            self.results["forces"][3] = np.nan
            self.results["energy"] = np.nan


def test_nan_forces_stop_at_the_step_they_appear_and_keep_the_best_structure(rattled_au13):
    atoms = rattled_au13.copy()
    atoms.calc = _BreaksAtCall(4)
    result = ForceOnlyOptimizer(atoms, maxstep=0.05).run(fmax=0.01, steps=50)
    assert not result.converged and result.nsteps == 3
    assert result.stopped == "step 3: the position or force of atoms 3 (Au) is not finite (NaN or inf)"
    assert np.isfinite(atoms.positions).all() and result.best_step is not None and result.best_step < 3
