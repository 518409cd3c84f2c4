"""Reference methods that label heating-MD frames with energies (eV) and forces (eV/Angstrom).

The reference is fixed so that data made in different places can be mixed (docs/data.md, "The reference is fixed"):
GFN1-xTB through tblite with electronic temperature 300 K for gapped Au-S-C-H systems and
2000 K for bare metal clusters, and ASE's EMT for Ag-Au alloys and scale tests.

A :class:`Reference` also carries the SCF-recovery *rungs* used by
:class:`~clusterforce.references.scf.LadderCalculator`: the normal settings, then the same physics
with a patient SCF (looser thresholds, more damping), then (for finishing an MD step only) a
higher electronic temperature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import atomic_numbers, chemical_symbols

#: Reference methods selectable with ``--reference``.
METHODS = ("gfn1-xtb", "emt")

#: Electronic temperatures (K) chosen from the elements (docs/data.md, "The reference is fixed").
GAPPED_ELECTRONIC_TEMPERATURE = 300.0
METAL_ELECTRONIC_TEMPERATURE = 2000.0
#: Lowest electronic temperature (K) of the last-resort rung that only finishes an MD step.
FALLBACK_ELECTRONIC_TEMPERATURE = 5000.0

#: Elements whose presence makes a system "gapped" (molecular or ligand-protected).
NONMETALS = frozenset("H He B C N O F Ne Si P S Cl Ar Ge As Se Br Kr Sb Te I Xe At Rn".split())

#: Settings of the patient-SCF rung: SCF thresholds 10x looser than tblite's default
#: (accuracy 1), stronger damping (mixing fraction 0.2 instead of 0.4), at most 60 iterations.
#: Measured on 24 Na21/Na25 MD frames whose default SCF failed at 2000 K: the density error
#: falls to a floor of 6e-5..8e-4 within ~15-40 iterations (just above the default threshold
#: 2e-5) and then Broyden mixing diverges. Accuracy 10 (threshold 2e-4) accepts the frames
#: whose floor is below it; more iterations rescue none and cost 8x more (1000 iterations:
#: 80 s of CPU), and a short Broyden history "converged" to energies thousands of eV too low.
#: On frames that do converge by default, accuracy 10 changes energies by < 1e-5 eV and forces
#: by < 1e-3 eV/Angstrom.
PATIENT_SCF = {"accuracy": 10.0, "mixer_damping": 0.2, "max_iterations": 60}

XTB_INSTALL_HINT = 'GFN1-xTB needs the tblite package: pip install "clusterforce[xtb]"'


@dataclass(frozen=True)
class Rung:
    """One way of evaluating a structure.

    Attributes
    ----------
    name : str
        ``"normal"``, ``"patient-scf"`` or ``"hot-electrons"``; written to ``info['scf_rung']``.
    overrides : Mapping
        Calculator keyword arguments that differ from the normal rung.
    recordable : bool
        Whether a frame evaluated this way may be written: only rungs with the reference's
        physics (same Hamiltonian and electronic temperature) are.
    """

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    recordable: bool = True


@dataclass(frozen=True)
class Reference:
    """A reference method with its resolved settings.

    Attributes
    ----------
    method : str
        ``"gfn1-xtb"`` or ``"emt"``; written to ``info['method']``.
    factory : callable
        ``factory(**overrides)`` returns a fresh ASE calculator (LadderCalculator keeps one per
        rung while it converges, see there).
    rungs : tuple of Rung
        Evaluation ladder, normal settings first.
    electronic_temperature : float or None
        Electronic temperature in K (None for methods without one).
    charge, uhf : int
        Total charge (e) and number of unpaired electrons.
    """

    method: str
    factory: Callable[..., Calculator]
    rungs: tuple[Rung, ...] = (Rung("normal"),)
    electronic_temperature: float | None = None
    charge: int = 0
    uhf: int = 0

    def calculator(self, rung: Rung) -> Calculator:
        """A fresh calculator for ``rung``."""
        return self.factory(**rung.overrides)

    def frame_info(self) -> dict[str, Any]:
        """``info`` entries that every frame labelled by this reference carries."""
        info: dict[str, Any] = {"method": self.method}
        if self.electronic_temperature is not None:
            info["electronic_temperature_K"] = self.electronic_temperature
        if self.method != "emt":
            info["charge"] = self.charge
            info["uhf"] = self.uhf
        return info

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (used to refuse resuming with other settings)."""
        return {
            **self.frame_info(),
            "rungs": [{"name": r.name, **dict(r.overrides), "recordable": r.recordable} for r in self.rungs],
        }


def default_electronic_temperature(atoms: Atoms) -> float:
    """300 K if ``atoms`` contains a non-metal (gapped system), else 2000 K (bare metal cluster)."""
    symbols = set(atoms.get_chemical_symbols())
    return GAPPED_ELECTRONIC_TEMPERATURE if symbols & NONMETALS else METAL_ELECTRONIC_TEMPERATURE


def structure_charge(atoms: Atoms) -> int:
    """Total charge from ``info['charge']`` or the sum of initial charges (0 if neither is set)."""
    value = atoms.info.get("charge", atoms.get_initial_charges().sum())
    if abs(value - round(value)) > 1e-6:
        raise ValueError(f"total charge {value} of {atoms.get_chemical_formula()} is not an integer; pass --charge")
    return int(round(value))


def closed_shell_uhf(atoms: Atoms, charge: int) -> int:
    """Unpaired electrons of the lowest spin state: 0 for an even electron count, 1 for odd."""
    return int((atoms.numbers.sum() - charge) % 2)


def make_reference(
    method: str,
    atoms: Atoms,
    *,
    electronic_temperature: float | None = None,
    fallback_electronic_temperature: float | None = None,
    charge: int | None = None,
    uhf: int | None = None,
) -> Reference:
    """Resolve the reference ``method`` for the structure ``atoms``.

    Parameters
    ----------
    method : str
        ``"gfn1-xtb"`` or ``"emt"``.
    atoms : ase.Atoms
        Structure the reference will label (decides the defaults and is checked for
        elements the method supports).
    electronic_temperature : float, optional
        Electronic temperature in K; default :func:`default_electronic_temperature`.
    fallback_electronic_temperature : float, optional
        Electronic temperature (K) of the last-resort rung; default
        ``max(5000 K, 2 * electronic_temperature)``.
    charge : int, optional
        Total charge in e; default :func:`structure_charge`.
    uhf : int, optional
        Number of unpaired electrons; default :func:`closed_shell_uhf`.

    Raises
    ------
    ImportError
        For ``gfn1-xtb`` when tblite is not installed (the message says how to install it).
    ValueError
        For an unknown method, unsupported elements or inconsistent settings.
    """
    if method == "gfn1-xtb":
        return _gfn1_xtb(atoms, electronic_temperature, fallback_electronic_temperature, charge, uhf)
    if method == "emt":
        if electronic_temperature is not None or charge or uhf:
            raise ValueError("--reference emt has no electronic temperature, charge or spin; drop those flags")
        return _emt(atoms)
    raise ValueError(f"unknown reference '{method}'; choose one of {METHODS}")


def _gfn1_xtb(
    atoms: Atoms,
    electronic_temperature: float | None,
    fallback: float | None,
    charge: int | None,
    uhf: int | None,
) -> Reference:
    try:
        from tblite.ase import TBLite
    except ImportError:
        raise ImportError(XTB_INSTALL_HINT) from None
    too_heavy = sorted({s for s in atoms.get_chemical_symbols() if atomic_numbers[s] > 86})
    if too_heavy:
        raise ValueError(f"GFN1-xTB covers H to Rn; {atoms.get_chemical_formula()} contains {too_heavy}")
    te = default_electronic_temperature(atoms) if electronic_temperature is None else float(electronic_temperature)
    if te <= 0:
        raise ValueError(f"--electronic-temperature must be positive (K), got {te}")
    hot = max(FALLBACK_ELECTRONIC_TEMPERATURE, 2 * te) if fallback is None else float(fallback)
    if hot <= te:
        raise ValueError(f"--fallback-electronic-temperature ({hot} K) must exceed the electronic temperature ({te} K)")
    q = structure_charge(atoms) if charge is None else int(charge)
    unpaired = closed_shell_uhf(atoms, q) if uhf is None else int(uhf)
    if (atoms.numbers.sum() - q - unpaired) % 2:
        raise ValueError(
            f"{atoms.get_chemical_formula()} with charge {q} has {atoms.numbers.sum() - q} electrons, "
            f"which cannot have {unpaired} unpaired; change --uhf or --charge"
        )
    settings = {
        "method": "GFN1-xTB",
        "electronic_temperature": te,
        "charge": q,
        "multiplicity": unpaired + 1,
        "verbosity": 0,
        "cache_api": False,
    }

    def factory(**overrides: Any) -> Calculator:
        return TBLite(**{**settings, **overrides})

    rungs = (
        Rung("normal"),
        Rung("patient-scf", PATIENT_SCF),
        Rung("hot-electrons", {**PATIENT_SCF, "electronic_temperature": hot}, recordable=False),
    )
    return Reference("gfn1-xtb", factory, rungs, te, q, unpaired)


def _emt(atoms: Atoms) -> Reference:
    from ase.calculators.emt import EMT, parameters

    unsupported = sorted(set(atoms.get_chemical_symbols()) - set(parameters))
    if unsupported:
        raise ValueError(
            f"EMT has no parameters for {unsupported} in {atoms.get_chemical_formula()}; "
            f"it covers {sorted(parameters, key=chemical_symbols.index)}"
        )
    return Reference("emt", lambda **overrides: EMT(**overrides))
