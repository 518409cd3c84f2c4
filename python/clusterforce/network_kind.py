"""What the neural kinds (sann, dart) share: a fitted state that is exactly their model file.

A kind using :class:`NetworkModelFile` provides ``_arrays_metadata()`` (its file's arrays and the
metadata beyond the common keys), ``_restore(mf)`` (its learned attributes from a loaded file),
``_COMPILED`` (the ``_kernels`` class with ``from_bytes``) and ``_FITTED`` (an attribute set by
``fit``). The compiled predictor is built from the very bytes ``save`` writes, so Python, ASE and
LAMMPS run one path, and is dropped when pickling (compiled objects do not pickle).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import modelfile


class NetworkModelFile:
    kind: str
    _COMPILED: Any
    _FITTED: str

    def _arrays_metadata(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    def _restore(self, mf: modelfile.ModelFile) -> None:
        raise NotImplementedError

    @property
    def elements(self) -> list[str]:
        """Chemical symbols the model knows, in species order (sorted by atomic number)."""
        check_is_fitted(self, self._FITTED)
        return list(self.element_list_)

    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, metadata = self._arrays_metadata()
        common = {
            "elements": self.element_list_,
            "atomic_numbers": self.atomic_numbers_,
            "e_scale": self.e_scale_,
            "training": self.training_,
        }
        return {"e0": np.asarray(self.e0_, dtype=float), **arrays}, {**common, **metadata}

    def _build_predictor(self) -> None:
        arrays, metadata = self._file_contents()
        self._compiled = self._COMPILED.from_bytes(
            modelfile.to_bytes(kind=self.kind, arrays=arrays, metadata=metadata), f"{self.kind} model"
        )

    def _predictor(self):
        check_is_fitted(self, self._FITTED)
        if getattr(self, "_compiled", None) is None:
            self._build_predictor()
        return self._compiled

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_compiled", None)
        return state

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as a ``.cfm`` file of this kind."""
        check_is_fitted(self, self._FITTED)
        arrays, metadata = self._file_contents()
        modelfile.save(path, kind=self.kind, arrays=arrays, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike):
        return cls.from_modelfile(modelfile.load(path, kind=cls.kind))

    @classmethod
    def from_modelfile(cls, mf: modelfile.ModelFile):
        """A fitted model from a loaded model file of this kind; ModelFileError naming the file otherwise."""
        meta = mf.metadata
        try:
            model = cls(**meta["hyperparameters"])
            model.element_list_ = list(meta["elements"])
            model.atomic_numbers_ = [int(z) for z in meta["atomic_numbers"]]
            model.e_scale_ = float(meta["e_scale"])
            model.training_ = meta["training"]
            model.e0_ = mf.array("e0", shape=(len(model.element_list_),))
            model._restore(mf)
            model._build_predictor()
        except KeyError as exc:
            raise modelfile.ModelFileError(f"{mf.path}: field {exc} is missing from the {cls.kind} model") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, modelfile.ModelFileError):
                raise
            raise modelfile.ModelFileError(f"{mf.path}: inconsistent {cls.kind} model: {exc}") from None
        return model
