"""On-the-fly learning: explore with the model, ask the reference where the model is unsure, refit.

The loop (``clusterforce learn``) starts from a model trained on ``init`` frames and explores with
it: Langevin MD at each temperature of a ladder from each start structure, after each MD
stretch a quench (local relaxation with the model), and after the ladder basin hopping with the
model (when it has energies), so low-energy basins are visited, not only hot MD. Whenever the
largest per-atom uncertainty of a structure passes the threshold, the reference labels it (SCF
failures are skipped with a log line), the frame joins the data with the reason it was added, and
the model is updated. The loop uses only the estimator contract (``docs/adding-a-kind.md``): the
per-atom ``uncertainty`` and ``extrapolating`` flags of :class:`clusterforce.Calculator`,
``implemented_properties`` (basin hopping needs an energy), and the update the estimator offers:

- with ``partial_fit``, the frames of each batch of ``refit_every`` (default: the estimator's
  ``partial_fit_every``) are added to the fitted model. ``gap`` (every frame) adds their rows to
  the normal equations and solves again: the cost does not grow with the data. ``dml`` (every
  10) adds their atoms that are unlike any reference as new references and solves the EMLM and
  OAMLM again; the init references stay (a refit on all frames chose them again, and on the rings
  the labelled structures then displaced references of the conformers the model was trained on);
- without it, the model is fitted again on the init and collected frames after each batch.

A structure is labelled when its largest per-atom uncertainty passes the threshold — relative by
default: ``relative_threshold`` times the 99th percentile of the uncertainty on the initial training
frames, so it is scaled to the model instead of guessed in absolute units — or, with
``fill_budget``, when it is among the most uncertain structures seen so far at the rate that
spends the remaining calls over the remaining checks of the schedule (and more uncertain than a
typical training structure). A fixed threshold alone is badly scaled one way or the other: on
sodium 1.5x the 99th percentile gave 1 call in 5000 MD steps, and a low one calls the reference at
every check; the budget rule asks about the structures the model knows least, as many as the user
paid for. Before each update the model's force error on the new frame is recorded: the
learning curve.

Everything is written to the work directory so that a run killed at any instant resumes exactly:
the rerun makes the same frames, events and model as a run that was never interrupted.
``frames.extxyz`` (the labelled frames, appended) is the source of truth: the number of calls is
the number of frames in it, and the model of a resumed run is the init model updated with them
in the run's batches. ``state.json`` is the commit record, replaced (temporary file, fsync,
rename) after every uncertainty check: the position in the schedule, the random generator, the
structure and velocities, and the frames and ``log.jsonl`` events of the check, which are
appended only after the record is on disk. A resumed run first completes the appends of the last
record (a kill between the rename and an append left them out) and drops a frame or event cut
short by a kill mid-write; whatever happened after the last record is made again, identically.
``summary.json`` is written when a run finishes and removed when one starts, so it never
describes other frames than those on disk.

Without a reference that runs here (``reference=None``; ``clusterforce learn --reference none
--propose N``) the loop proposes instead of labelling: the same exploration with the init model,
and the N structures the rule picks (the budget rule spreads them over the schedule) are written
to ``frames.extxyz`` without energies or forces, for a DFT user to compute and add to the data.
The model is not updated, so a proposal is the init model's view of where it is unsure.

Exploration that leaves physics is not labelled but undone: when the model flags an atom as
outside its data (``extrapolating``, e.g. a pair closer than any pair in the training data; the
repulsive baseline, not the data, has to hold such atoms apart), when a force or position is not
finite (the MD is stopped at that step), or when the reference's largest force component is above
``max_force_ratio`` times the largest in the init frames, the MD goes back to the last structure
that passed its check, with fresh velocities; a quench or basin-hop minimum of that kind is not
labelled. Measured on the rings with dml's own (non-conservative) MD: without this rule 46 of 154
calls labelled broken rings (forces up to 734 eV/A against 6.5 eV/A in the init data) and the
learned model's Au force norms went from 0.14 to 2.2 eV/A RMSE on unseen sizes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from clusterforce.core.calculator import Calculator

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
    # Update the model after this many new frames (and at the end); None: the estimator's partial_fit_every.
    refit_every: int | None = None
    seed: int = 0
    # Steps the MD is held back after a call (or a failed one), so one excursion does not cost several calls.
    cooldown: int = 10
    # A reference frame whose largest force component exceeds this multiple of the init frames' largest is
    # a broken structure: skipped (not fitted) and the MD goes back to the last sound structure. None: off.
    max_force_ratio: float | None = 3.0

    def validate(self) -> None:
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"temperatures must be positive (K), got {list(self.temperatures)}")
        for name in ("steps_per_temperature", "check_every", "max_calls"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.refit_every is not None and int(self.refit_every) < 1:
            raise ValueError(f"refit_every must be at least 1 (or None for the model's own), got {self.refit_every}")
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
    """Where the schedule stands (in ``state.json``): start index, temperature index (the number of
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
    skipped: int = 0
    # MD steps left of the cooldown after a call.
    hold: int = 0
    # Basin hopping: model energy (eV) of the current minimum, and the containment radius (Angstrom).
    hop_energy: float | None = None
    hop_radius: float | None = None
    # The last commit record is that of the run's end (a rerun with the same settings has nothing to add).
    finished: bool = False


class Learner:
    """One learning run in ``workdir`` (see the module docstring).

    Parameters
    ----------
    fit
        ``fit(frames) -> model`` trains a fresh estimator (hyperparameters bound) whose per-atom
        uncertainty decides what is labelled (``provides_uncertainty``).
    init
        Frames the first model is trained on (with reference energies/forces).
    reference
        ``reference(atoms) -> Calculator`` for a structure (e.g. :func:`clusterforce.references.resolve`),
        or None to propose the structures to label instead of labelling them (``settings.max_calls`` of them).
    starts
        Start structures of the exploration.
    explorer
        A fixed model that drives the MD, quenches and basin hops instead of the model being learned
        (which still decides what to label). For a force-only model (``dml``), whose force field is
        not conservative: its own hot MD breaks rings and the loop then labels broken structures
        (docs/workflows.md); a ``gap`` model of the same data keeps the exploration physical and can hop.
    """

    def __init__(
        self,
        fit: Callable[[list[Atoms]], object],
        init: list[Atoms],
        reference: Callable[[Atoms], object] | None,
        starts: list[Atoms],
        settings: LearnSettings,
        workdir: str | Path,
        *,
        explorer: object | None = None,
        progress: bool = True,
    ) -> None:
        settings.validate()
        if not starts:
            raise ValueError("no start structures: give --start FILE or --system with --n")
        self.fit, self.init, self.reference, self.starts = fit, list(init), reference, starts
        self.settings = settings
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frames_path = self.dir / "frames.extxyz"
        self.log_path = self.dir / "log.jsonl"
        self.state_path = self.dir / "state.json"
        self.summary_path = self.dir / "summary.json"
        self.explorer = explorer
        self.progress = progress
        # Frames (extxyz text) and events (json lines) made since the last commit record.
        self._pending_frames: list[str] = []
        self._pending_events: list[str] = []

    # ------------------------------------------------------------------ the work directory
    def _collected(self) -> list[Atoms]:
        """The labelled frames on disk; a last frame cut short by a kill mid-write is dropped from the file."""
        _drop_torn_tail(self.frames_path, _frame_ends, "frame")
        return read(self.frames_path, ":") if self.frames_path.exists() and self.frames_path.stat().st_size else []

    def _event(self, **record) -> None:
        self._pending_events.append(json.dumps({"time": time.time(), **record}, default=float) + "\n")

    def _commit(self, state: LearnState, atoms: Atoms | None, sound: Atoms | None, calls: int, *, finished: bool = False) -> None:
        """Write the commit record (``state.json``), then append the frames and events it holds.

        A kill before the rename leaves the previous record, and the run resumes from it; a kill
        after it leaves the appends to the resumed run (:meth:`_recover`)."""
        state.finished = finished
        record = {
            "state": asdict(state),
            "rng": self._rng.bit_generator.state,
            "atoms": None if atoms is None else _motion(atoms),
            "sound": None if sound is None else sound.positions.tolist(),
            "frames": calls,
            "events": self._events_on_disk + len(self._pending_events),
            "pending_frames": self._pending_frames,
            "pending_events": self._pending_events,
        }
        # On disk before returning when a record holds frames (reference calls) or ends the run; a
        # crash of the machine may lose the other records, which a resumed run makes again.
        durable = bool(self._pending_frames) or finished
        _replace(self.state_path, json.dumps(record) + "\n", durable=durable)
        for path, texts in ((self.frames_path, self._pending_frames), (self.log_path, self._pending_events)):
            if texts:
                _append(path, "".join(texts), durable=durable)
        self._events_on_disk = record["events"]
        self._pending_frames, self._pending_events = [], []

    def _recover(self) -> dict | None:
        """Bring the directory to its last commit record (returned; None before the first one):
        drop torn tails, append the frames and events the record holds but the files lack."""
        self.summary_path.unlink(missing_ok=True)  # describes a finished run; rewritten when this one finishes
        counts = {
            "frames": _drop_torn_tail(self.frames_path, _frame_ends, "frame"),
            "events": _drop_torn_tail(self.log_path, _line_ends, "event"),
        }
        record = json.loads(self.state_path.read_text()) if self.state_path.exists() else None
        if record is not None and "pending_frames" not in record:
            raise ValueError(
                f"{self.state_path} was written by an older clusterforce and cannot be resumed exactly; remove it to start the "
                "schedule again (the frames are kept and learned)"
            )
        for name, path in (("frames", self.frames_path), ("events", self.log_path)):
            if record is None:
                break
            pending = record[f"pending_{name}"]
            missing = record[name] - counts[name]
            if 0 < missing <= len(pending):
                _append(path, "".join(pending[len(pending) - missing :]), durable=True)
                counts[name] += missing
            elif missing:
                # Only if the files were edited by hand: the frames file counts.
                log.warning(
                    "%s holds %d %s, its commit record %s %d; the file counts", path, counts[name], name, self.state_path, record[name]
                )
        self._events_on_disk = counts["events"]
        return record

    def _restore(self, record: dict | None) -> tuple[LearnState, Atoms | None, Atoms | None]:
        """The schedule position, structure and last sound structure of a commit record (and its random generator)."""
        self._rng = np.random.default_rng(self.settings.seed)
        if record is None:
            return LearnState(), None, None
        state = LearnState(**record["state"])
        self._rng.bit_generator.state = record["rng"]
        atoms = sound = None
        if record["atoms"] is not None:
            atoms = self.starts[state.start].copy()
            atoms.positions = record["atoms"]["positions"]
            if record["atoms"]["momenta"] is not None:
                atoms.set_momenta(record["atoms"]["momenta"])
        if record["sound"] is not None:
            sound = self.starts[state.start].copy()
            sound.positions = record["sound"]
        return state, atoms, sound

    # ------------------------------------------------------------------ model
    def _assess(self, model, atoms: Atoms) -> tuple[np.ndarray | None, str | None]:
        """Per-atom uncertainty (eV/Angstrom) of the learned model for ``atoms``, and why the
        structure is outside the model's data (None if it is not): a non-finite position, force or
        uncertainty, or an atom the model flags as ``extrapolating``."""
        reason = _non_finite(atoms)
        if reason:
            return None, reason
        calc = Calculator(model)
        u = np.asarray(calc.get_property("uncertainty", atoms), dtype=float)
        reason = _non_finite(atoms, calc.results) or _first(~np.isfinite(u), "non-finite uncertainty of atom {}")
        flags = calc.results.get("extrapolating")
        return u, reason or (None if flags is None else _first(flags, "atom {} outside the training data (extrapolating)"))

    def _learn(self, model, collected: list[Atoms], lo: int, hi: int):
        """The model after learning ``collected[lo:hi]``: ``partial_fit`` where the estimator has
        one, else a fit on the init frames and ``collected[:hi]``."""
        if hasattr(model, "partial_fit"):
            return model.partial_fit(collected[lo:hi])
        return self.fit(self.init + collected[:hi])

    def _replayed(self, collected: list[Atoms]):
        """The model an uninterrupted run has once it has labelled ``collected``: the init model
        updated in the run's batches, in its order (a resumed run then continues identically)."""
        model = self.fit(self.init)
        self._every = self.settings.refit_every or getattr(model, "partial_fit_every", 1)
        if self.reference is None:  # proposals carry no labels: nothing to learn
            return model
        full = len(collected) - len(collected) % self._every
        ends = range(self._every, full + 1, self._every) if hasattr(model, "partial_fit") else [full] if full else []
        for hi in ends:
            model = self._learn(model, collected, hi - self._every, hi)
        return model

    def _update(self, model, collected: list[Atoms]):
        """After a frame joined ``collected``: the updated model at the end of a batch, else ``model``."""
        n = len(collected)
        return self._learn(model, collected, n - self._every, n) if n % self._every == 0 else model

    # ------------------------------------------------------------------ run
    def run(self) -> tuple[object, LearnState]:
        """Run (or resume) the schedule; returns the final model and state (and writes ``summary.json``)."""
        s = self.settings
        record = self._recover()
        collected = self._collected()
        state, current, sound = self._restore(record)
        model = self._replayed(collected)
        kind = getattr(model, "kind", type(model).__name__)
        if not getattr(model, "provides_uncertainty", False):
            raise ValueError(f"learn needs a model with a per-atom uncertainty; this {kind} model provides none")
        # Basin hopping needs an energy from whatever moves the atoms.
        self.hops = s.hops if "energy" in getattr(self._driver(model), "implemented_properties", ()) else 0
        if state.threshold is None:
            per_frame = [self._assess(model, a)[0] for a in self.init[:: max(1, len(self.init) // 50)]]
            pooled = np.concatenate(per_frame)
            finite = pooled[np.isfinite(pooled)]
            state.threshold = float(s.threshold if s.threshold is not None else s.relative_threshold * np.percentile(finite, 99))
            state.floor = float(np.median([np.max(u) for u in per_frame]))
            if s.max_force_ratio is not None:
                state.force_cap = s.max_force_ratio * max(float(np.abs(a.get_forces()).max()) for a in self.init)
            self._event(event="start", threshold=state.threshold, floor=state.floor, init_frames=len(self.init), kind=kind)
        log.info(
            "learning with threshold %.4g (uncertainty units of %s), %d frames collected so far", state.threshold, kind, len(collected)
        )
        while state.start < len(self.starts) and len(collected) < s.max_calls:
            if state.temperature == len(s.temperatures):
                model, current = self._basin_hops(model, current, collected, state)
                if len(collected) >= s.max_calls:
                    break
                state.temperature, state.start, state.hop, current = 0, state.start + 1, 0, None
                state.hop_energy = state.hop_radius = None
                self._commit(state, None, None, len(collected))
                continue
            model, current, sound = self._md(model, current, sound, collected, state)
            if len(collected) >= s.max_calls:
                break
            model = self._quench(model, current, collected, state, s.temperatures[state.temperature])
            state.step, state.hold, state.temperature, sound = 0, 0, state.temperature + 1, None
            self._commit(state, current, None, len(collected))
        if self.reference is not None and len(collected) % self._every:  # the frames since the last update
            model = self._learn(model, collected, len(collected) - len(collected) % self._every, len(collected))
        if not state.finished:
            self._event(event="finish", calls=len(collected), md_steps=state.md_steps)
            self._commit(state, current, sound, len(collected), finished=True)
        _replace(self.summary_path, json.dumps(summary(self.dir), indent=1) + "\n", durable=False)
        return model, state

    def _md(self, model, current: Atoms | None, sound: Atoms | None, collected: list[Atoms], state: LearnState):
        """Langevin MD at the state's temperature, checked every ``check_every`` steps, from
        ``current`` (resumed) or the start structure; returns the model, the final structure and
        the last sound one."""
        from ase.md.langevin import Langevin

        s = self.settings
        temperature = s.temperatures[state.temperature]
        atoms = (current if current is not None else self.starts[state.start]).copy()
        if current is None:
            _thermalise(atoms, temperature, self._rng)
        atoms.calc = self._moving(model)
        dyn = Langevin(atoms, s.timestep * units.fs, temperature_K=temperature, friction=0.02 / units.fs, rng=self._rng)
        sound = sound if sound is not None else atoms.copy()
        while state.step < s.steps_per_temperature and len(collected) < s.max_calls:
            first, broken = dyn.nsteps, None
            try:
                atoms.get_forces()  # at the structure of this step (the MD then reuses them)
            except _LeftPhysics as exc:
                broken = f"md {temperature:g} K step {state.step}: {exc}"
            else:
                try:
                    dyn.run(s.check_every)
                except _LeftPhysics as exc:  # in the force evaluation that closes the step after the last completed one
                    broken = f"md {temperature:g} K step {state.step + dyn.nsteps - first + 1}: {exc}"
            state.md_steps += dyn.nsteps - first
            state.step += s.check_every
            state.hold = max(0, state.hold - s.check_every)
            outcome = None
            if broken is None and state.hold:
                continue
            if broken is None:
                u, outside = self._assess(model, atoms)
                broken = outside and f"md {temperature:g} K step {state.step}: {outside}"
            if broken is None:
                why = self._why_label(u, state, len(collected))
                if why:
                    model, outcome = self._label(model, atoms, collected, state, f"md {temperature:g} K step {state.step}: {why}")
                    if outcome == "labelled":
                        atoms.calc = self._moving(model)
                    # Also after a failed call: a structure whose SCF fails usually fails for
                    # the next few steps too (seen on Na20-25 at 2000 K: 134 failures in a row).
                    state.hold = s.cooldown
                    if outcome == "broken":
                        broken = f"md {temperature:g} K step {state.step}: the reference forces are above the cap"
            if broken is not None:
                self._restart(atoms, sound, state, temperature, broken)
            elif outcome != "failed":
                sound = atoms.copy()
            self._commit(state, atoms, sound, len(collected))
        return model, atoms, sound

    def _quench(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState, temperature: float):
        """Relax a copy with the model (FIRE on model forces) and label the minimum if the model is unsure there."""
        from ase.optimize import FIRE

        from clusterforce.workflows.optimize import ForceOnlyAtoms

        quench = atoms.copy()
        quench.calc = self._moving(model)
        try:
            FIRE(ForceOnlyAtoms(quench), logfile=None).run(fmax=0.05, steps=self.settings.quench_steps)
            u, outside = self._assess(model, quench)
        except _LeftPhysics as exc:
            u, outside = None, str(exc)
        if outside:
            log.info("quench after %g K: %s; not labelled", temperature, outside)
            return model
        why = self._why_label(u, state, len(collected))
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
        state.seen.append(top)
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

    def _moving(self, model) -> Calculator:
        """The calculator that moves the atoms (MD, quench, hops): the driver's, raising
        :class:`_LeftPhysics` at a non-finite position or force before anything moves with it."""
        return _Watched(self._driver(model))

    def _basin_hops(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState):
        """Basin hopping with the model from the end of a start's ladder, labelling uncertain minima.

        MD and quenches stay in the basin the MD reached; hops perturb every atom and relax, accepted
        by the Metropolis rule on the model energy, so the loop also asks about the other low-energy
        basins (the structures cluster science needs). Needs a model energy: a force-only model
        (``dml``) is quenched only. Resumable per hop: ``state.hop``, the current minimum and its
        energy are committed after each hop. Returns the model and the current minimum.
        """
        from clusterforce.workflows.isomers import relax
        from clusterforce.workflows.search import containment_radius, perturb

        s = self.settings
        if not self.hops:
            return model, atoms
        if state.hop_energy is None:  # first hop: from the ladder's end, relaxed
            try:
                atoms, state.hop_energy, _ = relax(atoms, self._moving(model), fmax=0.05, steps=s.quench_steps * 5)
            except _LeftPhysics as exc:
                log.info("basin hopping after the ladder of start %d: %s in the first relaxation; no hops", state.start, exc)
                return model, atoms
            state.hop_radius = containment_radius(atoms)
        current, energy = atoms, state.hop_energy
        while state.hop < self.hops and len(collected) < s.max_calls:
            rng = np.random.default_rng([s.seed, state.start, state.hop])
            try:
                trial, e_trial, _ = relax(
                    perturb(current, s.hop_step, rng, state.hop_radius), self._moving(model), fmax=0.05, steps=s.quench_steps * 5
                )
                u, outside = self._assess(model, trial)
            except _LeftPhysics as exc:
                u, outside = None, str(exc)
            state.hop += 1
            if outside:
                log.info("basin hop %d: %s; not labelled, not accepted", state.hop, outside)
            why = None if outside else self._why_label(u, state, len(collected))
            if why:
                model, outcome = self._label(model, trial, collected, state, f"basin hop {state.hop}: {why}")
                if outcome == "labelled" and self.explorer is None:  # compare both minima on the updated model
                    energy, e_trial = (float(model.predict(a)["energy"]) for a in (current, trial))
            if not outside and (e_trial <= energy or rng.random() < np.exp(-(e_trial - energy) / s.hop_kt)):
                current, energy = trial, e_trial
            state.hop_energy = energy
            self._commit(state, current, None, len(collected))
        return model, current

    def _restart(self, atoms: Atoms, sound: Atoms, state: LearnState, temperature: float, reason: str) -> None:
        """Put the MD back on the last structure that passed its check, with fresh velocities."""
        atoms.positions = sound.positions
        _thermalise(atoms, temperature, self._rng)
        state.restarts += 1
        self._event(event="restart", temperature=temperature, step=state.step, reason=reason)
        log.info("%s; back to the last sound structure", reason)

    def _label(self, model, atoms: Atoms, collected: list[Atoms], state: LearnState, reason: str):
        """Reference single point, error of the model there, update; the frame is written by the next commit.

        Returns (model, outcome): ``"labelled"``, ``"failed"`` (the reference raised, e.g. no SCF
        convergence), ``"broken"`` (a force above the cap: not fitted) or, without a reference,
        ``"proposed"`` (the structure is written to be labelled elsewhere; the model is unchanged)."""
        frame = atoms.copy()
        if self.reference is None:
            frame.info.update(learn_reason=reason, learn_call=len(collected) + 1)
            self._keep(frame, collected)
            self._event(event="propose", call=len(collected), reason=reason)
            log.info("proposal %d: %s", len(collected), reason)
            return model, "proposed"
        frame.calc = self.reference(frame)
        try:
            energy, forces = frame.get_potential_energy(), frame.get_forces()
        except Exception as exc:  # an SCF failure (or any reference failure) skips the frame
            log.warning("reference failed (%s); frame skipped", exc)
            state.skipped += 1
            self._event(event="skip", reason=reason, error=str(exc))
            return model, "failed"
        cap = state.force_cap
        if cap is not None and np.abs(forces).max() > cap:
            error = f"reference force {np.abs(forces).max():.3g} eV/A above the cap {cap:.3g} (a broken structure)"
            log.warning("%s; frame not fitted", error)
            state.skipped += 1
            self._event(event="skip", reason=reason, error=error)
            return model, "broken"
        error = float(np.sqrt(np.mean((model.predict(frame)["forces"] - forces) ** 2)))
        frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
        frame.info.update(learn_reason=reason, learn_call=len(collected) + 1, learn_force_rmse_before=error)
        self._keep(frame, collected)
        self._event(event="call", call=len(collected), reason=reason, force_rmse_before=error, max_force=float(np.abs(forces).max()))
        log.info("call %d: %s; model force RMSE there %.3f eV/A", len(collected), reason, error)
        return self._update(model, collected), "labelled"

    def _keep(self, frame: Atoms, collected: list[Atoms]) -> None:
        """Queue ``frame`` for the next commit and add it to ``collected`` as the file will hold it."""
        text = io.StringIO()
        write(text, frame, format="extxyz")
        self._pending_frames.append(text.getvalue())
        # The model learns the frame as the file holds it (rounded), so a resumed run, which reads the file, gets the same model.
        collected.append(read(io.StringIO(text.getvalue()), format="extxyz"))


class _LeftPhysics(Exception):
    """A non-finite position or force where the atoms are moved (the message names the atom)."""


class _Watched(Calculator):
    """A model's calculator that refuses non-finite positions (before its neighbour search sees
    them) and non-finite forces (before an integrator or optimiser moves atoms with them)."""

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes) -> None:
        reason = _non_finite(atoms if atoms is not None else self.atoms)
        if reason is None:
            super().calculate(atoms, properties, system_changes)
            reason = _non_finite(self.atoms, self.results)
        if reason:
            self.reset()  # nothing cached: asked again at the same positions, it computes (and refuses) again
            raise _LeftPhysics(reason)


def _first(flags, message: str) -> str | None:
    """``message`` with the index of the first true entry of ``flags``, None if there is none."""
    hits = np.flatnonzero(np.asarray(flags, dtype=bool))
    return message.format(hits[0]) if hits.size else None


def _non_finite(atoms: Atoms, results: dict | None = None) -> str | None:
    """What is not finite about ``atoms`` (positions) or a calculator's ``results`` (forces), or None."""
    reason = _first(~np.isfinite(atoms.positions).all(axis=1), "non-finite position of atom {}")
    if reason is None and results is not None and "forces" in results:
        reason = _first(~np.isfinite(results["forces"]).all(axis=1), "non-finite force on atom {}")
    return reason


def _motion(atoms: Atoms) -> dict:
    """Positions and momenta of ``atoms`` as JSON lists (JSON keeps every bit of a float)."""
    momenta = atoms.get_momenta().tolist() if "momenta" in atoms.arrays else None
    return {"positions": atoms.positions.tolist(), "momenta": momenta}


def _thermalise(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` (K) without net translation or rotation."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)


# ---------------------------------------------------------------------- files a kill may cut short
def _replace(path: Path, text: str, *, durable: bool) -> None:
    """Make ``text`` the content of ``path`` so that a kill at any instant leaves the old content or
    the new: a temporary file in the same directory, renamed over ``path``; ``durable``: flushed to
    disk first, and the rename too (survives a crash of the machine, at a few ms)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _append(path: Path, text: str, *, durable: bool) -> None:
    """Append ``text`` to ``path`` (``durable``: on disk when this returns); a kill may cut it short,
    :func:`_drop_torn_tail` drops the torn record."""
    with path.open("a") as fh:
        fh.write(text)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())


def _frame_ends(text: str) -> list[int]:
    """Character offsets where each complete extxyz frame of ``text`` ends."""
    ends, pos = [], 0
    while True:
        head = text.find("\n", pos)
        if head < 0 or not text[pos:head].strip().isdigit():
            return ends
        end = head
        for _ in range(int(text[pos:head]) + 1):  # comment line, one line per atom
            end = text.find("\n", end + 1)
            if end < 0:
                return ends
        pos = end + 1
        ends.append(pos)


def _line_ends(text: str) -> list[int]:
    """Character offsets where each complete JSON line of ``text`` ends."""
    ends, pos = [], 0
    while (end := text.find("\n", pos)) >= 0:
        try:
            json.loads(text[pos:end])
        except ValueError:
            break
        pos = end + 1
        ends.append(pos)
    return ends


def _complete(path: Path, ends: Callable[[str], list[int]]) -> tuple[str, list[int]]:
    """The text of ``path`` ('' if absent) and the offsets where its complete records end."""
    text = path.read_text() if path.exists() else ""
    return text, ends(text)


def _drop_torn_tail(path: Path, ends: Callable[[str], list[int]], what: str) -> int:
    """Cut ``path`` after its last complete record (a kill mid-append leaves a torn one); returns the record count."""
    text, found = _complete(path, ends)
    keep = found[-1] if found else 0
    if keep < len(text):
        log.warning("%s ends in a %s cut short (killed while writing it); dropped, it is made again", path, what)
        os.truncate(path, len(text[:keep].encode()))
    return len(found)


def summary(workdir: str | Path) -> dict:
    """Calls, the learning curve and the call rate of the run in ``workdir``, from its frames
    (one per call, or per proposal of a run without a reference) and its commit record."""
    workdir = Path(workdir)
    text, ends = _complete(workdir / "frames.extxyz", _frame_ends)
    frames = read(io.StringIO(text[: ends[-1]]), ":", format="extxyz") if ends else []
    state_path = workdir / "state.json"
    state = json.loads(state_path.read_text())["state"] if state_path.exists() else asdict(LearnState())
    md_steps = state["md_steps"]
    labelled = [f for f in frames if "learn_force_rmse_before" in f.info]
    return {
        "calls": len(labelled),
        "proposed": len(frames) - len(labelled),
        "skipped": state["skipped"],
        "md_steps": md_steps,
        "calls_per_1000_md_steps": 1000 * len(labelled) / md_steps if md_steps else None,
        "force_rmse_before_each_call": [float(f.info["learn_force_rmse_before"]) for f in labelled],
        "reasons": [f.info["learn_reason"] for f in frames],
    }
