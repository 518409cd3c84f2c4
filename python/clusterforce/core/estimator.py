"""The one estimator base of every model kind (gap, dml, sann, dart).

A kind subclasses :class:`Estimator` and supplies only what is its own:

- ``fit(frames)`` (scikit-learn conventions: ``__init__`` stores its arguments, learned
  attributes end in ``_``; ``fit`` returns the estimator);
- ``_file_contents()``: the arrays and metadata of its model file (:mod:`clusterforce.core.modelfile`);
- at the end of ``fit``, ``self._fit_domain(frames, ...)``: the reference of the per-frame
  out-of-domain score (:mod:`clusterforce.core.domain`), which the base stores in the file;
- ``_from_file(mf)``: the fitted estimator rebuilt from a loaded model file of its kind
  (called inside ``mf.reading()``, so a missing or malformed field names the file);
- the class attributes ``kind``, ``implemented_properties`` (ASE names), ``_FITTED`` (an
  attribute that ``fit`` sets) and ``uncertainty_is_cheap`` (whether the ASE Calculator computes
  the uncertainty on every call by default; set from the measured cost, docs/adding-a-kind.md).

Everything else is here, once: :meth:`Estimator.predict` through the compiled
``_kernels.Predictor`` built from the very bytes :meth:`Estimator.save` writes (the C++ path
LAMMPS runs too), ``save``/``load``/``from_modelfile``, pickling (compiled objects are dropped
and rebuilt from the model-file bytes on first use), ``elements`` and ``provides_uncertainty``.
A kind whose fitted state holds other compiled objects lists them in ``_UNPICKLED``.
"""

from __future__ import annotations

import abc
import os
import warnings
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clusterforce import _kernels
from clusterforce.core import domain, modelfile
from clusterforce.data import charge_of, species_indices

#: The property that asks :meth:`Estimator.predict` for per-atom uncertainties.
UNCERTAINTY = "uncertainty"
#: Keys of the compiled Predictor's result that come with the uncertainty (passed through as they are).
UNCERTAINTY_KEYS = ("uncertainty", "forces_variance", "energies_variance", "energy_variance")
_ENERGY_KEYS = ("energy", "energies", "virial")


class Estimator(BaseEstimator, abc.ABC):
    """Base of the model kinds: prediction, model file and pickling through the compiled Predictor."""

    kind: ClassVar[str]
    implemented_properties: ClassVar[tuple[str, ...]]
    #: Whether ``Calculator(model)`` (``uncertainty=None``) computes uncertainties on every call.
    uncertainty_is_cheap: ClassVar[bool] = False
    _FITTED: ClassVar[str]
    #: Attributes holding compiled (unpicklable) objects, dropped by pickling and rebuilt on use.
    _UNPICKLED: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------ what a kind supplies
    @abc.abstractmethod
    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and metadata of this model's file."""

    @classmethod
    @abc.abstractmethod
    def _from_file(cls, mf: modelfile.ModelFile) -> Estimator:
        """The fitted estimator a loaded model file of this kind describes."""

    def _extra_results(self, result: dict[str, Any], out: dict[str, Any], atoms: Atoms, species: np.ndarray) -> dict[str, Any]:
        """Kind-specific entries of :meth:`predict`'s dict from the Predictor's output ``out``
        (default: none)."""
        return result

    # ------------------------------------------------------------ shared
    @property
    def elements(self) -> list[str]:
        """Chemical symbols the model knows, in species order (sorted by atomic number)."""
        check_is_fitted(self, self._FITTED)
        return list(self.element_list_)

    @property
    def provides_uncertainty(self) -> bool:
        """Whether ``predict(atoms, properties=["uncertainty"])`` gives per-atom uncertainties."""
        return bool(self._predictor().has_uncertainty)

    def _predictor(self) -> _kernels.Predictor:
        """The compiled Predictor of the model file :meth:`save` writes, built on first use (a
        kind sets ``_compiled = None`` whenever its fitted state changes)."""
        check_is_fitted(self, self._FITTED)
        if getattr(self, "_compiled", None) is None:
            arrays, metadata = self._contents()
            data = modelfile.to_bytes(kind=self.kind, arrays=arrays, metadata=metadata)
            self._compiled = _kernels.Predictor.from_bytes(data, getattr(self, "_source", f"<{type(self).__name__} in memory>"))
        return self._compiled

    def _contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The kind's file contents plus the domain reference of the out-of-domain score, if fitted."""
        arrays, metadata = self._file_contents()
        domain_arrays, domain_metadata = domain.file_entries(getattr(self, "domain_", None))
        return {**arrays, **domain_arrays}, {**metadata, **domain_metadata}

    def _fit_domain(self, frames: list[Atoms], frame_uncertainty: Iterable[float] | None = None, source: str | None = None) -> None:
        """Set ``domain_``, the reference of the out-of-domain score, from the training ``frames``
        and the largest per-atom uncertainty (eV/Angstrom) of each calibration frame (None: no
        uncertainty part); ``source`` names those frames in the file."""
        values = None if frame_uncertainty is None else list(frame_uncertainty)
        self.domain_ = domain.reference(frames, self.elements, values, source)
        self._compiled = None

    def _frame_uncertainties(self, frames: Iterable[Atoms]) -> list[float]:
        """The largest per-atom uncertainty (eV/Angstrom) of each frame, as predicted now."""
        return [float(np.max(self.predict(a, properties=[UNCERTAINTY])["uncertainty"])) for a in frames]

    def predict(self, atoms: Atoms, *, properties: Iterable[str] | None = None) -> dict[str, Any]:
        """Predict one structure (free cluster, or periodic cell where the kind allows it).

        Parameters
        ----------
        atoms
            The structure; every element must be one the model knows.
        properties
            ASE property names wanted. The result holds every property the model computes
            anyway; one it does not implement is a ValueError. ``"uncertainty"`` adds the
            per-atom uncertainties (ValueError if the model provides none).

        Returns
        -------
        dict
            ``forces`` (n, 3) eV/Angstrom, ``extrapolating`` (n,) bool (the atom is in a pair
            shorter than the shortest of its two elements in the training data); energy kinds
            also ``energy`` and ``free_energy`` (eV), ``energies`` (n,) eV and ``virial``
            (3, 3) eV. With the uncertainty: ``uncertainty`` (n,) eV/Angstrom (the expected size
            of the atom's force error) and, where the kind has them, ``forces_variance`` (n, 3)
            eV^2/Angstrom^2, ``energies_variance`` (n,) and ``energy_variance`` eV^2. A kind may
            add its own entries (dml: ``norms``, ``directions``, ``spread``, ``classes``).
        """
        wanted = {properties} if isinstance(properties, str) else set(properties or ())
        unknown = wanted - set(self.implemented_properties) - {UNCERTAINTY}
        if unknown:
            raise ValueError(
                f"this {self.kind} model does not predict {', '.join(sorted(unknown))} "
                f"(it predicts {', '.join(self.implemented_properties)})"
            )
        predictor = self._predictor()
        uncertainty = UNCERTAINTY in wanted
        if uncertainty and not predictor.has_uncertainty:
            raise ValueError(f"this {self.kind} model provides no per-atom uncertainty (its kind has none, or its file was saved without)")
        species = species_indices(atoms, self.elements)  # callers that know the frame's file name it
        periodic = bool(np.any(atoms.pbc))
        cell = np.array(atoms.cell[:], dtype=float) if periodic else None
        pbc = tuple(bool(p) for p in atoms.pbc)
        charge = charge_of(atoms)
        out = dict(predictor.compute(np.asarray(atoms.positions, dtype=float), species, cell, pbc, uncertainty=uncertainty, charge=charge))
        self._warn_once(out.pop("warnings", ()))
        result: dict[str, Any] = {"forces": out["forces"], "extrapolating": out["extrapolating"]}
        if "energy" in out:
            result.update({key: out[key] for key in _ENERGY_KEYS})
            result["free_energy"] = out["energy"]
        # dml's uncertainty comes with every prediction; the others' only when asked for.
        result.update({key: out[key] for key in (*UNCERTAINTY_KEYS, *domain.RESULT_KEYS) if key in out})
        return self._extra_results(result, out, atoms, species)

    def _warn_once(self, messages: Iterable[str]) -> None:
        """``warnings.warn`` each distinct message of the C++ driver once per model instance."""
        seen = self.__dict__.setdefault("_warned", set())
        for message in messages:
            if message not in seen:
                seen.add(message)
                warnings.warn(message, UserWarning, stacklevel=3)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for name in ("_compiled", "_warned", *self._UNPICKLED):
            state.pop(name, None)
        return state

    # ------------------------------------------------------------ model file
    def save(self, path: str | os.PathLike) -> None:
        """Write the model as a ``.cfm`` file of its kind."""
        check_is_fitted(self, self._FITTED)
        arrays, metadata = self._contents()
        modelfile.save(path, kind=self.kind, arrays=arrays, metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
        """Read a model file of this kind; ModelFileError naming the file if it is not one."""
        return cls.from_modelfile(modelfile.load(path, kind=cls.kind))

    @classmethod
    def from_modelfile(cls, mf: modelfile.ModelFile) -> Estimator:
        """A fitted model from a loaded model file of this kind; ModelFileError naming the file otherwise."""
        with mf.reading():
            model = cls._from_file(mf)
            model.domain_ = domain.from_file(mf)
            model._compiled = None  # rebuilt with the domain reference
            model._source = str(mf.path)
            model._predictor()  # a file the C++ reader refuses is refused at load, naming it
        return model
