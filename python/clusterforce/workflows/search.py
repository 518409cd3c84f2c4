"""Isomer search with any ASE calculator: basin hopping, minima hopping, MD with periodic quenches,
and DART-style screening of many frames by predicted energy.

Every search feeds a :class:`~clusterforce.workflows.isomers.MinimaStore`, so each distinct minimum is kept
once with the search that found it. A relaxed structure where the model has no data (an atom the
calculator flags in ``results["extrapolating"]``, or a collapsed pair) or whose relaxation met a
NaN or infinite force is never stored: it is counted in ``store.rejected`` with one log line, and
basin hopping does not move there. Energies are in the calculator's units (eV; epsilon for
Lennard-Jones), lengths in Angstrom (sigma for Lennard-Jones).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, covalent_radii
from tqdm.auto import tqdm

from clusterforce.workflows.isomers import MinimaStore, RelaxationError, rejection_reason, relax
from clusterforce.workflows.optimize import NonFiniteError, attach_finite_check

log = logging.getLogger(__name__)

#: Nearest-neighbour distance of the Lennard-Jones pair minimum, sigma.
LJ_NEAREST = 2 ** (1 / 6)
#: Basin-hopping moves between adjustments of the step size.
ADAPT_EVERY = 50


def random_cluster(n: int, symbol: str, *, nearest: float | None = None, seed: int = 0) -> Atoms:
    """``n`` atoms at random in a sphere of about the cluster's close-packed volume.

    ``nearest`` is the nearest-neighbour distance (Angstrom; default twice the covalent radius);
    no two atoms start closer than 0.7 of it.
    """
    if n < 1:
        raise ValueError(f"a cluster needs at least one atom, got {n}")
    d = 2 * covalent_radii[atomic_numbers[symbol]] if nearest is None else nearest
    radius = 0.5 * d * (n / 0.5) ** (1 / 3)  # packing fraction 0.5: loose but compact
    rng = np.random.default_rng(seed)
    pos: list[np.ndarray] = []
    while len(pos) < n:
        x = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(x) <= radius and all(np.linalg.norm(x - y) >= 0.7 * d for y in pos):
            pos.append(x)
    return Atoms(symbol * n if len(symbol) == 1 else [symbol] * n, positions=np.array(pos))


def perturb(atoms: Atoms, step: float, rng: np.random.Generator, containment: float) -> Atoms:
    """Every atom moved uniformly within a sphere of radius ``step``; atoms beyond ``containment``
    from the centre are pulled back onto it (keeps a free cluster from evaporating)."""
    trial = atoms.copy()
    v = rng.normal(size=(len(atoms), 3))
    v *= (step * rng.random(len(atoms)) ** (1 / 3) / np.linalg.norm(v, axis=1))[:, None]
    trial.positions += v
    centre = trial.positions.mean(axis=0)
    r = np.linalg.norm(trial.positions - centre, axis=1)
    far = r > containment
    trial.positions[far] = centre + (trial.positions[far] - centre) * (containment / r[far])[:, None]
    return trial


def containment_radius(atoms: Atoms) -> float:
    """Radius beyond which a perturbed atom is pulled back: the cluster's radius plus 2 neighbour shells."""
    centred = atoms.positions - atoms.positions.mean(axis=0)
    r = np.linalg.norm(centred, axis=1).max()
    d = np.sort(np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1), axis=1)[:, 1].mean() if len(atoms) > 1 else 1.0
    return r + 2.0 * d


def quench(atoms: Atoms, calc: Calculator, store: MinimaStore, found_by: str, step: int, *, fmax: float) -> tuple[Atoms, float] | None:
    """Relax ``atoms`` (a copy) and store the minimum: its structure and energy, or None when it was
    rejected (extrapolating, collapsed, or a NaN in the relaxation; counted in ``store.rejected``)."""
    try:
        relaxed, energy, _ = relax(atoms, calc, fmax=fmax)
    except NonFiniteError as exc:
        store.reject("non-finite", found_by, step, str(exc))
        return None
    return (relaxed, energy) if store.consider(relaxed, energy, found_by, step) else None


def basin_hopping(
    start: Atoms,
    calc: Calculator,
    *,
    steps: int,
    kt: float,
    step_size: float,
    seed: int = 0,
    fmax: float = 1e-3,
    store: MinimaStore | None = None,
    target: float | None = None,
    progress: bool = True,
) -> MinimaStore:
    """Basin hopping (Wales and Doye): perturb, relax, accept by the Metropolis rule at ``kt``.

    Parameters
    ----------
    kt
        Metropolis temperature in energy units (eV, or epsilon).
    step_size
        Largest displacement of an atom per move (Angstrom, or sigma).
    target
        Stop early once a minimum at or below this energy is found.
    """
    store = MinimaStore() if store is None else store
    rng = np.random.default_rng(seed)
    current, energy, _ = relax(start, calc, fmax=fmax)
    reason, message = rejection_reason(current)
    if reason:
        raise RelaxationError(f"basin hopping: the relaxed start structure is rejected ({reason}): {message}; start from another structure")
    store.add(current, energy, "basin-hopping", 0)
    containment = containment_radius(current)
    accepted = 0
    for step in tqdm(range(1, steps + 1), desc="basin hopping", disable=not progress, leave=False):
        kept = quench(perturb(current, step_size, rng, containment), calc, store, "basin-hopping", step, fmax=fmax)
        if kept is not None and (kept[1] <= energy or rng.random() < np.exp(-(kept[1] - energy) / kt)):
            current, energy = kept
            accepted += 1
        if step % ADAPT_EVERY == 0:
            # Wales and Doye keep the acceptance ratio near 0.5 by scaling the step.
            step_size *= 1.1 if accepted > ADAPT_EVERY // 2 else 1 / 1.1
            accepted = 0
        if target is not None and store.lowest.energy <= target + store.energy_tol:
            log.info("basin hopping reached %.6f at step %d", store.lowest.energy, step)
            break
    return store


def minima_hopping(
    start: Atoms,
    calc: Calculator,
    *,
    steps: int,
    temperature: float,
    fmax: float = 1e-3,
    store: MinimaStore | None = None,
    workdir: str | Path | None = None,
) -> MinimaStore:
    """Minima hopping (Goedecker) through ASE's implementation: MD escapes at an adaptive
    temperature (K, or reduced), each minimum relaxed and stored; ``steps`` minima are visited."""
    from ase.io import read
    from ase.optimize.minimahopping import MinimaHopping

    store = MinimaStore() if store is None else store
    atoms = start.copy()
    atoms.calc = calc
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() if workdir is None else contextlib.nullcontext(str(workdir)) as tmp:
        traj = Path(tmp) / "minima.traj"
        hop = MinimaHopping(atoms, T0=temperature, fmax=max(fmax, 1e-3), minima_traj=str(traj), logfile=str(Path(tmp) / "hop.log"))
        hop(totalsteps=steps)
        for i, m in enumerate(read(traj, ":")):
            quench(m, calc, store, "minima-hopping", i, fmax=fmax)
    return store


def md_quench(
    start: Atoms,
    calc: Calculator,
    *,
    steps: int,
    temperature: float,
    quench_every: int = 100,
    timestep: float = 2.0,
    seed: int = 0,
    fmax: float = 1e-3,
    store: MinimaStore | None = None,
    progress: bool = True,
) -> MinimaStore:
    """Langevin MD at ``temperature`` (K) with a quench (local relaxation) every ``quench_every`` steps.

    ``timestep`` in fs. For Lennard-Jones reduced units, energies are read as eV and lengths as
    Angstrom, so ``temperature`` is k_B T / epsilon times 11604.5.
    """
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    store = MinimaStore() if store is None else store
    atoms = start.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=0.01 / units.fs, rng=rng)
    attach_finite_check(dyn, atoms, "md-quench")  # the MD cannot go on from a NaN: the search stops
    for block in tqdm(range(steps // quench_every), desc="md-quench", disable=not progress, leave=False):
        dyn.run(quench_every)
        quench(atoms, calc, store, "md-quench", (block + 1) * quench_every, fmax=fmax)
    return store


def screen(frames: Sequence[Atoms], predict_energy: Callable[[Atoms], float], *, bins: int) -> list[int]:
    """DART-style screening: indices of one representative frame per predicted-energy bin.

    The range of predicted energies is cut into ``bins`` equal bins; from each non-empty bin the
    frame with the lowest predicted energy represents it. Lowest bin first.
    """
    if bins < 1:
        raise ValueError(f"--bins must be at least 1, got {bins}")
    energies = np.array([predict_energy(a) for a in frames])
    edges = np.linspace(energies.min(), energies.max(), bins + 1)
    which = np.clip(np.digitize(energies, edges[1:-1]), 0, bins - 1)
    reps = []
    for b in range(bins):
        members = np.flatnonzero(which == b)
        if members.size:
            reps.append(int(members[np.argmin(energies[members])]))
    return reps
