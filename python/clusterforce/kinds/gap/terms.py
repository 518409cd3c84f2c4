"""Hyperparameters of the GAP terms: the one schema shared by estimator, model file and LAMMPS.

Each term is a frozen dataclass; ``to_dict`` is what goes into the ``.cfm`` metadata (``kind``
plus the fields) and ``term_from_dict`` reads it back. A field's default is the value of the
``gap-sodium`` preset: Table 1 of the gap-sodium paper (model M1, Na55: delta, r_cut, sigma_at as
the length scale, n_max=12, l_max=6, zeta=4, 20/100 uniform sparse points), scaled for a
workstation: 1000 SOAP sparse points instead of 6000. The paper gives no transition width for
2b/3b; 1.0 and 0.5 Angstrom are used.

Those settings suit sodium and fail elsewhere (a 12.9 Angstrom SOAP sees the whole of a 55-atom
cluster, so every atom of a larger one is a new environment), so a model without explicit terms
takes them from :data:`PRESETS` by the elements of its data (:func:`preset_for`): alkali metals
``gap-sodium``; other metals ``metal`` (the 5.5 Angstrom settings QUIP users take for gold, with
zeta 2, which the predictor evaluates as a quadratic form: on gold 2.6x faster than zeta 4 for 4 %
more force error on larger held-out sizes); any
non-metal, i.e. a ligand-protected cluster, ``ligand`` (shorter SOAP, smaller basis, fewer sparse
points per species: four species multiply the descriptor and the sparse set). The measurements
behind each are in docs/benchmarks.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from clusterforce.descriptors.soap import SoapParams
from clusterforce.kinds.gap.sparse import METHODS


def _check_positive(term: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{term} term: '{name}' must be a positive number, got {value!r}")


def _check_cutoff(term: str, r_cut: float, width: float) -> None:
    _check_positive(term, r_cut=r_cut, width=width)
    if width > r_cut:
        raise ValueError(f"{term} term: transition 'width' ({width} A) must not exceed 'r_cut' ({r_cut} A)")


def _check_n_sparse(term: str, n_sparse: int) -> None:
    if not isinstance(n_sparse, int) or isinstance(n_sparse, bool) or n_sparse < 1:
        raise ValueError(f"{term} term: 'n_sparse' must be a positive integer, got {n_sparse!r}")


@dataclass(frozen=True)
class TwoBody:
    """Pair term: squared exponential in the pair distance (review eq. 17).

    Parameters
    ----------
    delta : float
        Energy scale of the term (eV).
    r_cut, width : float
        Cutoff radius and cosine transition width (Angstrom).
    theta : float
        Kernel length scale (Angstrom): k = delta^2 exp(-(r - r')^2 / (2 theta^2)).
    n_sparse : int
        Sparse points per species pair, on a uniform grid of distances.
    """

    kind: ClassVar[str] = "2b"
    delta: float = 0.001
    r_cut: float = 12.9
    width: float = 1.0
    theta: float = 0.6
    n_sparse: int = 20
    sparse_method: str = "uniform"

    @property
    def order(self) -> int:
        return 2

    def validate(self) -> None:
        _check_positive("2b", delta=self.delta, theta=self.theta)
        _check_cutoff("2b", self.r_cut, self.width)
        _check_n_sparse("2b", self.n_sparse)
        if self.sparse_method != "uniform":
            raise ValueError(f"2b term: 'sparse_method' must be 'uniform', got {self.sparse_method!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ThreeBody:
    """Triplet term: squared exponential on the triangle's side lengths, summed over the
    species-preserving permutations of the triangle (review eq. 18).

    Parameters
    ----------
    delta : float
        Energy scale of the term (eV).
    r_cut, width : float
        Cutoff radius of the centre's two legs and cosine transition width (Angstrom).
    theta : float
        Kernel length scale (Angstrom).
    n_sparse : int
        Sparse points per species triple, on a uniform grid of occupied triangle space.
    """

    kind: ClassVar[str] = "3b"
    delta: float = 0.001
    r_cut: float = 3.5
    width: float = 0.5
    theta: float = 0.6
    n_sparse: int = 100
    sparse_method: str = "uniform"

    @property
    def order(self) -> int:
        return 3

    def validate(self) -> None:
        _check_positive("3b", delta=self.delta, theta=self.theta)
        _check_cutoff("3b", self.r_cut, self.width)
        _check_n_sparse("3b", self.n_sparse)
        if self.sparse_method != "uniform":
            raise ValueError(f"3b term: 'sparse_method' must be 'uniform', got {self.sparse_method!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Soap:
    """Many-body term: normalised SOAP power spectrum, kernel delta^2 (p.p')^zeta (review eq. 16).

    Parameters
    ----------
    delta : float
        Energy scale of the term (eV).
    r_cut : float
        SOAP cutoff radius (Angstrom).
    n_max, l_max : int
        Radial and angular expansion orders.
    sigma : float
        Width of the atomic Gaussians (Angstrom; GAP's ``atom_sigma``).
    r_cut_width : float
        Width (Angstrom) of the cosine transition that takes a neighbour's weight from 1 at
        ``r_cut - r_cut_width`` to 0 at ``r_cut`` (GAP's ``cutoff_transition_width``), so energy and
        forces are continuous when an atom crosses the cutoff. 0 gives the old abrupt cutoff at
        ``r_cut`` plus the Gaussian tail (files written before this field load that way).
    zeta : int
        Power of the normalised dot product. With 2 the compiled predictor evaluates the kernel
        sum as one quadratic form p_hat^T A p_hat per centre (FLARE++'s mapping), whose cost does
        not depend on ``n_sparse``.
    n_sparse : int
        Sparse environments per centre species.
    sparse_method : {"cur", "fps"}
        How the sparse environments are chosen.
    """

    kind: ClassVar[str] = "soap"
    delta: float = 0.04
    r_cut: float = 12.9
    n_max: int = 12
    l_max: int = 6
    sigma: float = 0.6
    r_cut_width: float = 1.0
    zeta: int = 4
    n_sparse: int = 1000
    sparse_method: str = "cur"

    def validate(self) -> None:
        _check_positive("soap", delta=self.delta)
        self.soap_params.validate("soap term")
        if not 0.0 <= self.r_cut_width < self.r_cut:
            raise ValueError(f"soap term: 'r_cut_width' must be in [0, r_cut) Angstrom, got {self.r_cut_width!r}")
        _check_n_sparse("soap", self.n_sparse)
        if not isinstance(self.zeta, int) or isinstance(self.zeta, bool) or self.zeta < 1:
            raise ValueError(f"soap term: 'zeta' must be an integer >= 1, got {self.zeta!r}")
        if self.sparse_method not in ("cur", "fps"):
            raise ValueError(f"soap term: 'sparse_method' must be 'cur' or 'fps', got {self.sparse_method!r}")

    @property
    def soap_params(self) -> SoapParams:
        """The SOAP settings (shared schema of every kind)."""
        return SoapParams(r_cut=self.r_cut, n_max=self.n_max, l_max=self.l_max, sigma=self.sigma)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


Term = TwoBody | ThreeBody | Soap
TERM_TYPES: dict[str, type] = {"2b": TwoBody, "3b": ThreeBody, "soap": Soap}


def term_from_dict(d: Mapping[str, Any]) -> Term:
    """Rebuild a term from its ``to_dict`` form; unknown kinds or fields raise ValueError."""
    kind = d.get("kind")
    if kind not in TERM_TYPES:
        raise ValueError(f"GAP term kind must be one of {', '.join(TERM_TYPES)}, got {kind!r}")
    cls = TERM_TYPES[kind]
    if kind == "soap" and "atom_sigma" in d and "sigma" not in d:  # files written before the two names became one
        d = {("sigma" if k == "atom_sigma" else k): v for k, v in d.items()}
    if kind == "soap" and "r_cut_width" not in d:  # files written before the smooth cutoff predict as they did
        d = {**d, "r_cut_width": 0.0}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names - {"kind"})
    if unknown:
        raise ValueError(f"{kind} term: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    term = cls(**{k: v for k, v in d.items() if k != "kind"})
    term.validate()
    return term


ALKALI_METALS = frozenset({"Li", "Na", "K", "Rb", "Cs", "Fr"})
NON_METALS = frozenset({"H", "He", "B", "C", "N", "O", "F", "Ne", "Si", "P", "S", "Cl", "Ar", "As", "Se", "Br", "Kr", "Te", "I", "Xe"})

PRESETS: dict[str, tuple[Term, ...]] = {
    "gap-sodium": (TwoBody(), ThreeBody(), Soap()),
    "metal": (TwoBody(r_cut=5.5), ThreeBody(r_cut=4.0), Soap(r_cut=5.5, n_max=8, l_max=6, sigma=0.5, zeta=2, n_sparse=2000)),
    "ligand": (TwoBody(r_cut=5.0), ThreeBody(r_cut=3.5), Soap(r_cut=4.0, n_max=6, l_max=4, sigma=0.5, n_sparse=500)),
}


#: Noise of each preset, (energy eV/atom, force eV/Angstrom): how closely the fit follows the data.
#: Measured on held-out cluster sizes (docs/benchmarks.md, "GAP noise"): an energy noise of
#: 0.001 eV/atom ties the fit to every frame's total energy and costs accuracy on larger sizes for
#: gold (train Au10-15, test Au16-19: 124.0 -> 107.0 meV/A and 17.0 -> 16.2 meV/atom at 0.01) and the
#: rings (ring6 held out: 94.7 -> 82.3 meV/A, 9.7 -> 8.9 meV/atom). Sodium keeps 0.001: at 0.01 the
#: held-out Na55 energy improves (23.8 -> 14.9 meV/atom) but independent Na53/Na55 MD from
#: low-energy structures, the frames its users run, gets worse (2.20 -> 2.47 meV/atom).
PRESET_NOISE: dict[str, tuple[float, float]] = {"gap-sodium": (0.001, 0.02), "metal": (0.01, 0.02), "ligand": (0.01, 0.02)}


def preset_for(elements: Iterable[str]) -> str:
    """The preset for data with these chemical symbols: ``gap-sodium``, ``metal`` or ``ligand``."""
    elements = set(elements)
    if elements & NON_METALS:
        return "ligand"
    return "gap-sodium" if elements <= ALKALI_METALS else "metal"


def default_terms(elements: Iterable[str]) -> tuple[Term, ...]:
    """2b + 3b + SOAP with the preset :func:`preset_for` picks for ``elements``."""
    return PRESETS[preset_for(elements)]


__all__ = ["METHODS", "PRESETS", "PRESET_NOISE", "Soap", "Term", "ThreeBody", "TwoBody", "default_terms", "preset_for", "term_from_dict"]
