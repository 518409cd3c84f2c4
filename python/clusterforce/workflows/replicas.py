"""Replica MD of a free cluster: the same model at a ladder of temperatures, for heat capacities.

Each replica runs canonical MD (Nose-Hoover chains by default, or Langevin) in LAMMPS through
the clusterforce plugin (default) or in ASE, with the centre-of-mass momentum and the angular
momentum removed (a free cluster must not drift or spin: the temperature then counts 3N - 6
degrees of freedom), and records the potential energy (eV) and temperature (K) every
``sample_every`` steps to ``T<temperature>/energies.dat`` under the output directory.

Long runs survive interruption: every ``checkpoint_every`` steps a replica writes its positions,
velocities and step to ``checkpoint.extxyz`` and flushes its energies; a rerun continues each
unfinished replica from its checkpoint (energies after the checkpoint are dropped, so nothing is
counted twice). The thermostat's own state restarts from zero at a checkpoint, which perturbs
the first few damping times. A replica in which an atom gets farther than
``evaporation_distance`` (Angstrom) from every other atom stops with a message naming the atom:
an evaporated atom makes the potential-energy histogram meaningless. A NaN or infinite position,
force or energy stops a replica too (status ``non-finite``, the message names the step: ASE
checks every step, LAMMPS every ``sample_every`` steps from its thermo output and positions).
With the ASE engine, the first step at which the model flags an atom in
``results["extrapolating"]`` is logged once per replica and recorded in its ``status.json``
(``first_extrapolating_step``); the LAMMPS pair style does not export the flag.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.io import read, write

from clusterforce.workflows.optimize import NonFiniteError, attach_finite_check, describe_atoms, extrapolating_atoms
from clusterforce.workflows.thermo import Lindemann

log = logging.getLogger(__name__)

THERMOSTATS = ("nose-hoover", "langevin")
#: Statuses of a replica that stopped early; rerunning does not continue it (it would stop again).
STOPPED = ("evaporated", "non-finite")
ENGINES = ("lammps", "ase")


class EvaporationError(RuntimeError):
    """An atom left the cluster during a replica."""


@dataclass
class ReplicaSettings:
    """How each replica runs.

    Attributes
    ----------
    steps
        MD steps per replica (after equilibration; all are recorded).
    timestep
        fs (the gap-sodium paper: 2 fs for Na).
    sample_every
        Steps between recorded potential energies.
    thermostat
        ``"nose-hoover"`` (chains of 3; canonical sampling) or ``"langevin"``.
    damping
        Thermostat time constant, fs (Nose-Hoover period; inverse Langevin friction).
    evaporation_distance
        Angstrom; an atom with no neighbour within it stops the replica.
    checkpoint_every
        Steps between checkpoints.
    engine
        ``"lammps"`` (pair_style clusterforce) or ``"ase"`` (clusterforce.Calculator).
    seed
        Seed of the initial velocities (each replica adds its index).
    """

    steps: int = 100000
    timestep: float = 2.0
    sample_every: int = 10
    thermostat: str = "nose-hoover"
    damping: float = 200.0
    evaporation_distance: float = 6.0
    checkpoint_every: int = 5000
    engine: str = "lammps"
    seed: int = 1

    def validate(self) -> None:
        if self.thermostat not in THERMOSTATS:
            raise ValueError(f"thermostat must be one of {THERMOSTATS}, got {self.thermostat!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("steps", "sample_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive number of steps, got {getattr(self, name)}")
        if self.checkpoint_every % self.sample_every:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of sample_every ({self.sample_every})")
        for name in ("timestep", "damping", "evaporation_distance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def replica_dir(outdir: Path, temperature: float) -> Path:
    return Path(outdir) / f"T{temperature:08.2f}"


def isolated_atom(positions: np.ndarray, distance: float) -> int | None:
    """Index of an atom with no other atom within ``distance`` (Angstrom), or None."""
    d = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    lonely = np.flatnonzero(d.min(axis=1) > distance)
    return int(lonely[0]) if lonely.size else None


class _Recorder:
    """energies.dat, the Lindemann sums (lindemann.npz) and checkpoint.extxyz of one replica, resumable."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.energies = self.dir / "energies.dat"
        self.checkpoint = self.dir / "checkpoint.extxyz"
        self.status = self.dir / "status.json"
        self.lindemann_path = self.dir / "lindemann.npz"
        self.rows: list[tuple[int, float, float]] = []
        self.lindemann: Lindemann | None = None
        self.first_extrapolating_step: int | None = None

    def resume(self) -> tuple[Atoms | None, int]:
        """Checkpointed structure (with velocities) and its step; energies beyond it dropped."""
        if not self.checkpoint.exists():
            self.energies.write_text("# step  potential_energy_eV  temperature_K\n")
            return None, 0
        atoms = read(self.checkpoint)
        step = int(atoms.info["step"])
        if self.lindemann_path.exists():  # the sums as they were at the checkpoint
            with np.load(self.lindemann_path) as state:
                self.lindemann = Lindemann.from_state(len(atoms), state)
        kept = [line for line in self.energies.read_text().splitlines() if line.startswith("#") or int(line.split()[0]) <= step]
        self.energies.write_text("\n".join(kept) + "\n")
        return atoms, step

    def add(self, step: int, energy: float, temperature: float, positions: np.ndarray) -> None:
        """One sample: energy (eV), temperature (K) and positions (Angstrom, atoms in a fixed order)."""
        self.rows.append((step, energy, temperature))
        if self.lindemann is None:
            self.lindemann = Lindemann(len(positions))
        self.lindemann.add(positions)

    def save(self, atoms: Atoms, step: int) -> None:
        with self.energies.open("a") as fh:
            fh.writelines(f"{s:d} {e:.10f} {t:.4f}\n" for s, e, t in self.rows)
        self.rows.clear()
        snapshot = atoms.copy()
        snapshot.info["step"] = step
        if self.lindemann is not None:
            tmp = self.lindemann_path.with_suffix(".tmp.npz")
            np.savez(tmp, **self.lindemann.state())
            tmp.replace(self.lindemann_path)
        tmp = self.checkpoint.with_suffix(".tmp.extxyz")
        write(tmp, snapshot, format="extxyz")
        tmp.replace(self.checkpoint)

    def finish(self, status: str, message: str = "", *, cpu_seconds: float = 0.0) -> None:
        """Write the replica's status with the MD steps it has and the CPU seconds they took."""
        record = {"status": status, "message": message, "steps": self.recorded_step(), "cpu_seconds": cpu_seconds}
        if self.first_extrapolating_step is not None:
            record["first_extrapolating_step"] = self.first_extrapolating_step
        self.status.write_text(json.dumps(record) + "\n")

    def recorded_step(self) -> int:
        """Step of the checkpoint (0 before the first)."""
        return int(read(self.checkpoint).info["step"]) if self.checkpoint.exists() else 0

    def done(self) -> bool:
        return self.status.exists() and json.loads(self.status.read_text())["status"] in ("done", *STOPPED)


def load_energies(outdir: str | Path, temperatures: Sequence[float], *, skip: int = 0) -> list[np.ndarray]:
    """Potential energies (eV) recorded by each replica, the first ``skip`` samples dropped (equilibration)."""
    out = []
    for t in temperatures:
        path = replica_dir(Path(outdir), t) / "energies.dat"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no energies for the {t:g} K replica; run it first")
        data = np.loadtxt(path, ndmin=2)
        out.append(data[skip:, 1])
    return out


def run_replica(model: str, start: Atoms, temperature: float, settings: ReplicaSettings, outdir: str | Path, index: int = 0) -> str:
    """Run (or continue) one replica; returns ``"done"``, ``"evaporated"`` or ``"non-finite"``."""
    settings.validate()
    recorder = _Recorder(replica_dir(Path(outdir), temperature))
    cpu_before = 0.0  # CPU seconds of earlier runs that finished this replica (a killed run's share is not known)
    if recorder.done():
        previous = json.loads(recorder.status.read_text())
        # A finished replica continues when asked for more steps (an evaporated one does not).
        if previous["status"] in STOPPED or recorder.recorded_step() >= settings.steps:
            return previous["status"]
        cpu_before = float(previous.get("cpu_seconds", 0.0))
        recorder.status.unlink()
    restart, step = recorder.resume()
    cpu = time.process_time()
    runner = _run_lammps if settings.engine == "lammps" else _run_ase
    try:
        runner(
            model,
            restart if restart is not None else start,
            restart is not None,
            temperature,
            settings,
            recorder,
            step,
            settings.seed + index,
        )
    except (EvaporationError, NonFiniteError) as exc:
        status = "evaporated" if isinstance(exc, EvaporationError) else "non-finite"
        log.warning("%g K replica stopped: %s", temperature, exc)
        recorder.finish(status, str(exc), cpu_seconds=cpu_before + time.process_time() - cpu)
        return status
    recorder.finish("done", cpu_seconds=cpu_before + time.process_time() - cpu)
    return "done"


def check_temperatures(temperatures: Sequence[float]) -> None:
    """A replica ladder needs at least one temperature, all positive (K)."""
    if not len(temperatures) or not min(temperatures) > 0:
        raise ValueError(f"temperatures must be positive (K), got {list(temperatures)}")


def run_replicas(
    model: str, start: Atoms, temperatures: Sequence[float], settings: ReplicaSettings, outdir: str | Path, *, progress: bool = True
) -> dict[float, str]:
    """Run every replica in turn (resuming unfinished ones); returns each temperature's status."""
    from tqdm.auto import tqdm

    settings.validate()
    check_temperatures(temperatures)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "settings.json").write_text(
        json.dumps({"model": str(model), "temperatures": list(map(float, temperatures)), **asdict(settings)}, indent=1) + "\n"
    )
    status = {}
    for i, t in enumerate(tqdm(list(temperatures), desc="replicas", disable=not progress)):
        status[float(t)] = run_replica(model, start, float(t), settings, outdir, i)
    return status


def _check(atoms_positions: np.ndarray, settings: ReplicaSettings, step: int, temperature: float) -> None:
    lonely = isolated_atom(atoms_positions, settings.evaporation_distance)
    if lonely is not None:
        raise EvaporationError(
            f"atom {lonely} has no neighbour within {settings.evaporation_distance} A at step {step} of the {temperature:g} K replica "
            "(evaporated); lower the temperature or raise --evaporation-distance"
        )


def lammps_cluster_commands(atoms: Atoms, pair: Sequence[str], timestep: float) -> list[str]:
    """LAMMPS commands that set up a free cluster (non-periodic box) with the ``pair`` commands; timestep in fs."""
    symbols = sorted(set(atoms.get_chemical_symbols()))
    centre = atoms.positions.mean(axis=0)
    lines = ["units metal", "atom_style atomic", "boundary f f f", "atom_modify map array",
             "region box block -60 60 -60 60 -60 60", f"create_box {len(symbols)} box"]  # fmt: skip
    for sym, x in zip(atoms.get_chemical_symbols(), atoms.positions - centre):
        lines.append(f"create_atoms {symbols.index(sym) + 1} single {x[0]:.12f} {x[1]:.12f} {x[2]:.12f} units box")
    masses = {s: m for s, m in zip(atoms.get_chemical_symbols(), atoms.get_masses())}
    lines += [f"mass {i + 1} {masses[s]}" for i, s in enumerate(symbols)]
    return lines + list(pair) + [f"timestep {timestep / 1000.0}"]


def clusterforce_pair(model: str, atoms: Atoms) -> list[str]:
    """``pair_style clusterforce MODEL`` and its ``pair_coeff`` for the elements of ``atoms``."""
    return [f"pair_style clusterforce {model}", f"pair_coeff * * {' '.join(sorted(set(atoms.get_chemical_symbols())))}"]


def set_lammps_velocities(lmp, atoms: Atoms) -> None:
    """Give LAMMPS atoms (created in the order of ``atoms``) the velocities of ``atoms`` (ASE units)."""
    # LAMMPS velocities in metal units are Angstrom/ps; ASE's are Angstrom/(ASE time unit).
    v = atoms.get_velocities() * units.fs * 1000.0
    ids = np.array(lmp.numpy.extract_atom("id"))[: len(atoms)]
    lmp.numpy.extract_atom("v")[: len(atoms)] = v[ids - 1]


def thermostat_commands(settings: ReplicaSettings, temperature: float, seed: int) -> list[str]:
    """The thermostat fixes (ID ``md``, and ``bath`` for Langevin) at ``temperature`` (K).

    Issuing them again with another temperature replaces the fixes (their internal state restarts).
    """
    damp = settings.damping / 1000.0
    if settings.thermostat == "nose-hoover":
        return [f"fix md all nvt temp {temperature} {temperature} {damp} tchain 3", "compute_modify md_temp extra/dof 6"]
    return ["fix md all nve", f"fix bath all langevin {temperature} {temperature} {damp} {seed} zero yes"]


def sorted_state(lmp, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (Angstrom) and velocities (Angstrom/ps) of the ``n`` LAMMPS atoms in ID order."""
    # LAMMPS reorders its atoms: sort by ID so every sample lists them the same way.
    order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
    return np.array(lmp.numpy.extract_atom("x"))[:n][order], np.array(lmp.numpy.extract_atom("v"))[:n][order]


def _run_lammps(model, atoms, restarted, temperature, settings, recorder, step, seed) -> None:
    import lammps
    from mpi4py import MPI  # noqa: F401  (LAMMPS needs MPI initialised first)

    lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
    try:
        lmp.commands_list(lammps_cluster_commands(atoms, clusterforce_pair(model, atoms), settings.timestep))
        if restarted:
            set_lammps_velocities(lmp, atoms)
        else:
            lmp.command(f"velocity all create {temperature} {seed} mom yes rot yes dist gaussian")
        lmp.commands_list(thermostat_commands(settings, temperature, seed))
        # No drift and no spin for a free cluster; the temperature counts 3N - 6 degrees of freedom.
        lmp.command("fix still all momentum 100 linear 1 1 1 angular")
        lmp.command("compute_modify thermo_temp extra/dof 6")
        lmp.command("thermo_style custom step pe temp")
        lmp.command("run 0 post no")
        n = len(atoms)
        while step < settings.steps:
            lmp.command(f"run {settings.sample_every} pre no post no")
            step += settings.sample_every
            x, v = sorted_state(lmp, n)
            pe, temp = lmp.get_thermo("pe"), lmp.get_thermo("temp")
            if not (np.isfinite(pe) and np.isfinite(temp) and np.isfinite(x).all()):
                bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
                raise NonFiniteError(
                    f"LAMMPS MD step {step} of the {temperature:g} K replica: potential energy {pe}, temperature {temp}"
                    + (f", positions of atoms {describe_atoms(atoms, bad)}" if bad.size else "")
                    + " (NaN or inf)"
                )
            recorder.add(step, pe, temp, x)
            if step % settings.checkpoint_every == 0 or step >= settings.steps:
                _check(x, settings, step, temperature)
                snapshot = atoms.copy()
                snapshot.positions = x
                snapshot.set_velocities(v / (units.fs * 1000.0))
                recorder.save(snapshot, step)
    finally:
        lmp.close()


def _run_ase(model, atoms, restarted, temperature, settings, recorder, step, seed) -> None:
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    from clusterforce.core.calculator import Calculator

    atoms = atoms.copy()
    atoms.calc = Calculator(model)
    if not restarted:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
        Stationary(atoms)
        ZeroRotation(atoms)
    dt = settings.timestep * units.fs
    if settings.thermostat == "nose-hoover":
        dyn = NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=settings.damping * units.fs, tchain=3)
    else:
        dyn = Langevin(atoms, dt, temperature_K=temperature, friction=1.0 / (settings.damping * units.fs), rng=np.random.default_rng(seed))
    dof = 3 * len(atoms) - 6
    attach_finite_check(dyn, atoms, f"the {temperature:g} K replica's", first_step=step)
    first = step

    def note_extrapolating() -> None:
        flagged = extrapolating_atoms(atoms.calc)
        if flagged.size and recorder.first_extrapolating_step is None:
            recorder.first_extrapolating_step = first + dyn.nsteps
            log.warning(
                "%g K replica, MD step %d: the model flags atoms %s as extrapolating (no training data for their surroundings); "
                "energies from here on are the model's guess",
                temperature,
                recorder.first_extrapolating_step,
                describe_atoms(atoms, flagged),
            )

    dyn.attach(note_extrapolating, interval=1)
    while step < settings.steps:
        dyn.run(settings.sample_every)
        Stationary(atoms)
        ZeroRotation(atoms)
        step += settings.sample_every
        recorder.add(step, atoms.get_potential_energy(), 2 * atoms.get_kinetic_energy() / (dof * units.kB), atoms.positions)
        if step % settings.checkpoint_every == 0 or step >= settings.steps:
            _check(atoms.positions, settings, step, temperature)
            recorder.save(atoms, step)
