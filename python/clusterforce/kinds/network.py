"""What the neural kinds (sann, dart) share: a fitted state that is exactly their model file.

A kind using :class:`NetworkModelFile` provides ``_arrays_metadata()`` (its file's arrays and the
metadata beyond the common keys), ``_restore(mf)`` (its learned attributes from a loaded file),
``_COMPILED`` (the kind's ``_kernels`` network class with ``from_bytes``, for training) and
``_FITTED`` (an attribute set by ``fit``). Prediction, the model file and pickling are
:class:`clusterforce.core.estimator.Estimator`'s.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _Z
from sklearn.utils.validation import check_is_fitted

from clusterforce.core import baseline as pair_wall
from clusterforce.core import modelfile
from clusterforce.core.baseline import R_MIN_FIELD, training_r_min
from clusterforce.core.estimator import Estimator
from clusterforce.data import dataset_hash, frame_label, get_energy, species_indices
from clusterforce.kinds import composition


class NetworkModelFile(Estimator):
    _COMPILED: Any
    _UNPICKLED = ("_network_compiled",)

    @abc.abstractmethod
    def _arrays_metadata(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The kind's own arrays and metadata (``hyperparameters`` among them)."""

    @abc.abstractmethod
    def _restore(self, mf: modelfile.ModelFile) -> None:
        """Set the kind's own learned attributes from a loaded file."""

    # ------------------------------------------------------------ shared fitting steps
    def _index_species(self, frames: Sequence[Atoms]) -> list[np.ndarray]:
        """Set ``element_list_`` (sorted by atomic number) and ``atomic_numbers_``; return every
        frame's species indices."""
        self.element_list_ = sorted({s for a in frames for s in a.get_chemical_symbols()}, key=lambda s: _Z[s])
        self.atomic_numbers_ = [_Z[s] for s in self.element_list_]
        return [species_indices(a, self.element_list_, label=frame_label(a, i)) for i, a in enumerate(frames)]

    def _fit_isolated_energies(self, frames: Sequence[Atoms], species: Sequence[np.ndarray], *, spread: float = 1.0) -> np.ndarray:
        """Per-species energies ``e0_`` (eV) as the ``e0`` parameter says (:func:`clusterforce.kinds.composition.resolve`),
        and the network's output scale ``e_scale_`` = ``spread`` x the spread of the per-atom
        remainder (at least 1 meV); returns each frame's remainder (eV), what the network fits."""
        e0, self.e0_source_ = composition.resolve(self.e0, frames, self.element_list_)
        self.e0_ = np.array([e0[s] for s in self.element_list_])
        residual = np.array([get_energy(a) - composition.isolated_energy(a, e0) for a in frames])
        n_atoms = np.array([len(s) for s in species], dtype=float)
        self.e_scale_ = float(max(np.std(residual / n_atoms) * spread, 1e-3))
        return residual

    def _finish_fit(self, frames: Sequence[Atoms], start: float) -> None:
        """Record the data and the fit time in ``training_`` and build the compiled predictor."""
        self.training_ = {
            **self.training_,
            "data_hash": dataset_hash(frames),
            "n_frames": len(frames),
            "fit_seconds": time.perf_counter() - start,
            **composition.training_domain(frames, self.element_list_),
        }
        self.r_min_ = training_r_min(frames, self.element_list_)
        self._build_predictor()

    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, metadata = self._arrays_metadata()
        common = {
            "elements": self.element_list_,
            "atomic_numbers": self.atomic_numbers_,
            "e_scale": self.e_scale_,
            "e0": dict(zip(self.element_list_, np.asarray(self.e0_, dtype=float).tolist())),
            **({"e0_source": self.e0_source_} if getattr(self, "e0_source_", None) else {}),
            "training": self.training_,
        }
        if getattr(self, "r_min_", None) is not None:
            arrays = {**arrays, R_MIN_FIELD: np.asarray(self.r_min_, dtype=float)}
        if getattr(self, "baseline_r_s_", None) is not None:  # the wall: added by the C++ driver
            wall_arrays, wall_metadata = pair_wall.file_entries(self.baseline_r_s_)
            arrays, metadata = {**arrays, **wall_arrays}, {**metadata, **wall_metadata}
        return {"e0": np.asarray(self.e0_, dtype=float), **arrays}, {**common, **metadata}

    def _build_predictor(self) -> None:
        """Build the kind's compiled network (training uses it) from the model-file bytes; the
        Predictor is rebuilt from the same bytes on the next predict."""
        arrays, metadata = self._file_contents()
        data = modelfile.to_bytes(kind=self.kind, arrays=arrays, metadata=metadata)
        self._network_compiled = self._COMPILED.from_bytes(data, f"{self.kind} model")
        self._compiled = None

    def _network(self):
        """The kind's compiled network (``_COMPILED``) of the fitted state."""
        check_is_fitted(self, self._FITTED)
        if getattr(self, "_network_compiled", None) is None:
            self._build_predictor()
        return self._network_compiled

    @classmethod
    def _from_file(cls, mf: modelfile.ModelFile):
        meta = mf.metadata
        with mf.reading():
            model = cls(**meta["hyperparameters"])
            model.element_list_ = list(meta["elements"])
            model.atomic_numbers_ = [int(z) for z in meta["atomic_numbers"]]
            model.e_scale_ = float(meta["e_scale"])
            model.training_ = meta["training"]
            model.e0_ = mf.array("e0", shape=(len(model.element_list_),))
            model.e0_source_ = meta.get("e0_source")  # None in files from before the field
            model.r_min_ = mf.arrays.get(R_MIN_FIELD)  # None in files from before the table
            model.baseline_r_s_ = mf.arrays.get("baseline/r_s")
            model._restore(mf)
            model._build_predictor()
        return model
