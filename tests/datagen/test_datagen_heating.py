import subprocess
import sys
import time

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io import read
from clusterforce.references import ScfFailure, make_reference
from clusterforce.workflows.datagen import HeatingSchedule, Job, build, generate, record_steps
from clusterforce.workflows.datagen.store import checkpoint_path
from conftest import geometric_coin

SCHEDULE = HeatingSchedule(temperatures=(300.0, 600.0), steps_per_temperature=40, frames=12, seed=7)


class Interrupted(BaseException):
    """Stands in for a kill: not an SCF failure, so nothing catches it."""


def interrupt_after(calls):
    made = []

    def hook():
        made.append(1)
        if len(made) > calls:
            raise Interrupted

    return hook


def assert_same_frames(path_a, path_b):
    a, b = read(path_a, ":"), read(path_b, ":")
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        assert np.abs(fa.positions - fb.positions).max() < 1e-12
        assert fa.get_potential_energy() == fb.get_potential_energy()
        assert np.array_equal(fa.get_forces(), fb.get_forces())
        assert fa.info == fb.info
    assert path_a.read_bytes() == path_b.read_bytes()


def test_emt_frames_carry_labels_and_provenance(tmp_path):
    out = tmp_path / "agau.extxyz"
    structure = build("agau", [13])[0]
    summary = generate([Job(structure, make_reference("emt", structure.atoms))], SCHEDULE, out, progress=False)
    frames = read(out, ":")
    assert [f.info["step"] for f in frames] == record_steps(80, 12, 10.0).tolist()
    assert summary[0].frames == 12 and summary[0].md_steps == 80
    for frame in frames:
        assert frame.info["method"] == "emt" and frame.info["system"] == "Ag7Au6" and frame.info["seed"] == 7
        assert frame.info["temperature_K"] == (300.0 if frame.info["step"] <= 40 else 600.0)
        assert frame.info["temperature_instantaneous_K"] > 0
        assert frame.info["scf_retries"] == 0 and frame.info["scf_rung"] == "normal"
        fresh = frame.copy()
        fresh.calc = EMT()
        # extxyz keeps 8 decimals of positions, hence the tolerance
        assert frame.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-5)
        assert np.allclose(frame.get_forces(), fresh.get_forces(), atol=1e-5)
    assert not np.allclose(frames[0].positions, frames[-1].positions)


def test_heating_follows_the_ramp(tmp_path, morse_reference):
    schedule = HeatingSchedule(temperatures=(100.0, 1500.0), steps_per_temperature=200, frames=80, friction=0.05)
    out = tmp_path / "ramp.extxyz"
    generate([Job(build("agau", [55])[0], morse_reference())], schedule, out, progress=False)
    t = {target: np.mean([f.info["temperature_instantaneous_K"] for f in read(out, ":") if f.info["temperature_K"] == target
                          and f.info["step"] % 200 > 100]) for target in (100.0, 1500.0)}  # fmt: skip
    assert 50 < t[100.0] < 200
    assert 1000 < t[1500.0] < 2000


def test_runs_are_reproducible_and_seeded(tmp_path, morse_reference):
    jobs = [Job(build("agau", [13])[0], morse_reference())]
    generate(jobs, SCHEDULE, tmp_path / "a.extxyz", progress=False)
    generate(jobs, SCHEDULE, tmp_path / "b.extxyz", progress=False)
    assert (tmp_path / "a.extxyz").read_bytes() == (tmp_path / "b.extxyz").read_bytes()
    other = HeatingSchedule(**{**SCHEDULE.__dict__, "seed": 8})
    generate(jobs, other, tmp_path / "c.extxyz", progress=False)
    assert not np.allclose(read(tmp_path / "a.extxyz").positions, read(tmp_path / "c.extxyz").positions)


@pytest.mark.parametrize("broken,calls", [(0, 1), (0, 30), (1, 50)])
def test_resume_after_interruption_gives_identical_file(tmp_path, morse_reference, broken, calls):
    structures = build("agau", [13, 13])
    jobs = [Job(s, morse_reference()) for s in structures]
    whole = tmp_path / "whole.extxyz"
    generate(jobs, SCHEDULE, whole, progress=False)

    out = tmp_path / "resumed.extxyz"
    interrupted = list(jobs)
    interrupted[broken] = Job(structures[broken], morse_reference(interrupt_after(calls)))
    with pytest.raises(Interrupted):
        generate(interrupted, SCHEDULE, out, progress=False)
    with open(out, "ab") as fh:  # half a frame written when the process died
        fh.write(b"13\nProperties=species:S:1:pos:R:3 energy=1.0\nAu 0.0 0.")
    generate(jobs, SCHEDULE, out, resume=True, progress=False)
    assert_same_frames(whole, out)


def test_resume_reproduces_scf_recovery(tmp_path, flaky_reference):
    def fails(level, atoms):
        return geometric_coin(atoms, level) < (0.3, 0.5, 0.3)[level]

    structure = build("agau", [13])[0]
    jobs = [Job(structure, flaky_reference(fails))]
    schedule = HeatingSchedule(temperatures=(300.0, 600.0), steps_per_temperature=100, frames=30, max_restarts=20)
    whole = tmp_path / "whole.extxyz"
    summary = generate(jobs, schedule, whole, progress=False)[0]
    counts = summary.counts
    assert counts["scf_retries"] > 0 and counts["hot_steps"] > 0 and counts["restarts"] > 0
    frames = read(whole, ":")
    assert len(frames) == summary.frames
    assert 30 - counts["skipped_frames"] <= len(frames) < 30
    assert {f.info["step"] for f in frames} <= set(record_steps(200, 30, 10.0).tolist())
    assert frames[-1].info["md_restarts"] == counts["restarts"]
    assert {f.info["scf_rung"] for f in frames} == {"normal", "patient-scf"}
    assert frames[-1].info["scf_hot_steps"] <= counts["hot_steps"]

    calls = []

    def fails_then_dies(level, atoms):
        calls.append(1)
        if len(calls) == 150:
            raise Interrupted
        return fails(level, atoms)

    out = tmp_path / "resumed.extxyz"
    with pytest.raises(Interrupted):
        generate([Job(structure, flaky_reference(fails_then_dies))], schedule, out, progress=False)
    assert generate(jobs, schedule, out, resume=True, progress=False)[0].counts == counts
    assert_same_frames(whole, out)


def test_stuck_structure_stops_with_clear_error(tmp_path, flaky_reference):
    calls = []

    def fails(level, atoms):
        calls.append(1)
        return len(calls) > 40

    out = tmp_path / "stuck.extxyz"
    schedule = HeatingSchedule(temperatures=(300.0,), steps_per_temperature=100, frames=50, max_restarts=2)
    with pytest.raises(ScfFailure, match=r"Ag7Au6: SCF failed at every rung in 3 runs from step \d+ .* --max-restarts"):
        generate([Job(build("agau", [13])[0], flaky_reference(fails))], schedule, out, progress=False)
    assert 0 < len(read(out, ":")) < 50


def test_output_protection_and_config_check(tmp_path, morse_reference):
    jobs = [Job(build("agau", [13])[0], morse_reference())]
    out = tmp_path / "x.extxyz"
    generate(jobs, SCHEDULE, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="pass --resume to continue an interrupted run or --overwrite"):
        generate(jobs, SCHEDULE, out, progress=False)
    assert generate(jobs, SCHEDULE, out, resume=True, progress=False)[0].frames == 12
    assert out.read_bytes() == before
    longer = HeatingSchedule(**{**SCHEDULE.__dict__, "frames": 13})
    with pytest.raises(ValueError, match=r"other settings \(differs in: schedule\)"):
        generate(jobs, longer, out, resume=True, progress=False)
    checkpoint_path(out).unlink()
    with pytest.raises(FileExistsError, match="cannot resume: .* its checkpoint .* does not"):
        generate(jobs, SCHEDULE, out, resume=True, progress=False)
    out.write_bytes(before[: len(before) // 2])
    generate(jobs, longer, out, overwrite=True, progress=False)
    assert len(read(out, ":")) == 13


def test_shortened_output_is_refused(tmp_path, morse_reference):
    jobs = [Job(build("agau", [13])[0], morse_reference(interrupt_after(60)))]
    out = tmp_path / "x.extxyz"
    with pytest.raises(Interrupted):
        generate(jobs, SCHEDULE, out, progress=False)
    out.write_bytes(out.read_bytes()[:10])
    with pytest.raises(ValueError, match="has 10 bytes but its checkpoint counts"):
        generate([Job(jobs[0].structure, morse_reference())], SCHEDULE, out, resume=True, progress=False)


def test_schedule_validation():
    with pytest.raises(ValueError, match="--temperatures must be one or more positive"):
        HeatingSchedule(temperatures=(300.0, -1.0)).validate()
    with pytest.raises(ValueError, match="--frames must be between 1 and the number of MD steps"):
        HeatingSchedule(temperatures=(300.0,), steps_per_temperature=10, frames=11).validate()
    with pytest.raises(ValueError, match="--timestep must be positive"):
        HeatingSchedule(timestep=0.0).validate()


def test_kill_minus_nine_and_resume_from_cli(tmp_path):
    from clusterforce.cli import main

    args = ["datagen", "--system", "agau", "--n", "13", "--reference", "emt", "--temperatures", "300", "700",
            "--steps-per-temperature", "100", "--frames", "30", "--quiet"]  # fmt: skip
    whole = tmp_path / "whole.extxyz"
    assert main([*args, "-o", str(whole)]) == 0

    killed = tmp_path / "killed.extxyz"
    proc = subprocess.Popen([sys.executable, "-m", "clusterforce", *args, "-o", str(killed)])
    deadline = time.monotonic() + 120  # only a guard against a hung child; the test does not depend on timing
    while proc.poll() is None and time.monotonic() < deadline:
        if killed.exists() and killed.stat().st_size > 5000:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert main([*args, "-o", str(killed), "--resume"]) == 0
    assert_same_frames(whole, killed)


def test_failure_stretch_retries_normal_settings_only_at_recording_steps(tmp_path, flaky_reference):
    attempts = {0: 0, 1: 0, 2: 0}

    def fails(level, atoms):
        attempts[level] += 1
        return level < 2  # a long stretch: only the hot rung converges

    schedule = HeatingSchedule(temperatures=(300.0,), steps_per_temperature=50, frames=10)
    plan = record_steps(50, 10, 10.0).tolist()
    summary = generate([Job(build("agau", [13])[0], flaky_reference(fails))], schedule, tmp_path / "x.extxyz",
                       progress=False)[0]  # fmt: skip
    # the first Langevin step evaluates twice (start and end); after it, only steps due for
    # recording go back to the normal settings
    first_step_normal = 2 if 1 not in plan else 1
    assert attempts[0] == first_step_normal + len([s for s in plan if s > 1]) + (1 in plan)
    assert attempts[1] == attempts[0] == summary.counts["scf_retries"]
    assert attempts[2] == 51 == summary.counts["hot_steps"]
    assert summary.frames == 0 and summary.counts["skipped_frames"] == 10
