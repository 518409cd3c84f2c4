"""Parallel tempering in LAMMPS (4 MPI ranks, a Lennard-Jones Ar13 cluster): detailed balance, resume, heat capacity."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase.cluster import Icosahedron
from ase.io import write
from clusterforce.cli import main
from clusterforce.workflows.replicas import ReplicaSettings, replica_dir
from clusterforce.workflows.tempering import STATE, SWAPS, missing_tools, run_tempering, swap_probability
from clusterforce.workflows.thermo import KB_EV

pytestmark = pytest.mark.skipif(
    missing_tools(False) is not None, reason=f"parallel tempering tests need MPI and LAMMPS: {missing_tools(False)}"
)

TEMPS = [18.0, 23.0, 29.0, 36.0]
# Argon: epsilon 10.4 meV, sigma 3.4 Angstrom (metal units).
LJ = ["pair_style lj/cut 10.0", "pair_coeff * * 0.0104 3.4"]


def settings(steps: int) -> ReplicaSettings:
    return ReplicaSettings(
        steps=steps, timestep=5.0, sample_every=10, checkpoint_every=200, thermostat="langevin", damping=500.0, seed=3
    )  # fmt: skip


def ar13():
    return Icosahedron("Ar", 2, latticeconstant=5.3)


def energies(outdir: Path, t: float) -> np.ndarray:
    return np.loadtxt(replica_dir(outdir, t) / "energies.dat", ndmin=2)


def swaps(outdir: Path) -> np.ndarray:
    return np.loadtxt(outdir / SWAPS, ndmin=2)


@pytest.fixture(scope="module")
def tempered(tmp_path_factory):
    """A finished 4-partition run: 4000 steps, an exchange attempt every 10 steps."""
    out = tmp_path_factory.mktemp("pt")
    status = run_tempering(None, ar13(), TEMPS, settings(4000), out, exchange_every=10, pair=LJ, progress=False)
    assert status == {t: "done" for t in TEMPS}
    return out


def test_swaps_obey_the_metropolis_rule(tempered):
    log = swaps(tempered)
    rows = {t: {int(s): e for s, e, _ in energies(tempered, t)} for t in TEMPS}
    betas = 1.0 / (KB_EV * np.array(TEMPS))
    expected = []
    for step, i, j, _, _, _, _, e_i, e_j, p_logged, _ in log:
        i, j, step = int(i), int(j), int(step)
        assert j == i + 1
        # The energies of the attempt are the rows each temperature's file holds at that step.
        assert rows[TEMPS[i]][step] == pytest.approx(e_i, abs=1e-9) and rows[TEMPS[j]][step] == pytest.approx(e_j, abs=1e-9)
        expected.append(min(1.0, np.exp((betas[i] - betas[j]) * (rows[TEMPS[i]][step] - rows[TEMPS[j]][step]))))
        assert p_logged == pytest.approx(expected[-1], abs=1e-7)
    expected, accepted = np.array(expected), log[:, -1]
    assert len(log) == 600  # 400 attempts steps, alternating 2 even pairs and 1 odd pair
    assert 0.05 < expected.mean() < 0.95  # the ladder gives both accepted and rejected swaps
    # Accepted swaps are a sum of Bernoulli(p) draws: their number is within 4 standard deviations of sum(p),
    # overall and in each third of the probability range.
    for lo, hi in ((0, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 1.0 + 1e-12)):
        sel = (expected >= lo) & (expected < hi)
        mean, sd = expected[sel].sum(), np.sqrt((expected[sel] * (1 - expected[sel])).sum())
        assert abs(accepted[sel].sum() - mean) <= 4 * sd + 1, (lo, hi, accepted[sel].sum(), mean, sd)
    assert swap_probability(1.0, 2.0, 1.0, 0.0) == pytest.approx(np.exp(-1.0)) and swap_probability(2.0, 1.0, 1.0, 0.0) == 1.0


def test_each_temperature_is_sampled_at_its_temperature(tempered):
    for t in TEMPS:
        kinetic = energies(tempered, t)[50:, 2]
        assert abs(kinetic.mean() - t) < 0.15 * t  # 13 atoms: the kinetic temperature fluctuates by ~25 %
    means = [energies(tempered, t)[50:, 1].mean() for t in TEMPS]
    assert np.all(np.diff(means) > 0)


def test_interrupted_run_continues_where_it_stopped(tmp_path):
    out = tmp_path / "pt"
    script = (
        "import sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from ase.cluster import Icosahedron\n"
        "from clusterforce.workflows.replicas import ReplicaSettings\n"
        "from clusterforce.workflows.tempering import run_tempering\n"
        f"run_tempering(None, Icosahedron('Ar', 2, latticeconstant=5.3), {TEMPS!r}, ReplicaSettings(**{settings(10**6).__dict__!r}),"
        f" {str(out)!r}, exchange_every=10, pair={LJ!r}, progress=False)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / STATE).exists() and json.loads((out / STATE).read_text())["step"] >= 800):
            assert job.poll() is None and time.monotonic() < deadline, "the run ended or stalled before its fourth checkpoint"
            time.sleep(0.05)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    killed = json.loads((out / STATE).read_text())
    assert 800 <= killed["step"] < 3000 and sum(killed["accepted"]) > 0
    status = run_tempering(None, ar13(), TEMPS, settings(3000), out, exchange_every=10, pair=LJ, progress=False)
    assert status == {t: "done" for t in TEMPS}
    for t in TEMPS:  # every sample once, none lost
        assert np.array_equal(energies(out, t)[:, 0], np.arange(10, 3001, 10))
    log = swaps(out)
    assert np.array_equal(np.unique(log[:, 0]), np.arange(10, 3001, 10)) and len(log) == 450  # no attempt twice or lost
    # Replaying the accepted swaps from the start reproduces every logged holder, across the interruption.
    holder = list(range(len(TEMPS)))
    for _, i, j, _, _, a, b, *_, ok in log:
        i, j = int(i), int(j)
        assert (holder[i], holder[j]) == (int(a), int(b))
        if ok:
            holder[i], holder[j] = holder[j], holder[i]
    assert holder == json.loads((out / STATE).read_text())["holder"]
    assert json.loads((replica_dir(out, TEMPS[0]) / "status.json").read_text())["steps"] == 3000


def test_heat_capacity_reads_the_tempering_output(tempered, tmp_path):
    assert main(["heat-capacity", str(tempered), "--skip", "20", "--bootstrap", "5", "--json", str(tmp_path / "cv.json"),
                 "--plot", str(tmp_path / "cv.png")]) == 0  # fmt: skip
    result = json.loads((tmp_path / "cv.json").read_text())
    assert result["temperatures_K"] == TEMPS and result["samples_per_replica"] == [380] * 4
    assert result["md_steps_per_replica"] == [4000] * 4 and min(result["cpu_seconds_per_replica"]) > 0
    assert min(result["cv_over_c0"]) > 0.5 and (tmp_path / "cv.png").stat().st_size > 0


def test_missing_mpirun_is_one_clear_error(tmp_path, monkeypatch, capsys):
    import clusterforce.workflows.tempering as tempering

    monkeypatch.setattr(tempering, "find_mpirun", lambda: None)
    write(tmp_path / "start.xyz", ar13())
    model = tmp_path / "none.cfm"
    code = main(["md", str(model), str(tmp_path / "start.xyz"), "--temperatures", "20", "30", "--exchange", "100", "-o", str(tmp_path)])
    assert code == 4
    assert "parallel tempering needs mpirun (pip install mpich" in capsys.readouterr().err
