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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, covalent_radii
from scipy.spatial.transform import Rotation
from tqdm.auto import tqdm

from clusterforce.workflows.isomers import MinimaStore, RelaxationError, rejection_reason, relax
from clusterforce.workflows.optimize import NonFiniteError, attach_finite_check

log = logging.getLogger(__name__)

#: Nearest-neighbour distance of the Lennard-Jones pair minimum, sigma.
LJ_NEAREST = 2 ** (1 / 6)
#: Basin-hopping displacement moves between adjustments of the step size.
ADAPT_EVERY = 50
#: Neighbours of an atom are closer than this multiple of the cluster's nearest-neighbour distance
#: (between the first and second shells of close-packed and icosahedral clusters: 1 and sqrt(2)).
NEIGHBOUR_SHELL = 1.25
#: Basin-hopping moves and their default probabilities: random displacement of every atom (Wales
#: and Doye), the least-coordinated atoms moved to high-coordination surface sites (Rondina and
#: Da Silva 2013's surface move) and a twist of one half of the cluster against the other.
MOVES = ("displace", "surface", "twist")
DEFAULT_MOVES = {"displace": 0.5, "surface": 0.35, "twist": 0.15}


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


def nearest_distance(atoms: Atoms) -> float:
    """Median nearest-neighbour distance of a cluster (Angstrom, or sigma)."""
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def coordination(positions: np.ndarray, nearest: float) -> np.ndarray:
    """Neighbours of each atom within :data:`NEIGHBOUR_SHELL` times ``nearest`` (lengths in Angstrom)."""
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return (d < NEIGHBOUR_SHELL * nearest).sum(axis=1) - 1


def surface_site(positions: np.ndarray, nearest: float, rng: np.random.Generator, tries: int) -> np.ndarray:
    """The best-coordinated of ``tries`` random points on the surface of a cluster (Angstrom).

    Along a random ray from the centre, the surface point is the outermost one at ``nearest`` from
    some atom: it touches that atom and is no closer than ``nearest`` to any. Of the ``tries``
    points the one with most atoms within the neighbour shell wins (a hollow site, not a top site).
    """
    centre = positions.mean(axis=0)
    x = positions - centre
    best, best_count = None, -1
    for _ in range(tries):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        along = x @ u
        across2 = (x**2).sum(axis=1) - along**2
        hit = across2 < nearest**2
        t = (along[hit] + np.sqrt(nearest**2 - across2[hit])).max() if hit.any() else 0.0
        site = t * u
        count = int((np.linalg.norm(x - site, axis=1) < NEIGHBOUR_SHELL * nearest).sum())
        if count > best_count:
            best, best_count = site, count
    return centre + best


def surface_move(atoms: Atoms, rng: np.random.Generator, *, tries: int = 20) -> Atoms:
    """Move 1 to N/10 of the least-coordinated atoms to high-coordination surface sites (a copy).

    Atoms are drawn with weight exp(-(c - c_min)) of their coordination c, so the loosest atoms
    move most often but not always the same one; each goes to :func:`surface_site` of the others
    (Rondina and Da Silva, J. Chem. Inf. Model. 53, 2282 (2013): moves of surface atoms find the
    global minima of metal clusters where Cartesian displacements of every atom do not).
    """
    trial = atoms.copy()
    n = len(atoms)
    if n < 3:
        return trial
    nearest = nearest_distance(atoms)
    c = coordination(atoms.positions, nearest)
    weights = np.exp(-(c - c.min()).astype(float))
    k = int(rng.integers(1, max(1, n // 10) + 1))
    moved = rng.choice(n, size=k, replace=False, p=weights / weights.sum())
    keep = np.setdiff1d(np.arange(n), moved)
    positions = trial.positions
    for i in moved:
        positions[i] = surface_site(positions[keep], nearest, rng, tries)
        keep = np.append(keep, i)
    trial.positions = positions
    return trial


def twist_move(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """Rotate the atoms on one side of a random plane through the centre about the plane's normal (a copy).

    The angle is uniform in 30-330 degrees: a rearrangement of a whole half at once, which random
    displacements of every atom reach only through many uphill steps.
    """
    trial = atoms.copy()
    centre = trial.positions.mean(axis=0)
    normal = rng.normal(size=3)
    normal /= np.linalg.norm(normal)
    x = trial.positions - centre
    upper = x @ normal > 0
    rotation = Rotation.from_rotvec(np.deg2rad(rng.uniform(30.0, 330.0)) * normal)
    trial.positions[upper] = centre + rotation.apply(x[upper])
    return trial


def _move_probabilities(moves: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    unknown = set(moves) - set(MOVES)
    if unknown:
        raise ValueError(f"unknown basin-hopping move(s) {sorted(unknown)}; choose from {', '.join(MOVES)}")
    names = [m for m in MOVES if moves.get(m, 0.0) > 0]
    if not names or any(w < 0 for w in moves.values()):
        raise ValueError(f"basin-hopping move probabilities must be >= 0 and not all 0, got {dict(moves)}")
    w = np.array([moves[m] for m in names], dtype=float)
    return names, w / w.sum()


@dataclass
class _Walker:
    """One basin-hopping walker: its current minimum, energy, step size and stagnation count."""

    atoms: Atoms
    energy: float
    step_size: float
    containment: float
    best: float
    since_best: int = 0
    displaced: int = 0
    displaced_accepted: int = 0


def _new_walker(start: Atoms, calc: Calculator, store: MinimaStore, step: int, step_size: float, fmax: float) -> _Walker:
    """Relax ``start`` (it must not be rejected) and store it; a walker there."""
    current, energy, _ = relax(start, calc, fmax=fmax)
    reason, message = rejection_reason(current)
    if reason:
        raise RelaxationError(f"basin hopping: the relaxed start structure is rejected ({reason}): {message}; start from another structure")
    store.add(current, energy, "basin-hopping", step)
    return _Walker(current, energy, step_size, containment_radius(current), energy)


def _random_like(atoms: Atoms, nearest: float, rng: np.random.Generator) -> Atoms:
    """A random cluster of the composition of ``atoms`` (the elements shuffled over the sites)."""
    fresh = random_cluster(len(atoms), "X", nearest=nearest, seed=int(rng.integers(2**31)))
    return Atoms(rng.permutation(atoms.numbers), positions=fresh.positions)


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
    moves: Mapping[str, float] | None = None,
    walkers: int = 1,
    restart_after: int | None = None,
    progress: bool = True,
) -> MinimaStore:
    """Basin hopping (Wales and Doye): move, relax, accept by the Metropolis rule at ``kt``.

    Parameters
    ----------
    kt
        Metropolis temperature in energy units (eV, or epsilon).
    step_size
        Largest displacement of an atom per ``displace`` move (Angstrom, or sigma); scaled to keep
        half of those moves accepted.
    target
        Stop early once a minimum at or below this energy (eV, or epsilon) is found.
    moves
        Probability of each move of :data:`MOVES` (normalised; default :data:`DEFAULT_MOVES`):
        ``displace`` every atom, ``surface`` (:func:`surface_move`), ``twist`` (:func:`twist_move`).
    walkers
        Independent walkers, taking moves in turn; the first starts from ``start``, the others from
        random clusters of its composition. ``steps`` counts the moves of all of them.
    restart_after
        A walker whose lowest energy has not dropped (by more than the store's energy tolerance) in
        this many of its own moves restarts from a new random cluster; None: never.
    """
    store = MinimaStore() if store is None else store
    names, probabilities = _move_probabilities(DEFAULT_MOVES if moves is None else moves)
    rng = np.random.default_rng(seed)
    pool = [_new_walker(start, calc, store, 0, step_size, fmax)]
    nearest = nearest_distance(pool[0].atoms)
    while len(pool) < walkers:
        pool.append(_new_walker(_random_like(start, nearest, rng), calc, store, 0, step_size, fmax))
    for step in tqdm(range(1, steps + 1), desc="basin hopping", disable=not progress, leave=False):
        w = pool[(step - 1) % walkers]
        move = names[int(rng.choice(len(names), p=probabilities))]
        if move == "displace":
            trial = perturb(w.atoms, w.step_size, rng, w.containment)
        elif move == "surface":
            trial = surface_move(w.atoms, rng)
        else:
            trial = twist_move(w.atoms, rng)
        kept = quench(trial, calc, store, "basin-hopping", step, fmax=fmax)
        accepted = kept is not None and (kept[1] <= w.energy or rng.random() < np.exp(-(kept[1] - w.energy) / kt))
        if accepted:
            w.atoms, w.energy = kept
        if move == "displace":
            w.displaced += 1
            w.displaced_accepted += accepted
            if w.displaced == ADAPT_EVERY:
                # Wales and Doye keep the acceptance ratio near 0.5 by scaling the step.
                w.step_size *= 1.1 if w.displaced_accepted > ADAPT_EVERY // 2 else 1 / 1.1
                w.displaced = w.displaced_accepted = 0
        if w.energy < w.best - store.energy_tol:
            w.best, w.since_best = w.energy, 0
        else:
            w.since_best += 1
        if target is not None and store.lowest.energy <= target + store.energy_tol:
            log.info("basin hopping reached %.6f at step %d", store.lowest.energy, step)
            break
        if restart_after is not None and w.since_best >= restart_after and step < steps:
            log.info("basin hopping step %d: walker %d stagnant at %.6f for %d moves; restarts", step, pool.index(w), w.best, w.since_best)
            pool[pool.index(w)] = _restart(start, calc, store, step, step_size, fmax, nearest, rng)
    return store


def _restart(start: Atoms, calc: Calculator, store: MinimaStore, step: int, step_size: float, fmax: float, nearest: float, rng) -> _Walker:
    """A walker from a new random cluster; one the store rejects is drawn again (10 tries)."""
    for attempt in range(10):
        try:
            return _new_walker(_random_like(start, nearest, rng), calc, store, step, step_size, fmax)
        except (RelaxationError, NonFiniteError):
            if attempt == 9:
                raise
    raise AssertionError("unreachable")


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
