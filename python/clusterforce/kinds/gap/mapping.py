"""Mapped 2b and 3b terms (the review's mapped force fields): ``clusterforce map``.

A trained 2b or 3b term's energy function is a sum over its sparse points; tabulated once on
cubic B-splines it costs a fixed few dozen multiply-adds per pair or triangle, whatever the
number of sparse points. The tables are what the compiled ``MappedNBodyTerm``
(``cpp/include/clusterforce/gap_mapped.hpp``) evaluates in Python, ASE and LAMMPS alike:

- 2b: e(r) per species pair, r on ``[r_min, r_cut]``;
- 3b: e(r_1, r_2, cos theta) per (centre species, neighbour species pair), as the centre sees
  the triangle: legs r_1, r_2 on ``[r_min, r_cut]`` (r_1 to the neighbour of lower species
  index), cos theta on ``[-1, 1]``.

Splines interpolate the exact function at the grid points (scipy's not-a-knot cubic
interpolation along each axis in turn, which for a tensor grid is the tensor-product
interpolant); below ``r_min`` the end polynomial continues. The cutoff weights are not
tabulated: they stay exact, so a mapped model is as smooth at the cutoffs as the unmapped one.
Kernel rows and variances still come from the exact term, so a mapped model's uncertainties
are the unmapped model's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from scipy.interpolate import make_interp_spline

from clusterforce import _kernels
from clusterforce.kinds.gap.terms import Soap

if TYPE_CHECKING:
    from clusterforce.kinds.gap.model import GAPModel


@dataclass(frozen=True)
class MapGrid:
    """Where and how finely the n-body terms are tabulated.

    Parameters
    ----------
    r_min : float, optional
        Shortest tabulated distance (Angstrom); below it the end cubic continues. Default:
        1 Angstrom, or 80 % of the shortest distance among the sparse points (the data's shortest
        pairs) where that is shorter.
    r_spacing : float
        Grid spacing of the 2b distance and the 3b legs (Angstrom).
    cos_spacing : float
        Grid spacing of the 3b cos theta axis.
    """

    r_min: float | None = None
    r_spacing: float = 0.04
    cos_spacing: float = 0.04

    def validate(self, r_cut: float) -> None:
        if self.r_min is None:
            raise ValueError("map: r_min is not set; map_model derives it from the sparse points, tabulate needs it given")
        if not 0.0 < self.r_min < r_cut:
            raise ValueError(f"map: r_min must be in (0, r_cut = {r_cut}) Angstrom, got {self.r_min}")
        for name in ("r_spacing", "cos_spacing"):
            value = getattr(self, name)
            if not 0.0 < value <= 0.5:
                raise ValueError(f"map: {name} must be in (0, 0.5], got {value}")

    def r_axis(self, r_cut: float) -> np.ndarray:
        """Distances from r_min to r_cut (both included), at most ``r_spacing`` apart."""
        return np.linspace(self.r_min, r_cut, max(4, int(np.ceil((r_cut - self.r_min) / self.r_spacing)) + 1))

    def cos_axis(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, max(4, int(np.ceil(2.0 / self.cos_spacing)) + 1))


def tabulate(term: _kernels.NBodyTerm, order: int, n_species: int, grid: MapGrid) -> dict[str, np.ndarray]:
    """Spline tables of one trained 2b or 3b term: ``knots_r``, ``knots_cos`` (3b) and
    ``coefficients`` (map channels x axis sizes), in the layout the model file stores."""
    grid.validate(term.r_cut)
    r = grid.r_axis(term.r_cut)
    axes = [r] if order == 2 else [r, r, grid.cos_axis()]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    n_channels = n_species * (n_species + 1) // 2 * (1 if order == 2 else n_species)
    coefficients, knots = [], []
    for channel in range(n_channels):
        values = _kernels.mapped_profile(term, channel, points).reshape([len(a) for a in axes])
        c, knots = _interpolate(axes, values)
        coefficients.append(c)
    out = {"knots_r": knots[0], "coefficients": np.stack(coefficients)}
    if order == 3:
        out["knots_cos"] = knots[2]
    return out


def _interpolate(axes: Sequence[np.ndarray], values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    # Interpolation is linear and separable: solving along each axis in turn gives the
    # tensor-product spline through every grid value.
    c, knots = values, []
    for d, x in enumerate(axes):
        spline = make_interp_spline(x, c, k=3, axis=d)
        c = np.moveaxis(spline.c, 0, d)
        knots.append(spline.t)
    return np.ascontiguousarray(c), knots


def map_model(model: GAPModel, grid: MapGrid | None = None, *, check_frames: Sequence[Atoms] = ()) -> dict[str, Any]:
    """Tabulate every 2b and 3b term of a fitted gap model in place; returns the error report.

    The report holds, per mapped term, the largest and RMS difference between table and exact
    function at random points of the tabulated box (eV; 3b: triangles whose sides are all at
    least ``r_min``), and, if ``check_frames`` are given, the RMS and largest change of the
    forces (eV/Angstrom) and the RMS change of the energy (eV/atom) on them.
    """
    nbody = [k for k in model.kernels_ if not isinstance(k.term, Soap)]
    if not nbody:
        raise ValueError("the model has no 2b or 3b term to map (only SOAP)")
    grid = grid or MapGrid()
    if grid.r_min is None:
        shortest = min(float(k.sparse.min()) for k in nbody)
        grid = dataclasses.replace(grid, r_min=min(1.0, 0.8 * shortest))
    model.set_maps({}, [])
    exact = [model.predict(a) for a in check_frames]
    rng = np.random.default_rng(0)
    maps, info = {}, []
    for i, kernel in enumerate(model.kernels_):
        if isinstance(kernel.term, Soap):
            continue
        term = kernel.predictor_term(model.alpha_[i])
        tables = tabulate(term, kernel.term.order, kernel.n_species, grid)
        mapped = _kernels.MappedNBodyTerm(term, tables["knots_r"], tables["coefficients"], tables.get("knots_cos"))
        maps[i] = tables
        info.append({"term": i, "kind": kernel.term.kind, **grid.__dict__, **_table_error(term, mapped, kernel.term.order == 3, grid, rng)})
    model.set_maps(maps, info)
    report: dict[str, Any] = {"terms": info}
    if check_frames:
        df, de = [], []
        for atoms, before in zip(check_frames, exact):
            after = model.predict(atoms)
            df.append((after["forces"] - before["forces"]).ravel())
            de.append((after["energy"] - before["energy"]) / len(atoms))
        report["check"] = {
            "frames": len(check_frames),
            "force_rms_eV_per_A": float(np.sqrt(np.mean(np.concatenate(df) ** 2))),
            "force_max_eV_per_A": float(np.max(np.abs(np.concatenate(df)))),
            "energy_rms_eV_per_atom": float(np.sqrt(np.mean(np.square(de)))),
        }
    return report


def _table_error(
    term: _kernels.NBodyTerm, mapped: _kernels.MappedNBodyTerm, three: bool, grid: MapGrid, rng: np.random.Generator
) -> dict[str, float]:
    # Triangles whose third side is also at least r_min: a physical triangle, not the corner
    # where two neighbours coincide and the function of cos theta has a square-root kink.
    n = 4000
    r = rng.uniform(grid.r_min, term.r_cut, size=(n, 2 if three else 1))
    points = r
    if three:
        points = np.column_stack([r, rng.uniform(-1.0, 1.0, n)])
        third = np.sqrt(np.maximum(0.0, r[:, 0] ** 2 + r[:, 1] ** 2 - 2 * r[:, 0] * r[:, 1] * points[:, 2]))
        points = points[third >= grid.r_min]
    diffs = [mapped.values(c, points)[0] - _kernels.mapped_profile(term, c, points) for c in range(mapped.n_channels)]
    d = np.concatenate(diffs)
    return {"table_max_error_eV": float(np.max(np.abs(d))), "table_rms_error_eV": float(np.sqrt(np.mean(d**2)))}
