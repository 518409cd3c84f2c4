"""Local minima of clusters: relaxation, a permutation-invariant structural distance, and a store
that keeps each distinct minimum once (and writes them to an ASE database).

Two minima are the same isomer when their energies agree within ``energy_tol`` and their
structures within ``rmsd_tol`` (Angstrom, or sigma for Lennard-Jones) after the best rotation,
translation, permutation of like atoms and (by default) reflection: mirror images have the same
energy and count as one isomer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator
from scipy.optimize import linear_sum_assignment, minimize
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from clusterforce.data.validate import close_pairs
from clusterforce.descriptors.symmetry import point_group
from clusterforce.workflows.optimize import NonFiniteError, check_finite, describe_atoms, extrapolating_atoms

log = logging.getLogger(__name__)


#: Two atoms of a minimum closer than this (Angstrom) mean the model collapsed the structure.
COLLAPSE_DISTANCE = 0.5


class RelaxationError(RuntimeError):
    """A local optimisation that could not be carried out (e.g. a calculator failure)."""


def relax(atoms: Atoms, calc: Calculator, *, fmax: float = 1e-3, steps: int = 2000) -> tuple[Atoms, float, bool]:
    """Local minimum of the energy from ``atoms`` (a copy is moved; ``atoms`` is untouched).

    Limited-memory BFGS on the energy with analytic forces (scipy). Converged when every force
    component is below ``fmax`` (eV/Angstrom, or the calculator's units). Needs a calculator that
    gives an energy; force-only models (``dml``) cannot rank minima and are refused.

    Returns the relaxed copy (with a single-point calculator holding its energy and forces), its
    energy and whether it converged.
    """
    work = atoms.copy()
    work.calc = calc
    if "energy" not in getattr(calc, "implemented_properties", ("energy",)):
        raise ValueError(f"{type(calc).__name__} gives no energy; isomer search needs an energy model (a gap model, a reference)")
    evaluations = 0

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        work.positions = x.reshape(-1, 3)
        energy = work.get_potential_energy()
        forces = work.get_forces()
        where = f"local relaxation, force evaluation {evaluations}"
        if not np.isfinite(energy):
            raise NonFiniteError(f"{where}: the energy is {energy}")
        check_finite(work, forces, where)
        return energy, -forces.ravel()

    # One BLAS thread: L-BFGS-B's vectors are 3N long, and a threaded BLAS on a busy machine
    # made each iteration 6x slower (measured on 13 atoms, scipy 1.17, 2 cores).
    with threadpool_limits(1, user_api="blas"):
        result = minimize(
            fun, work.positions.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": steps, "gtol": fmax, "ftol": 0.0, "maxcor": 30}
        )
    work.positions = result.x.reshape(-1, 3)
    energy, grad = fun(result.x)
    flags = getattr(calc, "results", {}).get("extrapolating")
    work.calc = SinglePointCalculator(work, energy=energy, forces=-grad.reshape(-1, 3))
    if flags is not None:  # kept beside energy and forces for rejection_reason (not an ASE property)
        work.calc.results["extrapolating"] = np.array(flags, dtype=bool)
    return work, float(energy), bool(np.max(np.abs(grad)) <= fmax)


def rejection_reason(relaxed: Atoms, *, min_distance: float = COLLAPSE_DISTANCE) -> tuple[str, str]:
    """Why a relaxed structure must not be stored as a minimum: a short key (``"extrapolating"``,
    ``"collapsed"``) and a message naming the atoms; ``("", "")`` if it may be stored.

    A minimum is rejected where the model has no data: an atom its calculator flags in
    ``results["extrapolating"]`` (as kept by :func:`relax`), or two atoms closer than
    ``min_distance`` (Angstrom), where every model has collapsed (seen: a gap model on gold
    relaxed a random start to -979.9 eV with a pair at 0.00 Angstrom).
    """
    flagged = extrapolating_atoms(relaxed.calc)
    if flagged.size:
        return (
            "extrapolating",
            f"atoms {describe_atoms(relaxed, flagged)} are flagged as extrapolating (no training data for their surroundings)",
        )
    i, j, d = close_pairs(relaxed, min_distance)
    if d.size:
        return "collapsed", f"atoms {i[0]} and {j[0]} are {d[0]:.3f} Angstrom apart (closer than {min_distance} Angstrom)"
    return "", ""


def _kabsch(p: np.ndarray, q: np.ndarray, allow_mirror: bool) -> np.ndarray:
    """Orthogonal matrix R minimising |p R - q| (p, q centred, rows = atoms)."""
    u, _, vt = np.linalg.svd(p.T @ q)
    if not allow_mirror and np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def _assign(p: np.ndarray, q: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """Permutation perm (of q's atoms) matching each atom of p to a like atom of q, least squares."""
    perm = np.empty(len(p), dtype=int)
    for z in np.unique(numbers):
        idx = np.flatnonzero(numbers == z)
        cost = ((p[idx, None, :] - q[None, idx, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        perm[idx[rows]] = idx[cols]
    return perm


def structure_distance(a: Atoms, b: Atoms, *, allow_mirror: bool = True, n_random: int = 24, seed: int = 0) -> float:
    """RMSD (Angstrom) between two clusters after the best rotation, translation and permutation.

    Returns ``inf`` for different compositions. Starting orientations: the 8 sign choices of the
    principal axes plus ``n_random`` random rotations (principal axes are arbitrary for
    symmetric clusters); from each, permutation (Hungarian, per element) and rotation (Kabsch)
    are alternated until the permutation no longer changes.
    """
    if sorted(a.numbers) != sorted(b.numbers):
        return float("inf")
    # b's atoms sorted like a's so that _assign compares like elements.
    order_a, order_b = np.argsort(a.numbers, kind="stable"), np.argsort(b.numbers, kind="stable")
    numbers = a.numbers[order_a]
    p = a.positions[order_a] - a.positions.mean(axis=0)
    q = b.positions[order_b] - b.positions.mean(axis=0)

    def axes(x: np.ndarray) -> np.ndarray:
        return np.linalg.eigh(x.T @ x)[1]

    starts = [axes(p) @ np.diag(s) @ axes(q).T for s in np.array(np.meshgrid([1, -1], [1, -1], [1, -1])).T.reshape(-1, 3)]
    starts += list(Rotation.random(n_random, random_state=seed).as_matrix())
    if not allow_mirror:
        starts = [r for r in starts if np.linalg.det(r) > 0]
    best = np.inf
    for rot in starts:
        perm = None
        for _ in range(20):
            new = _assign(p @ rot, q, numbers)
            if perm is not None and np.array_equal(new, perm):
                break
            perm = new
            rot = _kabsch(p, q[perm], allow_mirror)
        best = min(best, float(np.sqrt(np.mean(((p @ rot - q[perm]) ** 2).sum(-1)))))
        if best < 1e-6:
            break
    return best


@dataclass
class Minimum:
    """One distinct local minimum: structure, energy (eV or epsilon), which search found it, when."""

    atoms: Atoms
    energy: float
    found_by: str
    step: int
    hits: int = 1


@dataclass
class MinimaStore:
    """Distinct minima, lowest first; a new minimum equal to a stored one only counts a hit.

    Parameters
    ----------
    energy_tol
        Minima whose energies differ by more than this (eV, or epsilon) are distinct.
    rmsd_tol
        Structural distance (Angstrom, or sigma) below which two minima are the same.
    """

    energy_tol: float = 1e-3
    rmsd_tol: float = 0.05
    minima: list[Minimum] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)  # structures never stored, by reason

    def reject(self, reason: str, found_by: str, step: int, message: str) -> None:
        """Count a structure that is not stored (``reason``: a short key such as ``"extrapolating"``) with one log line."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        log.warning("%s step %d rejected (%s): %s", found_by, step, reason, message)

    def consider(self, atoms: Atoms, energy: float, found_by: str, step: int = 0) -> bool:
        """Store ``atoms`` (a :func:`relax` result) unless :func:`rejection_reason` rejects it; whether it was kept."""
        reason, message = rejection_reason(atoms)
        if reason:
            self.reject(reason, found_by, step, message)
            return False
        self.add(atoms, energy, found_by, step)
        return True

    def add(self, atoms: Atoms, energy: float, found_by: str, step: int = 0) -> tuple[Minimum, bool]:
        """Store ``atoms`` unless an equal minimum is stored; returns the stored minimum and whether it is new."""
        for m in self.minima:
            if abs(m.energy - energy) <= self.energy_tol and structure_distance(m.atoms, atoms) <= self.rmsd_tol:
                m.hits += 1
                return m, False
        new = Minimum(atoms.copy(), float(energy), found_by, int(step))
        self.minima.append(new)
        self.minima.sort(key=lambda m: m.energy)
        return new, True

    @property
    def lowest(self) -> Minimum | None:
        return self.minima[0] if self.minima else None

    def write_db(self, path: str | Path, *, reference: str = "", reoptimized: Sequence[Reoptimized] = ()) -> None:
        """Write every minimum to the ASE database ``path`` (energy, found_by, step, hits, rank, point
        group), with the reference energy and the move of its re-optimisation where there is one."""
        from ase.db import connect

        extra = {
            r.rank: {"reference_energy": r.reference_energy, "reference_move": r.move, "reference_converged": r.converged}
            for r in reoptimized
        }
        with connect(str(path), append=False) as db:
            for rank, m in enumerate(self.minima):
                atoms = m.atoms.copy()
                atoms.calc = SinglePointCalculator(atoms, energy=m.energy)
                db.write(
                    atoms,
                    found_by=m.found_by,
                    step=m.step,
                    hits=m.hits,
                    rank=rank,
                    reference=reference,
                    point_group=point_group(m.atoms),
                    **extra.get(rank, {}),
                )


@dataclass
class Reoptimized:
    """A stored minimum relaxed again with a reference calculator."""

    rank: int  # position in the store (0 = lowest by the search's energy)
    energy: float  # the search's energy (eV)
    reference_energy: float  # reference energy after relaxing with the reference (eV)
    move: float  # structural distance between the two minima (Angstrom)
    converged: bool
    atoms: Atoms


def reoptimize(store: MinimaStore, reference: Calculator, k: int, *, fmax: float = 0.01, steps: int = 500) -> list[Reoptimized]:
    """Relax the ``k`` lowest minima of ``store`` with ``reference`` (a model's minima checked by DFT or
    GFN1-xTB). A minimum whose reference relaxation fails (e.g. SCF) is left out with a log line."""
    out = []
    for rank, m in enumerate(store.minima[:k]):
        try:
            relaxed, energy, converged = relax(m.atoms, reference, fmax=fmax, steps=steps)
        except Exception as exc:  # a reference failure skips that minimum, the others still count
            log.warning("re-optimisation of minimum %d failed (%s); left out", rank, exc)
            continue
        out.append(Reoptimized(rank, m.energy, energy, structure_distance(m.atoms, relaxed), converged, relaxed))
    return out
