"""Starting structures for heating MD: gold-thiolate rings, metal clusters, structure files.

Every builder returns :class:`Structure` objects (isolated clusters: no cell, no periodicity)
whose ``name`` becomes ``info['system']`` of each recorded frame. Distances are in Angstrom.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

logger = logging.getLogger(__name__)

#: Nearest-neighbour distances (Angstrom) used to scale ideal clusters: bulk values from
#: ase.data.reference_states (Na bcc a=4.23, Au fcc 4.08, Ag fcc 4.09); alpha-Ga is
#: orthorhombic, so Ga takes the typical Ga-Ga distance of small Ga clusters.
NEAREST_NEIGHBOUR = {"Na": 3.66, "Ga": 2.70, "Au": 2.885, "Ag": 2.89}

#: Builders selectable with ``--system``.
SYSTEMS = ("ring", "na", "ga", "agau")
SHAPES = ("icosahedral", "decahedral", "random")

# Gold-thiolate ring geometry (oamlm paper, section III D 1).
AU_S = 2.30
S_C = 1.82
C_H = 1.09
S_OUT_OF_PLANE = 1.0
AU_S_C_ANGLE = 104.0
TETRAHEDRAL = 109.47


@dataclass(frozen=True)
class Structure:
    """A named starting structure.

    Attributes
    ----------
    name : str
        System label recorded in every frame, e.g. ``"ring4"`` or ``"Na55"``.
    atoms : ase.Atoms
        Positions in Angstrom; non-periodic.
    source : str
        How the structure was made (builder and parameters, or file and frame index).
    """

    name: str
    atoms: Atoms
    source: str


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def gold_thiolate_ring(n: int) -> Atoms:
    """Build an [Au(SCH3)]n ring as in section III D 1 of the oamlm paper.

    The n S atoms sit on the corners of a regular n-gon and are pushed 1.0 Angstrom out of
    the plane, alternately up and down (for odd n two neighbours share a side). Each Au sits
    between two S at Au-S = 2.30 Angstrom (moved radially outward where two S on the same
    side would make the bond short). Each S carries a methyl (S-C 1.82, C-H 1.09 Angstrom)
    pointing away from the ring and to the side of its out-of-plane displacement, with
    Au-S-C close to 104 degrees and tetrahedral H-C-S angles.

    Parameters
    ----------
    n : int
        Number of Au (and of S and methyl groups); at least 3.

    Returns
    -------
    ase.Atoms
        ``Au_n S_n C_n H_3n`` in the order Au, S, C, H, H, H per unit; centred at the origin.
    """
    if n < 3:
        raise ValueError(f"a gold-thiolate ring needs n >= 3 Au atoms, got n={n}")
    # In-plane half-chord that makes Au-S = AU_S when the two S are on opposite sides.
    half_chord = np.sqrt(AU_S**2 - S_OUT_OF_PLANE**2)
    radius = half_chord / np.sin(np.pi / n)
    angles = 2 * np.pi * np.arange(n) / n
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    sulfur = np.column_stack([radius * np.cos(angles), radius * np.sin(angles), S_OUT_OF_PLANE * signs])

    gold = np.empty((n, 3))
    for i in range(n):
        a, b = sulfur[i], sulfur[(i + 1) % n]
        mid = 0.5 * (a + b)
        half = 0.5 * np.linalg.norm(b - a)
        outward = _unit(np.array([mid[0], mid[1], 0.0]))
        gold[i] = mid + np.sqrt(max(AU_S**2 - half**2, 0.0)) * outward

    symbols: list[str] = []
    positions: list[np.ndarray] = []
    target = np.cos(np.radians(AU_S_C_ANGLE))
    for i in range(n):
        s = sulfur[i]
        u1, u2 = _unit(gold[i] - s), _unit(gold[i - 1] - s)
        away = -_unit(u1 + u2)
        normal = _unit(np.cross(u1, u2))
        if normal[2] * signs[i] < 0:
            normal = -normal
        # cos(Au-S-C) = cos(theta) * (u1 . away) because u1 is perpendicular to the normal.
        theta = np.arccos(np.clip(target / np.dot(u1, away), -1.0, 1.0))
        axis = np.cos(theta) * away + np.sin(theta) * normal
        carbon = s + S_C * axis
        p1 = _unit(np.cross(axis, normal))
        p2 = np.cross(axis, p1)
        tilt = np.radians(180.0 - TETRAHEDRAL)
        hydrogens = [
            carbon + C_H * (np.cos(tilt) * axis + np.sin(tilt) * (np.cos(phi) * p1 + np.sin(phi) * p2))
            for phi in 2 * np.pi * np.arange(3) / 3
        ]
        symbols += ["Au", "S", "C", "H", "H", "H"]
        positions += [gold[i], s, carbon, *hydrogens]
    atoms = Atoms(symbols, positions=np.array(positions))
    atoms.positions -= atoms.positions.mean(axis=0)
    return atoms


def icosahedron(symbol: str, n: int, nearest_neighbour: float) -> Atoms:
    """Mackay icosahedron of ``n`` atoms (n = 13, 55, 147, 309, ...) with the given NN distance (Angstrom)."""
    from ase.cluster import Icosahedron

    sizes = [_icosahedral_size(shells) for shells in range(2, 9)]
    if n not in sizes:
        raise ValueError(f"no icosahedron has {n} atoms; icosahedral sizes are {sizes}")
    atoms = Icosahedron(symbol, sizes.index(n) + 2, latticeconstant=nearest_neighbour * np.sqrt(2))
    return _isolated(atoms)


def _icosahedral_size(shells: int) -> int:
    k = shells - 1
    return (10 * k**3 + 15 * k**2 + 11 * k + 3) // 3


def _decahedral_sizes(limit: int) -> dict[int, tuple[int, int, int]]:
    """Map atom count <= limit -> (p, q, r) of the most compact ase.cluster.Decahedron of that size.

    Only p >= 2 (p = 1 is a chain); among (p, q, r) of equal size the smallest radius of
    gyration wins, so 55 is the (3, 3, 0) decahedron rather than a (2, 9, 0) rod.
    """
    from ase.cluster import Decahedron

    best: dict[int, tuple[float, tuple[int, int, int]]] = {}
    # The size grows with each of p, q, r, so each loop stops at the first size past the limit.
    p = 2
    while len(Decahedron("Au", p, 1, 0)) <= limit:
        q = 1
        while len(Decahedron("Au", p, q, 0)) <= limit:
            r = 0
            while len(atoms := Decahedron("Au", p, q, r)) <= limit:
                x = atoms.positions - atoms.positions.mean(axis=0)
                gyration = float(np.mean(np.sum(x * x, axis=1)))
                if len(atoms) not in best or gyration < best[len(atoms)][0] - 1e-9:
                    best[len(atoms)] = (gyration, (p, q, r))
                r += 1
            q += 1
        p += 1
    return {n: pqr for n, (_, pqr) in sorted(best.items())}


def decahedron(symbol: str, n: int, nearest_neighbour: float) -> Atoms:
    """Marks/Ino decahedron of ``n`` atoms from ase.cluster with the given NN distance (Angstrom)."""
    from ase.cluster import Decahedron

    sizes = _decahedral_sizes(max(n, 150))
    if n not in sizes:
        raise ValueError(f"no Marks decahedron has {n} atoms; decahedral sizes up to {max(n, 150)} are {list(sizes)}")
    p, q, r = sizes[n]
    return _isolated(Decahedron(symbol, p, q, r, latticeconstant=nearest_neighbour * np.sqrt(2)))


def random_compact(
    symbol: str,
    n: int,
    nearest_neighbour: float,
    rng: np.random.Generator,
    *,
    min_distance_factor: float = 0.75,
    max_attempts: int = 100_000,
) -> Atoms:
    """Random compact cluster: points in a sphere of close-packed density with a minimum distance.

    The sphere holds ``n`` atoms at the volume per atom of an fcc crystal with the given
    nearest-neighbour distance (``d**3 / sqrt(2)``); atoms are placed one by one at uniform
    random points, rejecting any closer than ``min_distance_factor * d`` to an earlier one.
    """
    radius = (3 * n * nearest_neighbour**3 / (np.sqrt(2) * 4 * np.pi)) ** (1 / 3)
    d_min = min_distance_factor * nearest_neighbour
    points = np.empty((n, 3))
    placed = 0
    for _ in range(max_attempts):
        trial = rng.uniform(-radius, radius, size=3)
        if np.dot(trial, trial) > radius**2:
            continue
        if placed and np.min(np.linalg.norm(points[:placed] - trial, axis=1)) < d_min:
            continue
        points[placed] = trial
        placed += 1
        if placed == n:
            return Atoms([symbol] * n, positions=points)
    raise ValueError(
        f"could not place {n} {symbol} atoms {d_min:.2f} Angstrom apart in a sphere of radius "
        f"{radius:.2f} Angstrom after {max_attempts} attempts; use a smaller min_distance_factor"
    )


def metal_cluster(symbol: str, n: int, shape: str, rng: np.random.Generator) -> Atoms:
    """Single-element cluster of ``n`` atoms of shape ``icosahedral``, ``decahedral`` or ``random``."""
    nn = NEAREST_NEIGHBOUR[symbol]
    if shape == "icosahedral":
        return icosahedron(symbol, n, nn)
    if shape == "decahedral":
        return decahedron(symbol, n, nn)
    if shape == "random":
        return random_compact(symbol, n, nn, rng)
    raise ValueError(f"unknown cluster shape '{shape}'; choose one of {SHAPES}")


def agau_icosahedron(n: int, fraction_au: float, rng: np.random.Generator) -> Atoms:
    """Ag-Au icosahedron of ``n`` atoms with ``round(fraction_au * n)`` Au at random sites."""
    if not 0.0 <= fraction_au <= 1.0:
        raise ValueError(f"--fraction-au must be between 0 and 1, got {fraction_au}")
    nn = 0.5 * (NEAREST_NEIGHBOUR["Ag"] + NEAREST_NEIGHBOUR["Au"])
    atoms = icosahedron("Ag", n, nn)
    n_au = int(round(fraction_au * n))
    symbols = np.array(["Ag"] * n, dtype=object)
    symbols[rng.choice(n, size=n_au, replace=False)] = "Au"
    atoms.set_chemical_symbols(list(symbols))
    return atoms


def build(
    system: str,
    sizes: Sequence[int],
    *,
    shape: str = "icosahedral",
    fraction_au: float = 0.5,
    rng: np.random.Generator | None = None,
) -> list[Structure]:
    """Build one structure per size with the builder ``system`` (one of :data:`SYSTEMS`).

    Parameters
    ----------
    system : str
        ``ring`` ([Au(SCH3)]n, n = size), ``na`` / ``ga`` (element clusters of ``shape``),
        ``agau`` (Ag-Au icosahedron with ``fraction_au`` gold).
    sizes : sequence of int
        Ring size n or number of atoms N.
    rng : numpy.random.Generator, optional
        Source of randomness for random shapes and chemical order.
    """
    if not sizes:
        raise ValueError(f"--system {system} needs at least one size: give --n N [N ...]")
    rng = np.random.default_rng(0) if rng is None else rng
    structures = []
    for n in sizes:
        if system == "ring":
            structures.append(Structure(f"ring{n}", gold_thiolate_ring(n), f"[Au(SCH3)]{n} ring"))
        elif system in ("na", "ga"):
            symbol = system.capitalize()
            atoms = metal_cluster(symbol, n, shape, rng)
            structures.append(Structure(f"{symbol}{n}", atoms, f"{shape} {symbol}{n}"))
        elif system == "agau":
            atoms = agau_icosahedron(n, fraction_au, rng)
            name = atoms.get_chemical_formula(mode="metal")
            structures.append(Structure(name, atoms, f"icosahedral Ag-Au, fraction_au={fraction_au}"))
        else:
            raise ValueError(f"unknown system '{system}'; choose one of {SYSTEMS}")
    return structures


def from_file(path: str | Path, index: str | None = None, sizes: Sequence[int] | None = None) -> list[Structure]:
    """Read starting structures from any file ASE reads.

    Parameters
    ----------
    path : str or Path
        Structure file (extxyz, xyz, ...).
    index : str, optional
        ASE index of the frames to consider: ``"3"``, ``"-1"``, ``"10:20"``, ``"::5"``.
        Default: all frames.
    sizes : sequence of int, optional
        Keep, for each N, the first considered frame with N atoms (in the Quantum Cluster
        Database files the frames of one N are sorted by energy, so this is the lowest).

    Returns
    -------
    list of Structure
        Non-periodic copies named by chemical formula (``Na55``), with ``source`` naming
        the file and frame index.
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--start file {path} does not exist")
    frames = read(path, index=":")
    spec = ":" if index is None else index
    numbers = _select(list(range(len(frames))), spec, path)
    chosen = [(i, frames[i]) for i in numbers]
    if sizes:
        picked = []
        for n in sizes:
            match = next(((i, a) for i, a in chosen if len(a) == n), None)
            if match is None:
                available = sorted({len(a) for _, a in chosen})
                raise ValueError(f"{path} has no frame with {n} atoms (index '{spec}'); atom counts present: {available}")
            picked.append(match)
        chosen = picked
    structures = []
    for i, atoms in chosen:
        if atoms.pbc.any():
            logger.info("%s frame %d: periodic cell dropped, treated as an isolated cluster", path.name, i)
        name = atoms.get_chemical_formula(mode="metal")
        structures.append(Structure(name, _isolated(atoms), f"{path.name}@{i}"))
    return structures


def _select(indices: list[int], spec: str, path: Path) -> list[int]:
    """Apply an ASE-style index (``"3"``, ``"-1"``, ``"2:9:2"``) to the frame numbers of ``path``."""
    try:
        if ":" in spec:
            parts = [int(p) if p.strip() else None for p in spec.split(":")]
            if len(parts) > 3:
                raise ValueError
            selected = indices[slice(*parts)]
        else:
            selected = [indices[int(spec)]]
    except ValueError:
        raise ValueError(f"--index '{spec}' is not an integer or a slice like '10:20' or '::5'") from None
    except IndexError:
        raise ValueError(f"--index {spec} is out of range: {path} has {len(indices)} frames") from None
    if not selected:
        raise ValueError(f"--index '{spec}' selects no frame of {path} ({len(indices)} frames)")
    return selected


def _isolated(atoms: Atoms) -> Atoms:
    """Copy without cell, periodicity, constraints or calculator, centred at the origin."""
    clean = Atoms(atoms.numbers, positions=atoms.positions.copy())
    if "charge" in atoms.info:
        clean.info["charge"] = atoms.info["charge"]
    if atoms.has("initial_charges"):
        clean.set_initial_charges(atoms.get_initial_charges())
    clean.positions -= clean.positions.mean(axis=0)
    return clean
