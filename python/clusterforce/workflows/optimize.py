"""Force-only structure optimisation: ASE's BFGS with what noisy ML forces need.

Section II D and III D of the OAMLM paper optimise with ML forces alone (no energy), with a
small maximum step (0.05–0.2 Angstrom), Hessian resets every N steps, and *partwise*
optimisation: groups of atoms take turns (outer layer 24 steps with the core fixed, then
the core 12 steps with the outer layer fixed). Each group keeps its own BFGS Hessian over its
own coordinates, so the other group's moves never enter it; a reset returns every group's
Hessian to its initial value.

The guards every optimiser and MD run of the package shares live here too: the BFGS curvature
condition (:func:`curvature_ok`), the stop on a non-finite force or position
(:class:`NonFiniteError`, :func:`nonfinite_atoms`) and the per-atom ``extrapolating`` flag a model
calculator sets where it has no data (:func:`extrapolating_atoms`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from ase.io import Trajectory
from ase.optimize import BFGS
from ase.optimize.optimize import OptimizableAtoms
from ase.utils.abc import Optimizable

log = logging.getLogger(__name__)

#: A BFGS update is skipped unless the step dr and the gradient change dg satisfy
#: dr . dg > CURVATURE_EPS |dr| |dg| (Nocedal and Wright, section 6.1): a zero or negative
#: curvature would divide by round-off or make the Hessian indefinite. Non-conservative forces
#: (a swirl F = J x with J antisymmetric) give dr . dg = 0 exactly.
CURVATURE_EPS = 1e-8


def curvature_ok(dr: np.ndarray, dg: np.ndarray) -> bool:
    """Whether a BFGS update from step ``dr`` (Angstrom) and gradient change ``dg`` (eV/Angstrom) is safe."""
    return float(dr @ dg) > CURVATURE_EPS * float(np.linalg.norm(dr) * np.linalg.norm(dg))


class NonFiniteError(RuntimeError):
    """A force, energy or position became NaN or infinite; the message names the step and the atoms."""


def describe_atoms(atoms: Atoms, indices: Sequence[int], limit: int = 6) -> str:
    """``"0 (Au), 1 (Au)"``: atom indices with their elements, the first ``limit`` of them."""
    symbols = atoms.get_chemical_symbols()
    text = ", ".join(f"{int(i)} ({symbols[int(i)]})" for i in list(indices)[:limit])
    return text + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def nonfinite_atoms(atoms: Atoms, forces: np.ndarray | None = None) -> np.ndarray:
    """Indices of atoms whose position or (if given) force (eV/Angstrom) is NaN or infinite."""
    bad = ~np.isfinite(atoms.positions).all(axis=1)
    if forces is not None:
        bad |= ~np.isfinite(np.asarray(forces)).all(axis=1)
    return np.flatnonzero(bad)


def check_finite(atoms: Atoms, forces: np.ndarray | None, where: str) -> None:
    """Raise :class:`NonFiniteError` naming ``where`` (e.g. ``"MD step 120"``) and the atoms with a
    non-finite position or force."""
    bad = nonfinite_atoms(atoms, forces)
    if bad.size:
        raise NonFiniteError(f"{where}: the position or force of atoms {describe_atoms(atoms, bad)} is not finite (NaN or inf)")


def attach_finite_check(dyn, atoms: Atoms, label: str, first_step: int = 0) -> None:
    """Make the ASE MD ``dyn`` raise :class:`NonFiniteError` after the first step whose positions
    or forces are not finite, naming ``label`` and the step (counted from ``first_step``)."""
    dyn.attach(lambda: check_finite(atoms, atoms.get_forces(), f"{label} MD step {first_step + dyn.nsteps}"), interval=1)


def extrapolating_atoms(calc, indices: np.ndarray | None = None) -> np.ndarray:
    """Atoms (of ``indices``, default all) that ``calc`` flags in ``results["extrapolating"]`` as
    outside its training data; none for a calculator that does not set the flag."""
    flags = getattr(calc, "results", {}).get("extrapolating")
    if flags is None:
        return np.zeros(0, dtype=int)
    flags = np.asarray(flags, dtype=bool)
    return np.flatnonzero(flags) if indices is None else indices[flags[indices]]


class _GuardedBFGS(BFGS):
    """ASE's BFGS with the curvature guard: an update with dr . dg <= CURVATURE_EPS |dr| |dg| is skipped."""

    def update(self, pos, forces, pos0, forces0):
        if pos0 is not None and not curvature_ok(pos - pos0, forces0 - forces):
            return
        super().update(pos, forces, pos0, forces0)


@dataclass(frozen=True)
class Part:
    """A group of atoms optimised for ``steps`` consecutive steps per turn."""

    name: str
    indices: np.ndarray
    steps: int


class _SubsetOptimizable(Optimizable):
    """The coordinates of ``indices`` only; forces come from the full structure."""

    def __init__(self, atoms: Atoms, indices: np.ndarray):
        self.atoms = atoms
        self.indices = indices

    def ndofs(self) -> int:
        return 3 * len(self.indices)

    def get_x(self) -> np.ndarray:
        return self.atoms.positions[self.indices].ravel()

    def set_x(self, x: np.ndarray) -> None:
        positions = self.atoms.get_positions()
        positions[self.indices] = x.reshape(-1, 3)
        self.atoms.set_positions(positions)

    def get_gradient(self) -> np.ndarray:
        return -self.atoms.get_forces()[self.indices].ravel()

    def get_value(self) -> float:
        # BFGS steps never need the energy and force-only models define none (as ForceOnlyAtoms).
        return float("nan")

    def iterimages(self):
        return iter([self.atoms])


class ForceOnlyAtoms(OptimizableAtoms):
    """Let ASE's force-driven optimisers run a force-only model: ``BFGS(ForceOnlyAtoms(atoms))``.

    ASE optimisers log an energy every step even when their steps use forces only (BFGS,
    LBFGS, FIRE, MDMin); with a force-only model that energy is undefined, so it is reported
    as NaN. Optimisers whose steps need energies (line searches) cannot use such a model.
    """

    def get_value(self) -> float:
        return float("nan")


#: Atom indices and ranges joined by ``+``: ``0-11+20``.
_INDICES = r"\d+(-\d+)?(\+\d+(-\d+)?)*"


def fixed_indices(atoms: Atoms) -> np.ndarray:
    """Indices held fixed by :class:`ase.constraints.FixAtoms` constraints on ``atoms``."""
    fixed = [c.index for c in atoms.constraints if isinstance(c, FixAtoms)]
    return np.unique(np.concatenate(fixed)) if fixed else np.array([], dtype=int)


def parse_partwise(spec: str, atoms: Atoms, classes: Sequence[str] | Callable[[], Sequence[str]] | None = None) -> list[Part]:
    """Parse a schedule such as ``"outer:24,core:12"`` into :class:`Part` objects.

    A group is ``core`` (class ``Au_core``), ``outer`` (every other atom), ``all``, an atom
    class name (``S``, ``Au_unit`` ...), an element symbol, or atom indices and ranges joined
    by ``+`` (``0-11+20``). ``classes`` are the per-atom class names, needed for ``core``,
    ``outer`` and class names; a callable is asked for them only when a group needs them (and
    may raise ValueError saying why there are none).
    """
    parts = []
    symbols = np.array(atoms.get_chemical_symbols())
    n = len(atoms)
    items = [item.strip().rpartition(":") for item in spec.split(",")]
    for name, sep, steps_text in items:
        if not sep or not name or not steps_text.isdigit() or int(steps_text) < 1:
            raise ValueError(f"partwise schedule '{spec}': '{name}{sep}{steps_text}' is not GROUP:STEPS with STEPS a positive integer")
    needs_classes = any(name not in ("all", *symbols) and not re.fullmatch(_INDICES, name) for name, _, _ in items)
    if callable(classes):
        classes = classes() if needs_classes else None
    for name, _, steps_text in items:
        if name in ("core", "outer") or (classes is not None and name in set(classes)):
            if classes is None:
                raise ValueError(f"partwise group '{name}' needs atom classes; give indices instead")
            labels = np.asarray(classes)
            if name == "core":
                mask = labels == "Au_core"
            elif name == "outer":
                mask = labels != "Au_core"
            else:
                mask = labels == name
            indices = np.flatnonzero(mask)
        elif name == "all":
            indices = np.arange(n)
        elif name in set(symbols):
            indices = np.flatnonzero(symbols == name)
        elif re.fullmatch(_INDICES, name):
            chosen: list[int] = []
            for chunk in name.split("+"):
                lo, _, hi = chunk.partition("-")
                chosen.extend(range(int(lo), int(hi or lo) + 1))
            indices = np.unique(chosen)
            if indices.max() >= n:
                raise ValueError(f"partwise group '{name}': atom index {indices.max()} is out of range for {n} atoms")
        else:
            known = sorted(set(classes or []) | set(symbols) | {"core", "outer", "all"})
            raise ValueError(f"partwise group '{name}' is unknown; use one of {', '.join(known)} or atom indices like 0-11+20")
        if len(indices) == 0:
            raise ValueError(f"partwise group '{name}' selects no atoms in this structure")
        parts.append(Part(name=name, indices=indices, steps=int(steps_text)))
    return parts


@dataclass
class OptimizationResult:
    """What happened in a :func:`ForceOnlyOptimizer.run`."""

    converged: bool
    nsteps: int
    fmax: list[float] = field(default_factory=list)  # max force (eV/Angstrom) before each step and at the end
    parts: list[str] = field(default_factory=list)  # which group moved at each step
    resets: list[int] = field(default_factory=list)  # steps before which the Hessians were reset
    stopped: str = ""  # why the run ended early without converging ("" otherwise)
    best_step: int | None = None  # after an early stop: the step whose structure the atoms were returned to


class ForceOnlyOptimizer:
    """BFGS on forces only, with maximum step, Hessian resets and partwise turns.

    Parameters
    ----------
    atoms
        Structure with a calculator that provides forces (eV/Angstrom). ``FixAtoms``
        constraints are honoured: fixed atoms never move and are excluded from every group.
    maxstep
        Largest displacement of any atom in one step (Angstrom); the paper uses 0.05–0.2.
    reset_every
        Reset the BFGS Hessian approximation(s) to their initial value every this many steps
        (the paper resets every 36 steps, one round of outer 24 + core 12). ``None``: never.
    parts
        Groups that take turns (see :func:`parse_partwise`); ``None`` optimises all free
        atoms together.
    alpha
        Initial Hessian guess (eV/Angstrom^2), as in :class:`ase.optimize.BFGS`.
    trajectory, logfile
        ASE trajectory path and a text log path (``"-"`` for stdout); either may be ``None``.
    stop_when_extrapolating
        Stop (not converged) as soon as the calculator flags a free atom in
        ``results["extrapolating"]`` (the model has no data there, e.g. a pair closer than any in
        its training data), before the model's forces there move the structure further; the
        reason is in :attr:`OptimizationResult.stopped`. On by default; a calculator that sets no
        flag never stops for this.
    patience
        Stop (not converged) when the RMS force on the free atoms has not fallen below its
        lowest value for this many steps. A force field without an energy can descend forever
        along a loop of non-conservative forces (seen: a force-only model on a hot ring it never saw, RMS
        force 0.81 -> 1.63 eV/Angstrom over 30 steps while the reference energy rose 6 eV);
        ``None`` never stops for this.

    A NaN or infinite force or position always stops the run (the step and the atoms are named in
    :attr:`OptimizationResult.stopped`). The BFGS Hessian update is skipped where the curvature
    condition fails (:func:`curvature_ok`). After any early stop the atoms are returned to the
    structure with the lowest RMS force seen (:attr:`OptimizationResult.best_step`): the model's
    best estimate of a stationary point, rather than where it stopped making sense.
    """

    def __init__(
        self,
        atoms: Atoms,
        *,
        maxstep: float = 0.1,
        reset_every: int | None = None,
        parts: Sequence[Part] | None = None,
        alpha: float = 70.0,
        trajectory: str | Path | None = None,
        logfile: str | Path | None = None,
        stop_when_extrapolating: bool = True,
        patience: int | None = None,
    ):
        if maxstep <= 0:
            raise ValueError(f"maxstep must be positive (Angstrom), got {maxstep}")
        if reset_every is not None and reset_every < 1:
            raise ValueError(f"reset_every must be a positive number of steps, got {reset_every}")
        self.atoms = atoms
        self.maxstep = maxstep
        self.reset_every = reset_every
        self.alpha = alpha
        self.trajectory = trajectory
        self.logfile = logfile
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be a positive number of steps or None, got {patience}")
        self.stop_when_extrapolating = stop_when_extrapolating
        self.patience = patience
        fixed = fixed_indices(atoms)
        free = np.setdiff1d(np.arange(len(atoms)), fixed)
        if parts is None:
            parts = [Part(name="all", indices=free, steps=1)]
        self.parts = [Part(p.name, np.setdiff1d(p.indices, fixed), p.steps) for p in parts]
        for p in self.parts:
            if len(p.indices) == 0:
                raise ValueError(f"partwise group '{p.name}' has no free atoms (all are fixed by FixAtoms)")
        self._free = np.unique(np.concatenate([p.indices for p in self.parts]))
        self._optimizers = [
            _GuardedBFGS(_SubsetOptimizable(atoms, p.indices), maxstep=maxstep, alpha=alpha, logfile=None) for p in self.parts
        ]

    def reset_hessians(self) -> None:
        """Return every group's Hessian approximation to its initial value."""
        for opt in self._optimizers:
            opt.initialize()

    def _force_norms(self) -> tuple[float, float, np.ndarray]:
        """Largest and RMS force on the free atoms (eV/Angstrom), and the atoms whose position or force is not finite."""
        forces = self.atoms.get_forces()
        norms = np.sqrt((forces[self._free] ** 2).sum(axis=1))
        return float(norms.max()), float(np.sqrt((norms**2).mean())), nonfinite_atoms(self.atoms, forces)

    def _schedule(self):
        while True:
            for k, part in enumerate(self.parts):
                for _ in range(part.steps):
                    yield k

    def run(self, fmax: float = 0.05, steps: int = 200) -> OptimizationResult:
        """Optimise until the largest force on a free atom is ≤ ``fmax`` (eV/Angstrom) or ``steps`` steps."""
        result = OptimizationResult(converged=False, nsteps=0)
        with ExitStack() as stack:
            traj = stack.enter_context(Trajectory(str(self.trajectory), "w", self.atoms)) if self.trajectory else None
            if self.logfile == "-":
                out = sys.stdout
            elif self.logfile:
                out = stack.enter_context(open(self.logfile, "w"))
            else:
                out = None
            if out:
                out.write(f"{'step':>5} {'group':>10} {'fmax/eV/A':>12} reset\n")
            schedule = self._schedule()
            best_rms, best_step, best_positions = np.inf, 0, self.atoms.positions.copy()
            for step in range(steps + 1):
                current, rms, broken = self._force_norms()
                result.fmax.append(current)
                if broken.size:
                    result.stopped = (
                        f"step {step}: the position or force of atoms {describe_atoms(self.atoms, broken)} is not finite (NaN or inf)"
                    )
                    break
                if rms < best_rms:
                    best_rms, best_step, best_positions = rms, step, self.atoms.positions.copy()
                if traj is not None:
                    traj.write(self.atoms)
                if current <= fmax:
                    result.converged = True
                    break
                if step == steps:
                    break
                outside = extrapolating_atoms(self.atoms.calc, self._free) if self.stop_when_extrapolating else ()
                if len(outside):
                    result.stopped = (
                        f"step {step}: atoms {describe_atoms(self.atoms, outside)} are flagged as extrapolating "
                        "(the model has no training data for their surroundings)"
                    )
                    break
                if self.patience is not None and step - best_step >= self.patience:
                    result.stopped = (
                        f"step {step}: the RMS force has not fallen below its lowest value ({best_rms:.4f} eV/A at step {best_step}) "
                        f"for {self.patience} steps"
                    )
                    break
                reset = self.reset_every is not None and step > 0 and step % self.reset_every == 0
                if reset:
                    self.reset_hessians()
                    result.resets.append(step)
                k = next(schedule)
                if out:
                    out.write(f"{step:5d} {self.parts[k].name:>10} {current:12.6f} {'*' if reset else ''}\n")
                    out.flush()
                self._optimizers[k].step()
                result.parts.append(self.parts[k].name)
                result.nsteps = step + 1
            if result.stopped:
                self.atoms.positions = best_positions
                result.best_step = best_step
                if traj is not None:
                    traj.write(self.atoms)
        if result.stopped:
            log.warning("optimisation stopped at %s; returned to the structure of step %d (lowest RMS force)", result.stopped, best_step)
        log.info(
            "optimisation %s after %d steps, fmax %.4f eV/A, %d Hessian resets",
            "converged" if result.converged else "stopped",
            result.nsteps,
            result.fmax[-1],
            len(result.resets),
        )
        return result
