"""The ``morse`` estimator: per element pair, the amplitudes A and B of

    phi(r) = fc(r) (A exp(-2 alpha (r - r0)) + B exp(-alpha (r - r0))),  fc(r) = (1 + cos(pi r / r_cut)) / 2,

and one energy e0 per element, fitted by linear least squares to energies (per atom) and forces.
The C++ side (``tests/new_kind/morse.hpp``) evaluates exactly this sum; everything else
(``predict``, ``save``/``load``, pickling) is the estimator base's.

Model file (kind ``"morse"``): arrays ``morse/A``, ``morse/B`` (n_elements x n_elements, eV),
``morse/e0`` (n_elements, eV), ``training/r_min`` (shortest training distance per element pair,
Angstrom); metadata ``elements``, ``hyperparameters`` (``r_cut``, ``alpha``, ``r0``, ...) and
``training`` (``n_frames``, ``compositions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list
from clusterforce.core import modelfile
from clusterforce.core.estimator import Estimator
from clusterforce.data import get_energy, get_forces, species_indices, validate_frames


def _pair_terms(r: np.ndarray, r_cut: float, alpha: float, r0: float) -> tuple[np.ndarray, np.ndarray]:
    """(terms, d terms / dr) of each distance r (Angstrom): columns fc e^{-2 alpha (r - r0)} and fc e^{-alpha (r - r0)}."""
    x = np.exp(-alpha * (r - r0))
    fc = 0.5 * (1.0 + np.cos(np.pi * r / r_cut))
    dfc = -0.5 * np.pi / r_cut * np.sin(np.pi * r / r_cut)
    basis = np.stack([x * x, x], axis=1)
    dbasis = np.stack([-2.0 * alpha * x * x, -alpha * x], axis=1)
    return fc[:, None] * basis, dfc[:, None] * basis + fc[:, None] * dbasis


class MorseModel(Estimator):
    """Pair potential per element pair with a smooth cosine cutoff, linear in its amplitudes.

    Parameters
    ----------
    r_cut
        Cutoff radius (Angstrom): energy and force reach zero smoothly there.
    alpha
        Inverse width of the exponentials (1/Angstrom).
    r0
        Reference distance of the exponentials (Angstrom).
    force_weight
        Weight of a force component (eV/Angstrom) against a per-atom energy (eV) in the fit.
    ridge
        Tikhonov regularisation of the amplitudes (dimensionless, relative to the design's scale).
    """

    kind: ClassVar[str] = "morse"
    implemented_properties: ClassVar[tuple[str, ...]] = ("energy", "free_energy", "energies", "forces")
    _FITTED: ClassVar[str] = "A_"

    def __init__(self, *, r_cut: float = 5.0, alpha: float = 1.5, r0: float = 2.6, force_weight: float = 1.0, ridge: float = 1e-8):
        self.r_cut = r_cut
        self.alpha = alpha
        self.r0 = r0
        self.force_weight = force_weight
        self.ridge = ridge

    def fit(self, frames: Sequence[Atoms]) -> MorseModel:
        """Least-squares amplitudes and e0 from frames with energies (eV) and, where present, forces (eV/Angstrom)."""
        validate_frames(frames, need_energy=True, need_forces=False)
        self.element_list_ = sorted({s for a in frames for s in a.get_chemical_symbols()}, key=atomic_numbers.get)
        n = len(self.element_list_)
        pairs = [(a, b) for a in range(n) for b in range(a, n)]
        column = {pair: k for k, pair in enumerate(pairs)}
        n_amp = 2 * len(pairs)
        rows, targets, r_min = [], [], np.full((n, n), np.inf)
        for atoms in frames:
            species = species_indices(atoms, self.element_list_)
            i, j, d, r = neighbor_list("ijdD", atoms, self.r_cut)
            cols = np.array([column[(min(a, b), max(a, b))] for a, b in zip(species[i], species[j])], dtype=int)
            np.minimum.at(r_min, (species[i], species[j]), d)
            terms, dterms = _pair_terms(d, self.r_cut, self.alpha, self.r0)
            # Energy per atom: each unordered pair once (the neighbour list holds both orders).
            energy_row = np.zeros(n_amp + n)
            for t in range(2):
                np.add.at(energy_row, 2 * cols + t, 0.5 * terms[:, t])
            energy_row[n_amp:] = np.bincount(species, minlength=n)
            rows.append(energy_row / len(atoms))
            targets.append([get_energy(atoms) / len(atoms)])
            forces = get_forces(atoms)
            if forces is None:
                continue
            # F_k = -dE/dx_k; an ordered pair (i, j) adds 0.5 phi'(r) r_hat to dE/dx_j and takes it from dE/dx_i.
            force_rows = np.zeros((len(atoms), 3, n_amp + n))
            unit = r / d[:, None]
            for t in range(2):
                g = 0.5 * dterms[:, t : t + 1] * unit
                for x in range(3):
                    np.add.at(force_rows[:, x], (j, 2 * cols + t), -g[:, x])
                    np.add.at(force_rows[:, x], (i, 2 * cols + t), g[:, x])
            rows.append(self.force_weight * force_rows.reshape(-1, n_amp + n))
            targets.append(self.force_weight * np.asarray(forces, dtype=float).reshape(-1))
        design, target = np.vstack([np.atleast_2d(r) for r in rows]), np.concatenate(targets)
        scale = float(np.max(np.abs(design))) or 1.0
        regulariser = np.sqrt(self.ridge) * scale * np.eye(design.shape[1])
        solution = np.linalg.lstsq(np.vstack([design, regulariser]), np.concatenate([target, np.zeros(design.shape[1])]), rcond=None)[0]
        self.A_, self.B_ = np.zeros((n, n)), np.zeros((n, n))
        for (a, b), k in column.items():
            self.A_[a, b] = self.A_[b, a] = solution[2 * k]
            self.B_[a, b] = self.B_[b, a] = solution[2 * k + 1]
        self.e0_ = solution[n_amp:]
        self.r_min_ = np.where(np.isfinite(r_min), r_min, 0.0)
        compositions = {tuple(np.bincount(species_indices(a, self.element_list_), minlength=n).tolist()) for a in frames}
        self.training_ = {"n_frames": len(frames), "compositions": [list(c) for c in sorted(compositions)]}
        self._compiled = None
        return self

    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"morse/A": self.A_, "morse/B": self.B_, "morse/e0": self.e0_, "training/r_min": self.r_min_}
        metadata = {"elements": list(self.element_list_), "hyperparameters": self.get_params(), "training": self.training_}
        return arrays, metadata

    @classmethod
    def _from_file(cls, mf: modelfile.ModelFile) -> MorseModel:
        model = cls(**mf.metadata["hyperparameters"])
        model.element_list_ = list(mf.metadata["elements"])
        n = len(model.element_list_)
        model.A_ = mf.array("morse/A", shape=(n, n))
        model.B_ = mf.array("morse/B", shape=(n, n))
        model.e0_ = mf.array("morse/e0", shape=(n,))
        model.r_min_ = mf.array("training/r_min", shape=(n, n))
        model.training_ = dict(mf.metadata["training"])
        model._compiled = None
        return model
