import dataclasses
import sys

import numpy as np
import pytest
from ase import Atoms
from clusterforce.references import (
    LadderCalculator,
    ScfCounts,
    ScfFailure,
    default_electronic_temperature,
    make_reference,
    single_point_energies,
)
from clusterforce.workflows.datagen import build, gold_thiolate_ring, rng_stream
from conftest import Morse


def test_electronic_temperature_follows_the_elements():
    assert default_electronic_temperature(gold_thiolate_ring(4)) == 300.0
    for system in ("na", "agau"):
        assert default_electronic_temperature(build(system, [13])[0].atoms) == 2000.0


def test_missing_tblite_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tblite", None)
    monkeypatch.setitem(sys.modules, "tblite.ase", None)
    with pytest.raises(ImportError, match=r'pip install "clusterforce\[xtb\]"'):
        make_reference("gfn1-xtb", gold_thiolate_ring(4))


def test_gfn1_settings_are_resolved_from_the_structure():
    pytest.importorskip("tblite")
    na21 = Atoms(["Na"] * 21, positions=rng_stream(0).uniform(0, 10, (21, 3)))
    ref = make_reference("gfn1-xtb", na21)
    assert (ref.electronic_temperature, ref.charge, ref.uhf) == (2000.0, 0, 1)
    assert [r.name for r in ref.rungs] == ["normal", "patient-scf", "hot-electrons"]
    assert [r.recordable for r in ref.rungs] == [True, True, False]
    assert ref.rungs[2].overrides["electronic_temperature"] == 5000.0
    calc = ref.calculator(ref.rungs[1])
    assert calc.parameters["electronic_temperature"] == 2000.0
    assert calc.parameters["mixer_damping"] < 0.4 and calc.parameters["accuracy"] == 10.0
    ring = make_reference("gfn1-xtb", gold_thiolate_ring(4), electronic_temperature=400.0, charge=-2)
    assert ring.frame_info() == {"method": "gfn1-xtb", "electronic_temperature_K": 400.0, "charge": -2, "uhf": 0}
    assert ring.rungs[2].overrides["electronic_temperature"] == 5000.0
    anion = gold_thiolate_ring(4)
    anion.info["charge"] = -1
    assert make_reference("gfn1-xtb", anion).uhf == 1


def test_gfn1_validation_messages():
    pytest.importorskip("tblite")
    ring = gold_thiolate_ring(4)
    with pytest.raises(ValueError, match="cannot have 1 unpaired"):
        make_reference("gfn1-xtb", ring, uhf=1)
    with pytest.raises(ValueError, match=r"--fallback-electronic-temperature \(200.0 K\) must exceed"):
        make_reference("gfn1-xtb", ring, fallback_electronic_temperature=200.0)
    with pytest.raises(ValueError, match="--electronic-temperature must be positive"):
        make_reference("gfn1-xtb", ring, electronic_temperature=-5)


def test_emt_and_unknown_methods():
    agau = build("agau", [13])[0].atoms
    assert make_reference("emt", agau).frame_info() == {"method": "emt"}
    with pytest.raises(ValueError, match=r"EMT has no parameters for \['Na'\]"):
        make_reference("emt", build("na", [13])[0].atoms)
    with pytest.raises(ValueError, match="has no electronic temperature"):
        make_reference("emt", agau, electronic_temperature=300.0)
    with pytest.raises(ValueError, match="unknown reference 'gfn2-xtb'"):
        make_reference("gfn2-xtb", agau)


def failing_calls(*numbers):
    """``fails`` callback that fails on the given (0-based) calculator calls."""
    calls = []

    def fails(level, atoms):
        calls.append(level)
        return len(calls) - 1 in numbers

    return fails, calls


@pytest.mark.parametrize(
    "failing,rung,retries,hot",
    [((), "normal", 0, 0), ((0,), "patient-scf", 1, 0), ((0, 1), "hot-electrons", 1, 1)],
)
def test_ladder_climbs_one_rung_per_failure(flaky_reference, failing, rung, retries, hot):
    fails, calls = failing_calls(*failing)
    counts = ScfCounts()
    atoms = build("agau", [13])[0].atoms
    atoms.calc = LadderCalculator(flaky_reference(fails), counts, "Ag7Au6")
    forces = atoms.get_forces()
    expected = atoms.copy()
    expected.calc = Morse()
    assert np.allclose(forces, expected.get_forces())
    assert atoms.calc.rung.name == rung
    assert atoms.calc.rung.recordable == (rung != "hot-electrons")
    assert (counts.scf_retries, counts.hot_steps) == (retries, hot)
    assert calls == list(range(len(failing) + 1))


def test_ladder_raises_when_every_rung_fails(flaky_reference):
    fails, _ = failing_calls(0, 1, 2)
    atoms = build("agau", [13])[0].atoms
    atoms.calc = LadderCalculator(flaky_reference(fails), ScfCounts(), "Ag7Au6")
    with pytest.raises(ScfFailure, match="Ag7Au6: every evaluation rung failed: normal: SCF not converged"):
        atoms.get_potential_energy()


def test_ladder_started_higher_falls_back_to_lower_rungs(flaky_reference):
    fails, calls = failing_calls(0)  # the hot rung, tried first, fails
    counts = ScfCounts()
    atoms = build("agau", [13])[0].atoms
    atoms.calc = LadderCalculator(flaky_reference(fails), counts, "Ag7Au6")
    atoms.calc.first_rung = 2
    atoms.get_forces()
    assert calls == [2, 0]
    assert (atoms.calc.rung.name, atoms.calc.rung_index) == ("normal", 0)
    assert (counts.scf_retries, counts.hot_steps) == (0, 0)


def test_ladder_keeps_a_converged_calculator_and_drops_a_failed_one(flaky_reference):
    # Keeping the calculator lets GFN1-xTB start the next SCF from the last density.
    made = []
    failing = {"now": False}
    flaky = flaky_reference(lambda level, atoms: failing["now"] and level == 0)
    reference = dataclasses.replace(flaky, factory=lambda level: made.append(level) or flaky.factory(level))
    atoms = build("agau", [13])[0].atoms
    atoms.calc = LadderCalculator(reference, ScfCounts(), "Ag7Au6")
    for _ in range(3):
        atoms.positions[0, 0] += 0.01
        atoms.get_forces()
    assert made == [0]
    failing["now"] = True
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    failing["now"] = False
    atoms.positions[0, 0] += 0.01
    atoms.get_forces()
    assert made == [0, 1, 0]


def test_single_point_energies_skip_unrecordable_rungs_and_mark_failures(flaky_reference):
    frames = [build("agau", [13])[0].atoms for _ in range(3)]
    for k, frame in enumerate(frames):
        frame.positions *= 1.0 + 0.02 * k
    # Frame 1 fails on the recordable rungs: the hot rung would converge but must not be used.
    reference = flaky_reference(lambda level, atoms: level < 2 and np.isclose(atoms.positions, frames[1].positions).all())
    energies = single_point_energies(frames, reference, "Ag7Au6")
    assert np.isnan(energies[1]) and np.isfinite(energies[[0, 2]]).all()
    for k in (0, 2):
        expected = frames[k].copy()
        expected.calc = Morse()
        assert energies[k] == pytest.approx(expected.get_potential_energy())


def test_single_point_energies_give_up_after_failures_in_a_row(flaky_reference):
    frames = [build("agau", [13])[0].atoms for _ in range(5)]
    for k, frame in enumerate(frames):
        frame.positions *= 1.0 + 0.02 * k
    tried = []

    def fails(level, atoms):
        tried.append(level)
        return level < 2 and not np.isclose(atoms.positions, frames[0].positions).all()

    energies = single_point_energies(frames, flaky_reference(fails), "Ag7Au6", give_up_after=2)
    assert np.isfinite(energies[0]) and np.isnan(energies[1:]).all()
    assert len(tried) == 1 + 2 * 2  # frame 0 once; frames 1 and 2 on both recordable rungs; 3, 4 never
