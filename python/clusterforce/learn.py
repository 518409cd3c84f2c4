"""On-the-fly learning: explore with the model, ask the reference where the model is unsure, refit.

The loop (``clusterforce learn``) starts from a model trained on ``init`` frames and explores with
it: Langevin MD at each temperature of a ladder from each start structure, after each MD
stretch a quench (local relaxation with the model), and after the ladder basin hopping with the
model (when it has energies), so low-energy basins are visited, not only hot MD. Whenever the
largest per-atom uncertainty of a structure passes the threshold, the reference labels it (SCF
failures are skipped with a log line), the frame joins the data with the reason it was added, and
the model is updated:

- ``gap``: :meth:`GAPModel.partial_fit` adds the frame's rows to the normal equations and solves
  again; the cost does not grow with the data.
- ``dml``: every ``refit_every`` new frames and at the end :meth:`DMLModel.partial_fit` adds their
  atoms that are unlike any reference as new references and solves the EMLM and OAMLM again; the
  init references stay (a refit on all frames chose them again, and on the rings the labelled
  structures then displaced references of the conformers the model was trained on).

A structure is labelled when its largest per-atom uncertainty passes the threshold — relative by
default: ``relative_threshold`` times the 99th percentile of the uncertainty on the initial training
frames, so it is scaled to the model instead of guessed in absolute units — or, with
``fill_budget``, when it is among the most uncertain structures seen so far at the rate that
spends the remaining calls over the remaining checks of the schedule (and more uncertain than a
typical training structure). A fixed threshold alone is badly scaled one way or the other: on
sodium 1.5x the 99th percentile gave 1 call in 5000 MD steps, and a low one calls the reference at
every check; the budget rule asks about the structures the model knows least, as many as the user
paid for. Before each update the model's force error on the new frame is recorded: the
learning curve. Everything is written as it happens to the work directory — the frames
(``frames.extxyz``, appended), the events (``log.jsonl``) and the position in the schedule
(``state.json``) — so a run killed at any moment resumes where it stopped, with every labelled
frame kept once.

Exploration that leaves physics is not labelled but undone: when a structure has a pair of atoms
closer than any pair in the training data (the model's ``extrapolating`` flag; the repulsive
baseline, not the data, has to hold such atoms apart), or when the reference's largest force
component is above ``max_force_ratio`` times the largest in the init frames, the MD goes back to the
last structure that passed its check, with fresh velocities. Measured on the rings with dml's own
(non-conservative) MD: without this rule 46 of 154 calls labelled broken rings (forces up to
734 eV/A against 6.5 eV/A in the init data) and the learned model's Au force norms went from
0.14 to 2.2 eV/A RMSE on unseen sizes.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

log = logging.getLogger(__name__)


@dataclass
class LearnSettings:
    """Schedule and thresholds of a learning run (temperatures K, time step fs)."""

    temperatures: Sequence[float] = (300.0, 600.0, 900.0)
    steps_per_temperature: int = 200
    timestep: float = 1.0
    check_every: int = 5
    relative_threshold: float = 1.5
    threshold: float | None = None
    max_calls: int = 100
    quench_steps: int = 100
    # Basin hopping with the model after each start's ladder (models with energies): steps, largest
    # displacement per atom (Angstrom) and Metropolis temperature (eV), as search.basin_hopping.
    hops: int = 10
    hop_step: float = 0.4
    hop_kt: float = 0.1
    fill_budget: bool = True
    # dml adds references in batches (its B matrices are solved again each time): update after this many new frames.
    refit_every: int = 10
    seed: int = 0
    # Steps the MD is held back after a call (or a failed one), so one excursion does not cost several calls.
    cooldown: int = 10
    # A reference frame whose largest force component exceeds this multiple of the init frames' largest is
    # a broken structure: skipped (not fitted) and the MD goes back to the last sound structure. None: off.
    max_force_ratio: float | None = 3.0

    def validate(self) -> None:
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"temperatures must be positive (K), got {list(self.temperatures)}")
        for name in ("steps_per_temperature", "check_every", "max_calls", "refit_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if int(self.hops) < 0 or not (self.hop_step > 0 and self.hop_kt > 0):
            raise ValueError(f"hops must be >= 0 and hop_step, hop_kt positive, got {self.hops}, {self.hop_step}, {self.hop_kt}")
        if self.threshold is None and not self.relative_threshold > 0:
            raise ValueError(f"relative_threshold must be positive, got {self.relative_threshold}")
        if self.max_force_ratio is not None and not self.max_force_ratio > 1:
            raise ValueError(f"max_force_ratio must be above 1 (or None to turn the check off), got {self.max_force_ratio}")


def init_temperatures(frames: Sequence[Atoms], fallback: Sequence[float] = LearnSettings.temperatures) -> tuple[float, ...]:
    """The MD temperatures (K) the frames were sampled at (``info["temperature_K"]``, as ``clusterforce
    datagen`` writes), sorted; ``fallback`` when none carries one.

    The default exploration ladder of ``clusterforce learn``: a fixed 300-900 K ladder explores the
    liquid and evaporating clusters of sodium (Na55 melts near 300 K) while its data were made at
    100-500 K, so the loop would label structures nobody runs; the init data's own temperatures suit
    each system.
    """
    found = set()
    for atoms in frames:
        t = atoms.info.get("temperature_K")
        if t is not None and np.isfinite(float(t)) and float(t) > 0:
            found.add(float(t))
    return tuple(sorted(found)) if found else tuple(fallback)


@dataclass
class LearnState:
    """Where the schedule stands (``state.json``): start index, temperature index (the number of
    temperatures once the ladder is done and basin hopping runs), MD step, basin-hopping step."""

    start: int = 0
    temperature: int = 0
    step: int = 0
    hop: int = 0
    md_steps: int = 0
    threshold: float | None = None
    # Budget rule: median largest uncertainty of the init frames, and the largest uncertainty at every check so far.
    floor: float | None = None
    seen: list[float] = field(default_factory=list)
    # Reference frames with a larger force component (eV/Angstrom) are broken structures; None: no cap.
    force_cap: float | None = None
    restarts: int = 0


class Learner:
    """One learning run in ``workdir`` (see the module docstring).

    Parameters
    ----------
    kind
        ``"gap"`` or ``"dml"``.
    fit
        ``fit(frames) -> model`` trains a fresh model of the kind (hyperparameters bound).
    init
        Frames the first model is trained on (with reference energies/forces).
    reference
        ``reference(atoms) -> Calculator`` for a structure (e.g. :func:`clusterforce.calculators.resolve`).
    starts
        Start structures of the exploration.
    explorer
        A fixed model that drives the MD, quenches and basin hops instead of the model being learned
        (which still decides what to label). For a force-only ``dml`` model, whose force field is not
        conservative: its own hot MD breaks rings and the loop then labels broken structures
        (docs/workflows.md); a ``gap`` model of the same data keeps the exploration physical and can hop.
    """

    def __init__(
        self,
        kind: str,
        fit: Callable[[list[Atoms]], object],
        init: list[Atoms],
        reference: Callable[[Atoms], object],
        starts: list[Atoms],
        settings: LearnSettings,
        workdir: str | Path,
        *,
        explorer: object | None = None,
        progress: bool = True,
    ) -> None:
        if kind not in ("gap", "dml"):
            raise ValueError(f"learn supports kinds gap and dml, got {kind!r}")
        settings.validate()
        if not starts:
            raise ValueError("no start structures: give --start FILE or --system with --n")
        self.kind, self.fit, self.init, self.reference, self.starts = kind, fit, list(init), reference, starts
        self.settings = settings
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frames_path = self.dir / "frames.extxyz"
        self.log_path = self.dir / "log.jsonl"
        self.state_path = self.dir / "state.json"
        self.current_path = self.dir / "current.extxyz"
        self.explorer = explorer
        # Basin hopping needs an energy from whatever moves the atoms; the learned model has one only for gap.
        moves_with_energy = self._has_energy(explorer) if explorer is not None else kind == "gap"
        self.hops = settings.hops if moves_with_energy else 0
        self.progress = progress

    # ------------------------------------------------------------------ bookkeeping
    def _collected(self) -> list[Atoms]:
        """The labelled frames on disk; a last frame cut short by a kill mid-write is dropped from the file."""
        if not self.frames_path.exists():
            return []
        lines = self.frames_path.read_text().splitlines(keepends=True)
        end = 0  # lines up to here form complete frames (count line, comment line, one line per atom)
        while end < len(lines) and lines[end].strip().isdigit():
            size = int(lines[end]) + 2
            if end + size > len(lines) or not lines[end + size - 1].endswith("\n"):
                break
            end += size
        if end < len(lines):
            log.warning("%s ends in a frame cut short (killed while writing it); dropped, its call is made again", self.frames_path)
            self.frames_path.write_text("".join(lines[:end]))
        return read(self.frames_path, ":") if end else []

    def _event(self, **record) -> None:
        with self.log_path.open("a") as fh:
            fh.write(json.dumps({"time": time.time(), **record}, default=float) + "\n")

    def _save_state(self, state: LearnState, atoms: Atoms | None) -> None:
        if atoms is not None:
            tmp = self.current_path.with_suffix(".tmp.extxyz")
            write(tmp, atoms, format="extxyz")
            tmp.replace(self.current_path)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)) + "\n")
        tmp.replace(self.state_path)

    def _load_state(self) -> tuple[LearnState, Atoms | None]:
        if not self.state_path.exists():
            return LearnState(), None
        stored = json.loads(self.state_path.read_text())
        state = LearnState(**{k: v for k, v in stored.items() if k in LearnState.__dataclass_fields__})
        return state, (read(self.current_path) if self.current_path.exists() else None)

    # ------------------------------------------------------------------ model
    def _uncertainty(self, model, atoms: Atoms) -> np.ndarray:
        out = model.predict(atoms, variance=True) if self.kind == "gap" else model.predict(atoms)
        u = np.asarray(out["uncertainty"], dtype=float)
        if self.kind == "dml":
            # An atom closer to a neighbour than any training pair is outside the data whatever the spread says.
            u = np.where(out["extrapolating"], np.inf, u)
        return u

    def _update(self, model, frames: list[Atoms], new: Atoms):
        if self.kind == "gap":
            return model.partial_fit([new])
        every = self.settings.refit_every
        return model.partial_fit(frames[-every:]) if len(frames) % every == 0 else model

    # ------------------------------------------------------------------ run
    def run(self) -> tuple[object, LearnState]:
        """Run (or resume) the schedule; returns the final model and state."""
        from ase.md.langevin import Langevin

        from .calculator import Calculator

        s = self.settings
        collected = self._collected()
        state, current = self._load_state()
        logged = sum(1 for line in self.log_path.open() if '"event": "call"' in line) if self.log_path.exists() else 0
        if logged > len(collected):
            log.warning("log has %d calls but %d frames were kept (killed mid-write); the frames file counts", logged, len(collected))
        # The same model an uninterrupted run has at this point: gap keeps the sparse points of init.
        model = self.fit(self.init)
        if collected and self.kind == "gap":
            model = model.partial_fit(collected)
        elif self.kind == "dml":
            for k in range(0, len(collected) - len(collected) % s.refit_every, s.refit_every):  # the run's batches, in its order
                model = model.partial_fit(collected[k : k + s.refit_every])
        if state.threshold is None:
            per_frame = [self._uncertainty(model, a) for a in self.init[:: max(1, len(self.init) // 50)]]
            pooled = np.concatenate(per_frame)
            finite = pooled[np.isfinite(pooled)]
            state.threshold = float(s.threshold if s.threshold is not None else s.relative_threshold * np.percentile(finite, 99))
            state.floor = float(np.median([np.max(u) for u in per_frame]))
            if s.max_force_ratio is not None:
                state.force_cap = s.max_force_ratio * max(float(np.abs(a.get_forces()).max()) for a in self.init)
            self._event(event="start", threshold=state.threshold, floor=state.floor, init_frames=len(self.init), kind=self.kind)
        log.info(
            "learning with threshold %.4g (uncertainty units of %s), %d frames collected so far", state.threshold, self.kind, len(collected)
        )
        rng = np.random.default_rng(s.seed + len(collected))
        while state.start < len(self.starts) and len(collected) < s.max_calls:
            if state.temperature == len(s.temperatures):
                model = self._basin_hops(model, current, collected, state)
                if len(collected) >= s.max_calls:
                    break
                state.temperature, state.start, state.hop, current = 0, state.start + 1, 0, None
                self._save_state(state, current)
                continue
            temperature = s.temperatures[state.temperature]
            atoms = (current if current is not None else self.starts[state.start]).copy()
            if current is None:
                _thermalise(atoms, temperature, rng)
            atoms.calc = Calculator(self._driver(model))
            dyn = Langevin(atoms, s.timestep * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=rng)
            hold = 0
            sound = atoms.copy()
            while state.step < s.steps_per_temperature and len(collected) < s.max_calls:
                dyn.run(s.check_every)
                state.step += s.check_every
                state.md_steps += s.check_every
                hold = max(0, hold - s.check_every)
                if hold:
                    continue
                u = self._uncertainty(model, atoms)
                outcome = "broken" if np.isinf(u).any() else None
                if outcome is None:
                    why = self._why_label(u, state, len(collected))
                    if why:
                        model, outcome = self._label(model, atoms, collected, state, f"md {temperature:g} K step {state.step}: {why}")
                        if outcome == "labelled":
                            atoms.calc = Calculator(self._driver(model))
                        # Also after a failed call: a structure whose SCF fails usually fails for
                        # the next few steps too (seen on Na20-25 at 2000 K: 134 failures in a row).
                        hold = s.cooldown
                if outcome == "broken":
                    self._restart(atoms, sound, state, temperature, rng)
                elif outcome != "failed":
                    sound = atoms.copy()
                self._save_state(state, atoms)
            if len(collected) >= s.max_calls:
                break
            model = self._quench(model, atoms, collected, state, temperature)
            state.step = 0
            state.temperature += 1
            current = atoms
            self._save_state(state, current)
        if self.kind != "gap" and len(collected) % s.refit_every:
            model = model.partial_fit(collected[len(collected) - len(collected) % s.refit_every :])  # the frames since the last update
        self._event(event="finish", calls=len(collected), md_steps=state.md_steps)
        return model, state

    def _quench(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState, temperature: float):
        """Relax a copy with the model (FIRE on model forces) and label the minimum if the model is unsure there."""
        from ase.optimize import FIRE

        from .calculator import Calculator
        from .optimize import ForceOnlyAtoms

        quench = atoms.copy()
        quench.calc = Calculator(self._driver(model))
        FIRE(ForceOnlyAtoms(quench), logfile=None).run(fmax=0.05, steps=self.settings.quench_steps)
        u = self._uncertainty(model, quench)
        why = None if np.isinf(u).any() else self._why_label(u, state, len(collected))
        if why and len(collected) < self.settings.max_calls:
            model, _ = self._label(model, quench, collected, state, f"quench after {temperature:g} K: {why}")
        return model

    def _checks_left(self, state: LearnState) -> int:
        """Uncertainty checks the schedule has left (MD checks, quenches, hops), for the budget rule."""
        s = self.settings
        per_start = len(s.temperatures) * (-(-s.steps_per_temperature // s.check_every) + 1) + self.hops
        return max(1, len(self.starts) * per_start - len(state.seen))

    def _why_label(self, u: np.ndarray, state: LearnState, calls: int) -> str | None:
        """Why a structure with per-atom uncertainties ``u`` should be labelled, or None."""
        top = float(np.max(u))
        seen = np.asarray(state.seen)
        state.seen.append(top if np.isfinite(top) else 1e300)
        if top > state.threshold:
            return f"max uncertainty {top:.3g} above the threshold {state.threshold:.3g}"
        s = self.settings
        if not s.fill_budget or len(seen) < 10 or state.floor is None or top <= state.floor:
            return None
        rate = (s.max_calls - calls) / self._checks_left(state)
        if rate >= 1 or top >= np.quantile(seen, 1 - rate):
            return f"max uncertainty {top:.3g} in the top {100 * min(rate, 1):.0f} % seen (budget rule)"
        return None

    def _driver(self, model):
        """The model whose forces move the atoms: the explorer if one was given, else the one being learned."""
        return self.explorer if self.explorer is not None else model

    @staticmethod
    def _has_energy(model) -> bool:
        return "energy" in getattr(model, "implemented_properties", ("energy",))

    def _basin_hops(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState):
        """Basin hopping with the model from the end of a start's ladder, labelling uncertain minima.

        MD and quenches stay in the basin the MD reached; hops perturb every atom and relax, accepted
        by the Metropolis rule on the model energy, so the loop also asks about the other low-energy
        basins (the structures cluster science needs). Needs a model energy: a force-only model
        (``dml``) is quenched only. Resumable per hop: ``state.hop`` and the current minimum are saved.
        """
        from .calculator import Calculator
        from .isomers import relax
        from .search import containment_radius, perturb

        s = self.settings
        if not self.hops:
            return model
        current, energy, _ = relax(atoms, Calculator(self._driver(model)), fmax=0.05, steps=s.quench_steps * 5)
        radius = containment_radius(current)
        while state.hop < self.hops and len(collected) < s.max_calls:
            rng = np.random.default_rng([s.seed, state.start, state.hop])
            driver = Calculator(self._driver(model))
            trial, e_trial, _ = relax(perturb(current, s.hop_step, rng, radius), driver, fmax=0.05, steps=s.quench_steps * 5)
            state.hop += 1
            u = self._uncertainty(model, trial)
            why = None if np.isinf(u).any() else self._why_label(u, state, len(collected))
            if why:
                model, outcome = self._label(model, trial, collected, state, f"basin hop {state.hop}: {why}")
                if outcome == "labelled" and self.explorer is None:  # compare both minima on the updated model
                    energy, e_trial = (float(model.predict(a)["energy"]) for a in (current, trial))
            if e_trial <= energy or rng.random() < np.exp(-(e_trial - energy) / s.hop_kt):
                current, energy = trial, e_trial
            self._save_state(state, current)
        return model

    def _restart(self, atoms: Atoms, sound: Atoms, state: LearnState, temperature: float, rng: np.random.Generator) -> None:
        """Put the MD back on the last structure that passed its check, with fresh velocities."""
        atoms.positions = sound.positions
        _thermalise(atoms, temperature, rng)
        state.restarts += 1
        self._event(event="restart", temperature=temperature, step=state.step)
        log.info("md %g K step %d: the structure left the data (a pair shorter than any trained on, or broken); back to the last "
                 "sound structure", temperature, state.step)  # fmt: skip

    def _label(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState, reason: str):
        """Reference single point, error of the model there, append, update.

        Returns (model, outcome): ``"labelled"``, ``"failed"`` (the reference raised, e.g. no SCF
        convergence) or ``"broken"`` (a force above the cap: not fitted)."""
        frame = atoms.copy()
        frame.calc = self.reference(frame)
        try:
            energy, forces = frame.get_potential_energy(), frame.get_forces()
        except Exception as exc:  # an SCF failure (or any reference failure) skips the frame
            log.warning("reference failed (%s); frame skipped", exc)
            self._event(event="skip", reason=reason, error=str(exc))
            return model, "failed"
        cap = state.force_cap
        if cap is not None and np.abs(forces).max() > cap:
            error = f"reference force {np.abs(forces).max():.3g} eV/A above the cap {cap:.3g} (a broken structure)"
            log.warning("%s; frame not fitted", error)
            self._event(event="skip", reason=reason, error=error)
            return model, "broken"
        predicted = model.predict(frame)["forces"]
        error = float(np.sqrt(np.mean((predicted - forces) ** 2)))
        frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
        frame.info["learn_reason"] = reason
        frame.info["learn_call"] = len(collected) + 1
        text = io.StringIO()
        write(text, frame, format="extxyz")
        with self.frames_path.open("a") as fh:
            fh.write(text.getvalue())
        # The model learns the frame as the file holds it (rounded), so a resumed run, which reads the file, gets the same model.
        frame = read(io.StringIO(text.getvalue()), format="extxyz")
        collected.append(frame)
        self._event(event="call", call=len(collected), reason=reason, force_rmse_before=error, max_force=float(np.abs(forces).max()))
        log.info("call %d: %s; model force RMSE there %.3f eV/A", len(collected), reason, error)
        return self._update(model, collected, frame), "labelled"


def _thermalise(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` (K) without net translation or rotation."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)


def summary(workdir: str | Path) -> dict:
    """The learning curve and call rate from ``log.jsonl``."""
    events = [json.loads(line) for line in Path(workdir, "log.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["event"] == "call"]
    finish = next((e for e in reversed(events) if e["event"] == "finish"), None)
    md_steps = finish["md_steps"] if finish else None
    return {
        "calls": len(calls),
        "skipped": sum(e["event"] == "skip" for e in events),
        "md_steps": md_steps,
        "calls_per_1000_md_steps": 1000 * len(calls) / md_steps if md_steps else None,
        "force_rmse_before_each_call": [e["force_rmse_before"] for e in calls],
        "reasons": [e["reason"] for e in calls],
    }
