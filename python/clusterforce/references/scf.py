"""Evaluate structures through a reference's rung ladder, counting every SCF retry.

Tight-binding SCF does not always converge on hot frames (GFN1-xTB fails on hot even-N
sodium clusters). :class:`LadderCalculator` is the ASE calculator the MD integrator sees: it
tries the reference's rungs in order and remembers which one succeeded, so the driver knows
whether the frame may be recorded. When every rung fails it raises :class:`ScfFailure`, and
the driver restarts the segment (see :mod:`clusterforce.workflows.datagen.heating`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from clusterforce.references.methods import Reference, Rung

logger = logging.getLogger(__name__)


class ScfFailure(RuntimeError):
    """Every rung of the reference failed to evaluate a structure."""


@dataclass
class ScfCounts:
    """Counters of the recovery ladder for one structure (cumulative over its run).

    Attributes
    ----------
    scf_retries : int
        Evaluations repeated with the patient SCF (looser thresholds, more damping) after the
        normal SCF failed.
    hot_steps : int
        MD steps finished at the fallback electronic temperature (never recorded), including
        unrecorded steps of a failure stretch that started there directly.
    restarts : int
        Segments restarted from the last recorded frame with fresh velocities.
    skipped_frames : int
        Times a frame due for recording was not written because its step was hot (a step
        repeated after a restart can count again).

    Steps repeated after a restart count again in every counter.
    """

    scf_retries: int = 0
    hot_steps: int = 0
    restarts: int = 0
    skipped_frames: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LadderCalculator(Calculator):
    """ASE calculator evaluating energy (eV) and forces (eV/Angstrom) through a rung ladder.

    Parameters
    ----------
    reference : Reference
        Supplies one calculator per rung. A rung's calculator is kept after it succeeds, so the
        next evaluation starts its SCF from the last converged density (GFN1-xTB on
        Au38(SCH3)24 heating MD: 16 CPU s per step instead of ~35 s from the default guess); it is dropped
        when its SCF fails, so a retry starts from the default guess. A run resumed from a
        checkpoint starts from the default guess too, so its frames agree with an uninterrupted
        run to the SCF tolerance, not bit for bit.
    counts : ScfCounts
        Updated in place on every retry and hot step.
    label : str
        Name of the structure, used in log messages.

    Attributes
    ----------
    first_rung : int
        Index of the rung the next evaluation starts at (0: normal settings; the lower rungs
        are tried after the higher ones fail). The MD driver raises it inside a stretch of SCF
        failures so that steps which will not be recorded do not repeat attempts that just
        failed.
    rung : Rung or None
        Rung that produced the current results.
    rung_index : int
        Its index in ``reference.rungs``.
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    nolabel = True

    def __init__(self, reference: Reference, counts: ScfCounts, label: str = "") -> None:
        super().__init__()
        self.reference = reference
        self.counts = counts
        self.system = label
        self.first_rung = 0
        self.rung: Rung | None = None
        self.rung_index = 0
        self._calculators: dict[int, Calculator] = {}

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.rung = None
        errors = []
        failed: set[int] = set()
        rungs = list(enumerate(self.reference.rungs))
        # Start at first_rung; the lower rungs are still tried before giving up.
        for position, rung in rungs[self.first_rung :] + rungs[: self.first_rung]:
            if position == 1 and 0 in failed:
                self.counts.scf_retries += 1
            probe = Atoms(self.atoms.numbers, positions=self.atoms.positions)
            probe.calc = self._calculators.pop(position, None) or self.reference.calculator(rung)
            try:
                energy = probe.get_potential_energy()
                forces = probe.get_forces()
            except CalculationFailed as exc:
                failed.add(position)
                errors.append(f"{rung.name}: {exc}")
                logger.warning("%s: SCF failed with %s settings (%s)", self.system, rung.name, str(exc).strip())
                continue
            self._calculators[position] = probe.calc
            if not rung.recordable:
                self.counts.hot_steps += 1
            self.rung = rung
            self.rung_index = position
            self.results = {"energy": energy, "free_energy": energy, "forces": forces}
            return
        raise ScfFailure(f"{self.system}: every evaluation rung failed: " + "; ".join(errors))


def single_point_energies(
    frames: Sequence[Atoms], reference: Reference, label: str = "", *, give_up_after: int | None = None
) -> np.ndarray:
    """Reference energies (eV) of ``frames``, e.g. along an optimisation trajectory.

    Only the recordable rungs are tried (a hotter electronic temperature would change the
    physics), so every energy is comparable; a frame no rung converges on gets NaN. One
    ladder is reused, so each SCF starts from the previous frame's density. After
    ``give_up_after`` failures in a row the remaining frames get NaN without a try (a path
    that has broken the structure fails every SCF, at minutes per failure for 100+ atoms).
    """
    ladder = LadderCalculator(replace(reference, rungs=tuple(r for r in reference.rungs if r.recordable)), ScfCounts(), label)
    energies = np.full(len(frames), np.nan)
    in_a_row = 0
    for k, frame in enumerate(frames):
        if give_up_after is not None and in_a_row >= give_up_after:
            logger.warning("%s: %d SCF failures in a row; frames %d-%d left as NaN", label, in_a_row, k, len(frames) - 1)
            break
        probe = Atoms(frame.numbers, positions=frame.positions)
        probe.calc = ladder
        try:
            energies[k] = probe.get_potential_energy()
            in_a_row = 0
        except ScfFailure as exc:
            in_a_row += 1
            logger.warning("%s frame %d: %s", label, k, exc)
    return energies
