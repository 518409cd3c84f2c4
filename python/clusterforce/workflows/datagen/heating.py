"""Heating molecular dynamics that records log-spaced, reference-labelled frames.

Each structure is heated with Langevin dynamics through a ramp of target temperatures
(``steps_per_temperature`` steps each); the steps chosen by
:func:`~clusterforce.workflows.datagen.sampling.record_steps` are appended to one extxyz file with
energy (eV), forces (eV/Angstrom) and provenance in ``info``.

Determinism and resuming: every random number comes from a stream derived from
``(seed, structure index, restart count)``, every evaluation uses a fresh calculator, and after
each recorded frame the checkpoint stores the exact MD state (positions, momenta, the forces
the integrator carries, the generator state, the counters). ``resume=True`` continues from it
and produces the same file, byte for byte, as a run that was never interrupted.

SCF recovery (GFN1-xTB): the calculator retries with a patient SCF (10x looser thresholds,
more damping), then finishes the step at a higher electronic temperature without recording
it; if even that fails the run goes back to the last recorded frame (or the start) with
Maxwell-Boltzmann velocities from a new stream and continues; it gives up when
``max_restarts`` restarts in a row fail to reach a new frame. SCF failures come in stretches
of tens of steps (Na clusters at 2000 K), so after a step needed a higher rung, the following
steps that are not due for recording start at that rung; every step due for recording starts
again from the normal settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from tqdm.auto import tqdm

from clusterforce.references.methods import Reference
from clusterforce.references.scf import LadderCalculator, ScfCounts, ScfFailure
from clusterforce.workflows.datagen.builders import Structure
from clusterforce.workflows.datagen.sampling import record_steps
from clusterforce.workflows.datagen.store import FrameStore

logger = logging.getLogger(__name__)

# Keys of rng_stream: builders and MD draw from disjoint streams of one seed.
BUILD_STREAM = 0
MD_STREAM = 1


def rng_stream(seed: int, *keys: int) -> np.random.Generator:
    """Independent random generator for ``seed`` and a tuple of non-negative integer keys."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=keys)))


@dataclass(frozen=True)
class HeatingSchedule:
    """Heating ramp, integrator and sampling settings shared by all structures of a run.

    Attributes
    ----------
    temperatures : tuple of float
        Target temperatures (K) of the consecutive segments.
    steps_per_temperature : int
        MD steps per segment.
    timestep : float
        Time step in fs.
    friction : float
        Langevin friction in 1/fs.
    frames : int
        Frames recorded per structure.
    density_ratio : float
        Sampling density at the end of the run over that at its start (see
        :func:`~clusterforce.workflows.datagen.sampling.record_steps`).
    max_restarts : int
        Restarts allowed from one recorded frame (without recording a new one in between)
        before giving up on the structure.
    seed : int
        Seed of every random stream.
    """

    temperatures: tuple[float, ...] = (300.0, 500.0, 700.0, 900.0)
    steps_per_temperature: int = 200
    timestep: float = 1.0
    friction: float = 0.01
    frames: int = 150
    density_ratio: float = 10.0
    max_restarts: int = 10
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return len(self.temperatures) * self.steps_per_temperature

    def temperature_at(self, step: int) -> float:
        """Target temperature (K) of MD step ``step`` (1-based; step 0 uses the first one)."""
        segment = max(step - 1, 0) // self.steps_per_temperature
        return float(self.temperatures[min(segment, len(self.temperatures) - 1)])

    def validate(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"--temperatures must be one or more positive values (K), got {list(self.temperatures)}")
        if self.steps_per_temperature < 1:
            raise ValueError(f"--steps-per-temperature must be >= 1, got {self.steps_per_temperature}")
        if self.timestep <= 0:
            raise ValueError(f"--timestep must be positive (fs), got {self.timestep}")
        if self.friction <= 0:
            raise ValueError(f"--friction must be positive (1/fs), got {self.friction}")
        if self.max_restarts < 0:
            raise ValueError(f"--max-restarts must be >= 0, got {self.max_restarts}")
        if self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed}")
        record_steps(self.total_steps, self.frames, self.density_ratio)


@dataclass(frozen=True)
class Job:
    """A starting structure and the reference that labels its frames."""

    structure: Structure
    reference: Reference


@dataclass
class StructureSummary:
    """What the run did for one structure.

    Attributes
    ----------
    system : str
        Structure name.
    frames : int
        Frames written.
    md_steps : int
        MD steps integrated up to the last recorded frame, counting steps repeated after
        restarts (steps lost to an interruption are not counted).
    seconds : float
        Wall time spent on this structure, summed over resumed sessions.
    cpu_seconds : float
        CPU time of this process (all threads) spent on it, summed likewise.
    counts : dict
        Final :class:`~clusterforce.references.scf.ScfCounts` as a dict.
    """

    system: str
    frames: int = 0
    md_steps: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Wall time per MD step (s)."""
        return self.seconds / self.md_steps if self.md_steps else float("nan")

    @property
    def cpu_seconds_per_step(self) -> float:
        """CPU time per MD step (s); on a shared machine a better cost measure than wall time."""
        return self.cpu_seconds / self.md_steps if self.md_steps else float("nan")

    def add_time(self, wall: float, cpu: float) -> None:
        self.seconds += wall
        self.cpu_seconds += cpu


@dataclass
class _MDState:
    """Exact integrator state at a recorded frame (or at the start of a structure)."""

    step: int
    positions: np.ndarray
    momenta: np.ndarray
    forces: np.ndarray | None  # what Langevin.step carries to the next step (None: evaluate)
    rng: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "positions": self.positions.tolist(),
            "momenta": self.momenta.tolist(),
            "forces": None if self.forces is None else self.forces.tolist(),
            "rng": self.rng,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _MDState:
        forces = data["forces"]
        return cls(
            data["step"],
            np.array(data["positions"], dtype=float),
            np.array(data["momenta"], dtype=float),
            None if forces is None else np.array(forces, dtype=float),
            data["rng"],
        )


def run_config(jobs: Sequence[Job], schedule: HeatingSchedule) -> dict[str, Any]:
    """JSON description of a run: what a checkpoint must match to be resumed."""
    return {
        "schedule": asdict(schedule),
        "structures": [
            {
                "system": job.structure.name,
                "source": job.structure.source,
                "numbers": job.structure.atoms.numbers.tolist(),
                "positions": job.structure.atoms.positions.tolist(),
                "reference": job.reference.describe(),
            }
            for job in jobs
        ],
    }


def generate(
    jobs: Sequence[Job],
    schedule: HeatingSchedule,
    output: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[StructureSummary]:
    """Heat every structure of ``jobs`` in turn and append the recorded frames to ``output``.

    Parameters
    ----------
    jobs : sequence of Job
        Structures with their references, run in order.
    schedule : HeatingSchedule
        Ramp, integrator and sampling settings.
    output : str or Path
        extxyz file; its checkpoint is ``<output>.ckpt.json`` and stays after the run
        (marked complete) so that a repeated ``resume=True`` is a no-op.
    resume : bool
        Continue from the checkpoint if there is one (start fresh if neither output nor
        checkpoint exists).
    overwrite : bool
        Start over even if the output exists.
    progress : bool
        Show a tqdm bar of MD steps per structure.

    Returns
    -------
    list of StructureSummary
        One per structure, in order.

    Raises
    ------
    ScfFailure
        If a structure still fails after ``schedule.max_restarts`` restarts; the output and
        checkpoint stay valid up to the last recorded frame.
    """
    schedule.validate()
    if not jobs:
        raise ValueError("no structures to run")
    plan = set(record_steps(schedule.total_steps, schedule.frames, schedule.density_ratio).tolist())
    store = FrameStore(Path(output), run_config(jobs, schedule))
    saved = store.open(resume=resume, overwrite=overwrite)
    if saved is None:
        # A checkpoint from the start, so that a kill while the first frame is written resumes too.
        store.save({"structure": 0, "complete": False, "finished": [], "md": None, "counts": None, "current": None})
    summaries = [StructureSummary(**s) for s in saved["finished"]] if saved else []
    if saved and saved["complete"]:
        logger.info("%s is complete (%d frames); nothing to resume", store.output, store.frames)
        return summaries
    for index in range(len(summaries), len(jobs)):
        resume_state = saved if saved and saved["structure"] == index else None
        summaries.append(_heat(jobs[index], index, schedule, plan, store, summaries, resume_state, progress))
    return summaries


def _heat(
    job: Job,
    index: int,
    schedule: HeatingSchedule,
    plan: set[int],
    store: FrameStore,
    finished: list[StructureSummary],
    saved: dict[str, Any] | None,
    progress: bool,
) -> StructureSummary:
    name = job.structure.name
    total = schedule.total_steps
    if saved and saved["md"] is not None:
        anchor = _MDState.from_json(saved["md"])
        counts = ScfCounts(**saved["counts"])
        summary = StructureSummary(**saved["current"])
        logger.info("%s: resuming after step %d with %d frames", name, anchor.step, summary.frames)
    else:
        counts = ScfCounts()
        summary = StructureSummary(name)
        anchor = _fresh_start(job.structure.atoms.positions, job.structure.atoms, 0, None, schedule, index, 0)

    atoms = Atoms(job.structure.atoms.numbers, positions=anchor.positions)
    calc = LadderCalculator(job.reference, counts, name)
    atoms.calc = calc
    rng = np.random.Generator(np.random.PCG64())  # its state comes from the anchor, see _load
    dyn = Langevin(
        atoms,
        schedule.timestep * units.fs,
        temperature_K=schedule.temperature_at(anchor.step + 1),
        friction=schedule.friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    forces = _load(atoms, rng, anchor)
    step = anchor.step
    stuck = 0  # restarts since the last recorded frame; a checkpoint is always taken at zero
    sticky = 0  # rung of the last step; zero at every checkpoint and restart
    started = (time.perf_counter(), time.process_time())
    bar = tqdm(total=total, initial=step, desc=name, unit="step", disable=not progress, leave=False)
    try:
        while step < total:
            dyn.set_temperature(temperature_K=schedule.temperature_at(step + 1))
            calc.first_rung = 0 if step + 1 in plan else sticky
            try:
                forces = dyn.step(forces)
            except ScfFailure as exc:
                counts.restarts += 1
                stuck += 1
                if stuck > schedule.max_restarts:
                    raise ScfFailure(
                        f"{name}: SCF failed at every rung in {stuck} runs from step {anchor.step} (last failure "
                        f"at MD step {step + 1}, target {schedule.temperature_at(step + 1):g} K); {store.output} "
                        "holds the frames up to there. Raise --fallback-electronic-temperature or "
                        "--max-restarts, or leave this structure out"
                    ) from exc
                logger.warning("%s: restart %d from step %d with fresh velocities (%s)", name, counts.restarts, anchor.step, exc)
                anchor = _fresh_start(anchor.positions, atoms, anchor.step, anchor.forces, schedule, index, counts.restarts)
                forces = _load(atoms, rng, anchor)
                step = anchor.step
                sticky = 0
                bar.n = step
                bar.refresh()
                continue
            step += 1
            sticky = calc.rung_index
            summary.md_steps += 1
            bar.update(1)
            if step not in plan:
                continue
            if calc.rung is None or not calc.rung.recordable:
                counts.skipped_frames += 1
                logger.warning("%s: frame at step %d not recorded (step finished at hot electrons)", name, step)
                continue
            store.append(_frame(atoms, calc, job, schedule, step, counts))
            summary.frames += 1
            stuck = sticky = 0
            anchor = _MDState(step, atoms.positions.copy(), atoms.get_momenta(), forces.copy(), rng.bit_generator.state)
            summary.add_time(time.perf_counter() - started[0], time.process_time() - started[1])
            started = (time.perf_counter(), time.process_time())
            summary.counts = counts.as_dict()
            _checkpoint(store, index, anchor, counts, summary, finished, schedule, total)
    finally:
        bar.close()
    summary.add_time(time.perf_counter() - started[0], time.process_time() - started[1])
    summary.counts = counts.as_dict()
    logger.info(
        "%s: %d frames, %d MD steps (%.3f s/step wall, %.3f s/step CPU), SCF retries %d, hot steps %d, "
        "restarts %d, skipped frames %d",
        name, summary.frames, summary.md_steps, summary.seconds_per_step, summary.cpu_seconds_per_step,
        counts.scf_retries, counts.hot_steps, counts.restarts, counts.skipped_frames,
    )  # fmt: skip
    return summary


def _checkpoint(
    store: FrameStore,
    index: int,
    anchor: _MDState,
    counts: ScfCounts,
    summary: StructureSummary,
    finished: list[StructureSummary],
    schedule: HeatingSchedule,
    total: int,
) -> None:
    done = anchor.step == total
    finished_now = [asdict(s) for s in finished] + ([asdict(summary)] if done else [])
    store.save(
        {
            "structure": index + 1 if done else index,
            "complete": done and index + 1 == len(store.config["structures"]),
            "finished": finished_now,
            "md": None if done else anchor.to_json(),
            "counts": counts.as_dict(),
            "current": None if done else asdict(summary),
        }
    )


def _fresh_start(
    positions: np.ndarray,
    template: Atoms,
    step: int,
    forces: np.ndarray | None,
    schedule: HeatingSchedule,
    index: int,
    restarts: int,
) -> _MDState:
    """State at ``positions`` with Maxwell-Boltzmann velocities from stream (seed, index, restarts)."""
    rng = rng_stream(schedule.seed, MD_STREAM, index, restarts)
    atoms = Atoms(template.numbers, positions=positions)
    # Maxwell-Boltzmann momenta, the same arithmetic as ase.md.velocitydistribution (whose
    # function name changed in ASE 3.29).
    kt = units.kB * schedule.temperature_at(step + 1)
    atoms.set_momenta(rng.standard_normal((len(atoms), 3)) * np.sqrt(atoms.get_masses() * kt)[:, np.newaxis])
    Stationary(atoms)
    ZeroRotation(atoms)
    return _MDState(step, positions.copy(), atoms.get_momenta(), forces, rng.bit_generator.state)


def _load(atoms: Atoms, rng: np.random.Generator, state: _MDState) -> np.ndarray | None:
    """Put ``state`` into ``atoms`` and ``rng``; return the forces to hand to the next step."""
    atoms.set_constraint()
    atoms.positions = state.positions
    atoms.set_momenta(state.momenta)
    atoms.set_constraint(FixCom())
    rng.bit_generator.state = state.rng
    return None if state.forces is None else state.forces.copy()


def _frame(atoms: Atoms, calc: LadderCalculator, job: Job, schedule: HeatingSchedule, step: int, counts: ScfCounts) -> Atoms:
    frame = Atoms(atoms.numbers, positions=atoms.positions.copy(), momenta=atoms.get_momenta())
    frame.calc = SinglePointCalculator(frame, energy=calc.results["energy"], forces=calc.results["forces"].copy())
    frame.info.update(job.reference.frame_info())
    frame.info.update(
        system=job.structure.name,
        source=job.structure.source,
        step=step,
        time_fs=step * schedule.timestep,
        temperature_K=schedule.temperature_at(step),
        temperature_instantaneous_K=float(atoms.get_temperature()),
        seed=schedule.seed,
        scf_retries=counts.scf_retries,
        scf_hot_steps=counts.hot_steps,
        md_restarts=counts.restarts,
        scf_rung=calc.rung.name,
    )
    return frame
