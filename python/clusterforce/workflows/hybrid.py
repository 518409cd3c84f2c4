"""Hybrid optimisation: model steps where the model can be trusted, reference single points to
check and correct them (the optimisation the OAMLM paper's conclusion proposes).

The optimiser keeps a *checkpoint*: the last structure whose reference energy E_ref and forces
F_ref are known. From it, it takes quasi-Newton steps on the corrected model force

    F(x) = F_model(x) + c(x),

where the correction c interpolates the observed errors c_k = F_ref(x_k) - F_model(x_k) of the
model at the structures the reference has labelled (accepted and rejected alike): c(x) = c_ckpt
plus the posterior mean of a Gaussian process on the deviations c_k - c_ckpt. The GP models the
error as the gradient of a smooth residual energy (squared-exponential kernel of length
``correction_length`` in Cartesian coordinates, as ASE's GPMin), so F equals the reference force
at every labelled structure and takes its variation between them from the model; a rejected trial
teaches the surrogate where it was wrong instead of being thrown away. The BFGS Hessian is built
from differences of the corrected force.

A segment ends after ``check_every`` model steps, when it leaves the trust radius around the
checkpoint, when the model flags an atom as extrapolating (or its per-atom uncertainty passes
``uncertainty_threshold``), or when the corrected forces are converged. Then one reference single
point decides:

- lower reference energy: the new structure becomes the checkpoint and the trust radius grows;
- higher: the segment is rejected, the structure returns to the checkpoint and the trust radius
  is halved.

So the reference energy of the checkpoints never rises, and the optimisation converges on the
reference forces (fmax is checked on F_ref). Reference frames are kept for adding to the model.

A BFGS update that fails the curvature condition is skipped (:func:`~clusterforce.workflows.optimize.curvature_ok`).
A NaN or infinite model force stops the run at the last checkpoint, naming the model step; a
non-finite reference result rejects its trial like any other reference failure.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import Trajectory

from clusterforce.workflows.optimize import NonFiniteError, check_finite, curvature_ok, extrapolating_atoms, fixed_indices

log = logging.getLogger(__name__)


@dataclass
class HybridResult:
    """What a :meth:`HybridOptimizer.run` did; energies in eV, forces in eV/Angstrom."""

    converged: bool = False
    model_steps: int = 0
    reference_calls: int = 0
    reference_energies: list[float] = field(default_factory=list)  # per reference call
    accepted: list[bool] = field(default_factory=list)  # per reference call after the first
    reference_fmax: list[float] = field(default_factory=list)  # per reference call
    trust_radius: list[float] = field(default_factory=list)  # Angstrom, before each segment
    frames: list[Atoms] = field(default_factory=list)  # every reference-labelled structure
    stopped: str = ""

    @property
    def start_energy(self) -> float:
        return self.reference_energies[0]

    @property
    def final_energy(self) -> float:
        """Reference energy of the final structure (the last accepted checkpoint)."""
        best = self.reference_energies[0]
        for e, ok in zip(self.reference_energies[1:], self.accepted):
            if ok:
                best = e
        return best


class ForceCorrection:
    """Gaussian-process interpolation of the model's force error between labelled structures.

    The error c(x) = F_ref(x) - F_model(x) (eV/Angstrom, flattened free coordinates) is modelled as
    minus the gradient of a residual energy with a squared-exponential prior of length ``length``
    (Angstrom), conditioned on the errors observed at the ``memory`` most recent structures, around
    the mean ``c(x_ckpt)``. Only gradient observations enter: a force-only model has no energy to
    subtract from the reference one.
    """

    def __init__(self, length: float = 0.4, memory: int = 20, noise: float = 1e-3):
        self.length, self.memory, self.noise = length, memory, noise
        self.points: list[np.ndarray] = []
        self.errors: list[np.ndarray] = []
        self.mean = np.zeros(0)
        self._alpha = np.zeros((0, 0))

    def add(self, x: np.ndarray, error: np.ndarray) -> None:
        self.points = [*self.points, x.copy()][-self.memory :]
        self.errors = [*self.errors, error.copy()][-self.memory :]

    def condition(self, mean: np.ndarray) -> None:
        """Fix the prior mean (the checkpoint's error) and solve for the GP weights."""
        self.mean = mean.copy()
        x = np.array(self.points)
        n, d = x.shape
        diff = x[:, None, :] - x[None, :, :]
        k = np.exp(-0.5 * (diff**2).sum(axis=2) / self.length**2)
        # cov(dr/dx_i at a, dr/dx_j at b) = k (delta_ij / l^2 - d_i d_j / l^4), d = a - b
        cov = np.einsum("ab,ij->aibj", k, np.eye(d) / self.length**2) - np.einsum("ab,abi,abj->aibj", k, diff, diff) / self.length**4
        cov = cov.reshape(n * d, n * d) + (self.noise / self.length) ** 2 * np.eye(n * d)
        rhs = (np.array(self.errors) - mean).ravel()
        self._alpha = np.linalg.solve(cov, rhs).reshape(n, d)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        diff = x - np.array(self.points)
        k = np.exp(-0.5 * (diff**2).sum(axis=1) / self.length**2)
        proj = (diff * self._alpha).sum(axis=1)
        return self.mean + (k @ self._alpha) / self.length**2 - (k * proj) @ diff / self.length**4


class HybridOptimizer:
    """Optimise ``atoms`` with a model calculator, checked and corrected by a reference calculator.

    Parameters
    ----------
    atoms
        Structure to optimise (moved in place; ``FixAtoms`` constraints honoured).
    model
        Calculator giving forces (eV/Angstrom) cheaply, e.g. :class:`clusterforce.Calculator`;
        may flag atoms in ``results["extrapolating"]`` and give ``results["uncertainty"]``.
    reference
        Calculator giving energy (eV) and forces, e.g. GFN1-xTB.
    maxstep
        Largest displacement of an atom per model step (Angstrom).
    check_every
        Model steps between reference checks at most.
    trust_radius
        Initial largest displacement of an atom from the checkpoint within a segment (Angstrom);
        grows by 1.5 on accepted segments up to ``max_trust_radius`` and halves on rejected ones.
    uncertainty_threshold
        End a segment when an atom's ``results["uncertainty"]`` passes this value (the model's
        uncertainty units); ``None`` ignores the uncertainty.
    alpha
        Initial Hessian guess (eV/Angstrom^2), as ASE's BFGS.
    correction_length
        Length scale (Angstrom, in the space of all free coordinates) over which an observed model
        error informs the correction; ASE's GPMin uses 0.4 for its own GP.
    on_reference
        Called with every reference-labelled structure (a copy carrying energy and forces), e.g.
        to add it to the model's data.
    """

    def __init__(
        self,
        atoms: Atoms,
        model: Calculator,
        reference: Calculator,
        *,
        maxstep: float = 0.1,
        check_every: int = 8,
        trust_radius: float = 0.3,
        max_trust_radius: float = 1.0,
        uncertainty_threshold: float | None = None,
        alpha: float = 70.0,
        correction_length: float = 0.4,
        trajectory: str | Path | None = None,
        logfile: str | Path | None = None,
        on_reference: Callable[[Atoms], None] | None = None,
    ):
        if maxstep <= 0 or trust_radius <= 0 or check_every < 1:
            raise ValueError("maxstep and trust_radius (Angstrom) must be positive and check_every at least 1")
        self.atoms = atoms
        self.model = model
        self.reference = reference
        self.maxstep = maxstep
        self.check_every = check_every
        self.radius = trust_radius
        self.max_radius = max_trust_radius
        self.uncertainty_threshold = uncertainty_threshold
        self.alpha = alpha
        self.correction_length = correction_length
        self.trajectory = trajectory
        self.logfile = logfile
        self.on_reference = on_reference
        self.free = np.setdiff1d(np.arange(len(atoms)), fixed_indices(atoms))

    def _model_forces(self, positions: np.ndarray, where: str) -> tuple[np.ndarray, str]:
        """Model forces on the free atoms (flattened) and why the model is unsure there ('' if it is not);
        :class:`NonFiniteError` naming ``where`` for a NaN or infinite force."""
        probe = self.atoms.copy()
        probe.set_constraint()
        probe.positions = positions
        probe.calc = self.model
        forces = probe.get_forces()
        check_finite(probe, forces, where)
        forces = forces[self.free].ravel()
        results = self.model.results
        if len(extrapolating_atoms(self.model, self.free)):
            return forces, "extrapolating"
        unc = results.get("uncertainty")
        if self.uncertainty_threshold is not None and unc is not None and np.max(np.asarray(unc)[self.free]) > self.uncertainty_threshold:
            return forces, "uncertain"
        return forces, ""

    def _reference(self, positions: np.ndarray, result: HybridResult) -> tuple[float, np.ndarray]:
        probe = self.atoms.copy()
        probe.set_constraint()
        probe.positions = positions
        probe.calc = self.reference
        energy = float(probe.get_potential_energy())
        forces = probe.get_forces()
        if not np.isfinite(energy):
            raise NonFiniteError(f"reference call {result.reference_calls + 1}: the reference energy is {energy}")
        check_finite(probe, forces, f"reference call {result.reference_calls + 1}")
        frame = probe.copy()
        frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces)
        result.frames.append(frame)
        result.reference_calls += 1
        result.reference_energies.append(energy)
        fmax = float(np.sqrt((forces[self.free] ** 2).sum(axis=1)).max())
        result.reference_fmax.append(fmax)
        if self.on_reference is not None:
            self.on_reference(frame)
        return energy, forces[self.free].ravel()

    def _step(self, hessian: np.ndarray, force: np.ndarray) -> np.ndarray:
        """Quasi-Newton step (free coordinates, flattened) scaled so no atom moves more than maxstep."""
        omega, v = np.linalg.eigh(hessian)
        dx = v @ ((force @ v) / np.abs(omega))
        longest = np.sqrt((dx.reshape(-1, 3) ** 2).sum(axis=1)).max()
        return dx * (self.maxstep / longest) if longest > self.maxstep else dx

    def run(self, fmax: float = 0.05, steps: int = 150) -> HybridResult:
        """Optimise until the reference max force is <= ``fmax`` (eV/Angstrom) or ``steps`` model steps."""
        result = HybridResult()
        with ExitStack() as stack:
            traj = stack.enter_context(Trajectory(str(self.trajectory), "w")) if self.trajectory else None
            out = sys.stdout if self.logfile == "-" else (stack.enter_context(open(self.logfile, "w")) if self.logfile else None)
            if out:
                out.write(f"{'call':>4} {'model steps':>11} {'E_ref/eV':>14} {'fmax_ref':>9} {'radius/A':>8} verdict\n")
            x = self.atoms.positions.copy()
            free = self.free
            energy, f_ref = self._reference(x, result)
            checkpoint_fmax = result.reference_fmax[-1]
            f_model, _ = self._model_forces(x, "model forces at the start")
            correction = ForceCorrection(self.correction_length)
            correction.add(x[free].ravel(), f_ref - f_model)
            correction.condition(f_ref - f_model)
            hessian = np.eye(3 * len(free)) * self.alpha
            if out:
                out.write(f"{1:4d} {0:11d} {energy:14.6f} {result.reference_fmax[-1]:9.4f} {self.radius:8.3f} start\n")
            try:
                while True:
                    if checkpoint_fmax <= fmax:
                        result.converged = True
                        break
                    if result.model_steps >= steps:
                        break
                    result.trust_radius.append(self.radius)
                    xs, fs = x.copy(), f_ref
                    why = "checked"
                    for _ in range(self.check_every):
                        dx = self._step(hessian, fs)
                        trial = xs.copy()
                        trial[free] += dx.reshape(-1, 3)
                        # Stay within the trust radius of the checkpoint: scale the step back onto it.
                        reach = np.sqrt(((trial[free] - x[free]) ** 2).sum(axis=1)).max()
                        hit_boundary = reach >= self.radius
                        if hit_boundary:
                            trial[free] = x[free] + (trial[free] - x[free]) * (self.radius / reach)
                            dx = (trial[free] - xs[free]).ravel()
                        fm, unsure = self._model_forces(trial, f"model step {result.model_steps + 1}")
                        fs_new = fm + correction(trial[free].ravel())
                        result.model_steps += 1
                        y = fs - fs_new
                        if curvature_ok(dx, y):
                            hs = hessian @ dx
                            hessian += np.outer(y, y) / (dx @ y) - np.outer(hs, hs) / (dx @ hs)
                        xs, fs = trial, fs_new
                        if traj is not None:
                            frame = self.atoms.copy()
                            frame.positions = xs
                            traj.write(frame)
                        done = np.sqrt((fs.reshape(-1, 3) ** 2).sum(axis=1)).max() <= 0.5 * fmax
                        if unsure or hit_boundary or done or result.model_steps >= steps:
                            why = unsure or ("trust radius" if hit_boundary else ("model converged" if done else "step budget"))
                            break
                    try:
                        e_new, f_new = self._reference(xs, result)
                    except Exception as exc:  # a reference failure (e.g. SCF) at a trial structure rejects it
                        log.warning("reference failed at the trial structure after model step %d (%s); rejected", result.model_steps, exc)
                        e_new, f_new = np.inf, f_ref
                        result.reference_calls += 1
                        result.reference_energies.append(np.nan)
                        result.reference_fmax.append(np.nan)
                        why = f"reference failed: {exc}"
                    else:
                        correction.add(xs[free].ravel(), f_new - fm)
                    accepted = e_new < energy
                    result.accepted.append(accepted)
                    if accepted:
                        x, energy, f_ref = xs, e_new, f_new
                        correction.condition(f_new - fm)
                        checkpoint_fmax = result.reference_fmax[-1]
                        self.radius = min(self.radius * 1.5, self.max_radius)
                    else:
                        self.radius *= 0.5
                        if np.isfinite(e_new):  # the rejected trial's error was added: solve with it
                            correction.condition(correction.mean)
                        # The model's curvature led uphill: start the next segment from the initial guess.
                        hessian = np.eye(3 * len(free)) * self.alpha
                    if out:
                        verdict = "accepted" if accepted else "rejected"
                        out.write(
                            f"{result.reference_calls:4d} {result.model_steps:11d} {e_new:14.6f} "
                            f"{result.reference_fmax[-1]:9.4f} {self.radius:8.3f} {verdict} ({why})\n"
                        )
                        out.flush()
                    if self.radius < 1e-3:
                        result.stopped = "trust radius below 0.001 Angstrom: the model gives no downhill direction here"
                        break
            except NonFiniteError as exc:
                result.stopped = f"{exc}; returned to the last checkpoint"
                log.warning("hybrid optimisation stopped at %s", result.stopped)
            self.atoms.positions = x
        log.info(
            "hybrid optimisation %s: %d model steps, %d reference calls, reference energy %.4f -> %.4f eV",
            "converged" if result.converged else "stopped",
            result.model_steps,
            result.reference_calls,
            result.start_energy,
            result.final_energy,
        )
        return result
