"""The ``gap`` model kind: GAP-style sparse Gaussian process (2b + 3b + SOAP), energy-conserving.

Training (:meth:`GAPModel.fit`) follows gap_fit: total energies and forces with per-frame
noise, isolated-atom energies e0, sparse points per term, projected-process solve of normal
equations streamed chunk by chunk. Prediction (:meth:`GAPModel.predict`) is the compiled
``clusterforce._kernels.GapModel`` -- the code the LAMMPS pair style runs.

Model file (kind ``"gap"``), read by :meth:`GAPModel.load` and by C++ ``read_gap_model``:

- metadata: ``elements``, ``atomic_numbers`` (species order, sorted by Z), ``terms`` (each
  term's hyperparameters, :mod:`clusterforce.kinds.gap.terms`), ``e0`` (eV per element),
  ``hyperparameters`` (the estimator's other parameters), ``training`` (data hash, frame
  count, solver, metrics);
- arrays: ``e0`` (n_species,), per term i ``terms/i/sparse`` (M_i, D), ``terms/i/offsets``
  (channels + 1,), ``terms/i/alpha`` (M_i,), and ``variance`` (M, M) when saved with variances;
- after ``clusterforce map`` (:mod:`clusterforce.kinds.gap.mapping`): metadata ``maps`` (per mapped
  term its index, grid and the error the tables add) and arrays ``maps/i/knots_r``,
  ``maps/i/knots_cos`` (3b), ``maps/i/coefficients``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _Z
from ase.data import chemical_symbols
from sklearn.utils.validation import check_is_fitted

from clusterforce import _kernels
from clusterforce.core import baseline as pair_wall
from clusterforce.core import domain, modelfile
from clusterforce.core.estimator import Estimator
from clusterforce.data import dataset_hash, frame_label, get_energy, get_forces, species_indices, validate_frames
from clusterforce.data.metrics import collect_predictions, energy_force_metrics
from clusterforce.kinds import composition
from clusterforce.kinds.gap import design as gp
from clusterforce.kinds.gap.kernels import Geometry, NBodyKernel, SoapKernel
from clusterforce.kinds.gap.solve import inverse, solve, variance_matrix
from clusterforce.kinds.gap.terms import PRESET_NOISE, PRESETS, Soap, Term, preset_for, term_from_dict

logger = logging.getLogger(__name__)

KIND = "gap"


#: At most this many groups of frames are left out in turn to calibrate the force uncertainty.
CALIBRATION_GROUPS = 5
#: Frames of each left-out group predicted for the calibration.
CALIBRATION_FRAMES = 10


def calibration_groups(frames: Sequence[Atoms]) -> np.ndarray:
    """Group of each frame for the uncertainty calibration (``GAPModel(calibrate_uncertainty=True)``).

    By ``info["system"]`` (what ``clusterforce datagen`` writes: the cluster size or ring) when it
    takes two values or more, so each group is a size the rest never saw; the systems, sorted, are
    dealt into at most :data:`CALIBRATION_GROUPS` groups. Otherwise contiguous blocks of frames (parts
    of trajectories). Fewer than 4 frames: one group (no calibration).
    """
    n = len(frames)
    systems = [str(a.info.get("system", "")) for a in frames]
    names = sorted(set(systems))
    if len(names) >= 2 and "" not in names:
        index = {name: i % CALIBRATION_GROUPS for i, name in enumerate(names)}
        return np.array([index[s] for s in systems], dtype=int)
    if n < 4:
        return np.zeros(n, dtype=int)
    return np.minimum(np.arange(n) * min(CALIBRATION_GROUPS, n // 2) // n, CALIBRATION_GROUPS - 1)


class GAPModel(Estimator):
    """Sparse GP force field of kind ``gap``: E = sum_i e0[s_i] + sum of 2b, 3b and SOAP terms.

    Parameters
    ----------
    terms : sequence of TwoBody, ThreeBody, Soap, optional
        The additive terms and their hyperparameters. Default: the preset for the training
        data's elements (:func:`clusterforce.kinds.gap.terms.preset_for`; logged at fit).
    species : sequence of str, optional
        Chemical symbols to model; default: every element in the training frames.
    e0 : mapping of symbol to eV, or str, optional
        Isolated-atom energies (eV per element), ``"reference"`` / ``"reference:NAME"`` (isolated
        atoms computed with that reference) or ``"fit"``/None (default): the energies of single-atom
        frames in the data if every element has one (as gap_fit), otherwise a least-squares fit of
        the frame energies to the composition (:mod:`clusterforce.kinds.composition`).
    sigma_energy : float, optional
        Energy noise per atom (eV/atom); a frame's total-energy noise is sigma_energy *
        sqrt(n_atoms). Overridden per frame by ``info["energy_sigma"]`` (eV/atom). Default: the
        preset's for the data's elements (:data:`clusterforce.kinds.gap.terms.PRESET_NOISE`: 0.001 for
        alkali metals, 0.01 otherwise; logged at fit).
    sigma_force : float, optional
        Force noise (eV/Angstrom). Overridden per frame by ``info["force_sigma"]`` and per
        atom by ``arrays["force_atom_sigma"]``. Default: the preset's (0.02).
    jitter : float
        Relative diagonal jitter of the Cholesky solve (raised x100 on failure).
    variance : bool
        Also compute the posterior matrix needed for predictive variances (costs the inverse of
        K_mm, once per fit, one of K_mm + A^T A per solve, and M^2 numbers in the model file).
    baseline : bool
        Add a repulsive pair wall below the shortest training distance of each element pair
        (:mod:`clusterforce.core.baseline`; default on). The GP is fitted to the reference minus the
        wall, which is the reference itself: the wall starts below every training pair, so it is
        zero on every training frame and the GP is the one a fit without it gives.
    calibrate_uncertainty : bool
        Scale the force standard deviation so that it estimates held-out force errors (with
        ``variance``): the frames are split into groups (by ``info["system"]``, e.g. cluster size,
        when it takes two values or more, else contiguous blocks), each group is taken out of the
        normal equations in turn, the model without it predicts it, and per element the ratio
        RMS force error / RMS predicted standard deviation becomes the factor
        (``uncertainty_scale_``). The GP variance alone measured 3-10x below the held-out errors
        (docs/benchmarks.md, "uncertainty"). Costs one solve per group, no new rows.
    max_chunk_mb : float
        Memory for buffered design rows (MB); bounds the training memory with O(M^2).
    max_candidates : int
        SOAP environments per species considered for sparse selection.
    random_state : int
        Seed of the candidate subsampling.
    progress : bool
        Show tqdm progress bars while fitting.
    """

    kind = KIND
    # stress only for fully periodic cells (the ASE Calculator refuses it for clusters)
    implemented_properties = ("energy", "free_energy", "energies", "forces", "stress")
    _FITTED = "alpha_"
    _UNPICKLED = ("_gap_model",)

    def __init__(
        self,
        *,
        terms: Sequence[Term] | None = None,
        species: Sequence[str] | None = None,
        e0: Mapping[str, float] | None = None,
        sigma_energy: float | None = None,
        sigma_force: float | None = None,
        jitter: float = 1e-10,
        variance: bool = True,
        baseline: bool = True,
        calibrate_uncertainty: bool = True,
        max_chunk_mb: float = 256.0,
        max_candidates: int = 20000,
        random_state: int = 0,
        progress: bool = True,
    ) -> None:
        self.terms = terms
        self.species = species
        self.e0 = e0
        self.sigma_energy = sigma_energy
        self.sigma_force = sigma_force
        self.jitter = jitter
        self.variance = variance
        self.baseline = baseline
        self.calibrate_uncertainty = calibrate_uncertainty
        self.max_chunk_mb = max_chunk_mb
        self.max_candidates = max_candidates
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ training
    def fit(self, frames: Iterable[Atoms], *, comm=None) -> GAPModel:
        """Train on frames with reference energies (eV) and/or forces (eV/Angstrom).

        Parameters
        ----------
        frames
            Clusters or periodic structures; each needs an energy, forces, or both.
        comm
            Optional mpi4py communicator: every rank passes the same frames, each builds the
            rows of its share and the normal equations are Allreduced.
        """
        start = time.perf_counter()
        frames = list(frames)
        terms = self._check_hyperparameters()
        if not frames:
            raise ValueError("no training frames given")
        validate_frames(frames, need_energy=False, need_forces=False)
        self._check_frames(frames)
        self.atomic_numbers_ = self._species(frames)
        self.element_list_ = [chemical_symbols[z] for z in self.atomic_numbers_]
        preset = preset_for(self.element_list_)
        if terms is None:
            terms = list(PRESETS[preset])
            logger.info(
                "gap terms: preset %r for %s (pass terms= to choose): %s", preset, "".join(self.element_list_), [t.to_dict() for t in terms]
            )
        noise = PRESET_NOISE[preset]
        self.sigma_energy_ = noise[0] if self.sigma_energy is None else float(self.sigma_energy)
        self.sigma_force_ = noise[1] if self.sigma_force is None else float(self.sigma_force)
        if self.sigma_energy is None or self.sigma_force is None:
            logger.info("gap noise: %g eV/atom, %g eV/A (preset %r where not given)", self.sigma_energy_, self.sigma_force_, preset)
        self.e0_, self.e0_source_ = composition.resolve(self.e0, frames, self.element_list_)
        self.baseline_r_s_ = pair_wall.fit_pair_wall(frames, self.element_list_) if self.baseline else None
        self.r_min_ = pair_wall.training_r_min(frames, self.element_list_)
        samples = [self._sample(a, i) for i, a in enumerate(frames)]
        self.kernels_ = gp.make_kernels(terms, self.atomic_numbers_, seed=self.random_state, max_candidates=self.max_candidates)
        gp.select_sparse_points(self.kernels_, samples, progress=self.progress, comm=comm)
        k_mm = gp.sparse_covariance(self.kernels_)
        m = len(k_mm)
        groups = calibration_groups(frames) if self.variance and self.calibrate_uncertainty else np.zeros(len(frames), dtype=int)
        per_group, n_rows = [], 0
        for g in range(groups.max() + 1):
            eq = gp.accumulate(self.kernels_, [samples[i] for i in np.flatnonzero(groups == g)],
                               chunk_rows=gp.chunk_rows_for(m, self.max_chunk_mb), progress=self.progress, comm=comm)  # fmt: skip
            per_group.append(eq.finish())
            n_rows += eq.n_rows
            del eq
        ata, atb = sum(a for a, _ in per_group), sum(b for _, b in per_group)
        # Kept for partial_fit: new frames add their rows here, so an update costs the same however
        # many frames came before (O(rows M^2 + M^3), no pass over the old data).
        self.normal_equations_ = (k_mm, ata, atb)
        # Inverted once: the variance matrix of every solve (one per left-out group below, and each partial_fit) reuses it.
        self._k_mm_inverse = inverse(k_mm) if self.variance else None
        self.uncertainty_scale_, calibration, held_out_uncertainty = None, None, None
        if len(per_group) > 1:
            self.uncertainty_scale_, calibration, held_out_uncertainty = self._calibrate(frames, groups, per_group)
        del per_group
        solution = self._solve()
        fit_seconds = time.perf_counter() - start
        self.training_ = {
            "data_hash": dataset_hash(frames),
            "n_frames": len(frames),
            "n_rows": int(n_rows),
            "n_sparse": [k.n_sparse for k in self.kernels_],
            "solver": solution.method,
            "solver_jitter": solution.jitter,
            "sigma_energy": self.sigma_energy_,
            "sigma_force": self.sigma_force_,
            "fit_seconds": fit_seconds,
            "uncertainty_calibration": calibration,
            "metrics": self.score_frames(frames),
            **composition.training_domain(frames, self.element_list_),
        }
        self._fit_domain(frames, held_out_uncertainty, "left-out calibration groups")
        return self  # _fit_domain dropped the compiled Predictor: rebuilt with the training compositions too

    def _calibrate(self, frames: list[Atoms], groups: np.ndarray, per_group: list) -> tuple[np.ndarray, dict[str, Any], list[float]]:
        """Per-species factors for the force standard deviation from leaving each group out of the
        normal equations (``calibrate_uncertainty``), what the training record keeps of them, and the
        largest scaled per-atom uncertainty (eV/Angstrom) of each left-out frame predicted."""
        k_mm, ata, atb = self.normal_equations_
        n_species = len(self.element_list_)
        err2, var = np.zeros(n_species), np.zeros(n_species)
        held_out = []  # (species, summed force variance) per predicted frame, for the domain reference
        for g, (ata_g, atb_g) in enumerate(per_group):
            held = [i for i in np.flatnonzero(groups == g) if get_forces(frames[i]) is not None]
            if not held or len(held) == len(frames):
                continue
            alpha = solve(k_mm, ata - ata_g, atb - atb_g, jitter=self.jitter).alpha
            predictor = self._gap_model_for(self._per_term(alpha), variance_matrix(self._k_mm_inverse, k_mm + ata - ata_g), None, {})
            for i in held[:: max(1, len(held) // CALIBRATION_FRAMES)][:CALIBRATION_FRAMES]:
                geometry = self._geometry(frames[i], frame_label(frames[i], i))
                out = predictor.compute(geometry.positions, geometry.species, True, geometry.cell, geometry.pbc)
                np.add.at(err2, geometry.species, ((out["forces"] - get_forces(frames[i])) ** 2).sum(axis=1))
                np.add.at(var, geometry.species, out["forces_variance"].sum(axis=1))
                held_out.append((geometry.species, out["forces_variance"].sum(axis=1)))
        seen = var > 0
        scale = np.ones(n_species)
        scale[seen] = np.sqrt(err2[seen] / var[seen])
        if seen.any():
            scale[~seen] = np.median(scale[seen])  # an element no left-out group had: the typical factor
        record = {"groups": int(len(per_group)), "scale": dict(zip(self.element_list_, scale.round(4).tolist()))}
        logger.info("force uncertainty calibrated on %d left-out groups: x %s", len(per_group), record["scale"])
        # Each frame's largest uncertainty as predicted without its group: the out-of-domain score's limit.
        return scale, record, [float(np.max(scale[species] * np.sqrt(v))) for species, v in held_out]

    def _solve(self):
        """Solve the kept normal equations; set alpha, the variance matrix and the predictor."""
        k_mm, ata, atb = self.normal_equations_
        solution = solve(k_mm, ata, atb, jitter=self.jitter)
        m = len(k_mm)
        logger.info("solved %d x %d normal equations by %s, jitter %.1e", m, m, solution.method, solution.jitter)
        self.variance_ = variance_matrix(self._k_mm_inverse, k_mm + ata) if self.variance else None
        self.alpha_ = self._per_term(solution.alpha)
        if getattr(self, "maps_", None):
            logger.warning("new weights: the tables of `clusterforce map` are dropped (map the model again)")
        self.maps_, self.map_info_ = {}, []
        self._build_predictor()
        return solution

    def partial_fit(self, frames: Iterable[Atoms]) -> GAPModel:
        """Add frames to a fitted model: their rows join the normal equations, which are solved again.

        The sparse points, isolated-atom energies and hyperparameters stay those of :meth:`fit`
        (the baseline, if any, moves below pairs the new frames bring closer),
        so the result equals a fit on all frames with those sparse points (to round-off), and the
        cost of an update does not grow with the frames already fitted. This is what on-the-fly
        learning needs. A model loaded from a file has no normal equations: refit it.
        """
        check_is_fitted(self, self._FITTED)
        if getattr(self, "normal_equations_", None) is None:
            raise ValueError("this GAPModel has no normal equations (loaded from a file?); call fit() on all frames instead")
        frames = list(frames)
        if not frames:
            return self
        validate_frames(frames, need_energy=False, need_forces=False)
        self._check_frames(frames)
        k_mm, ata, atb = self.normal_equations_
        offset = self.training_["n_frames"]
        for i, atoms in enumerate(frames):
            species_indices(atoms, self.element_list_, label=frame_label(atoms, offset + i))
        samples = [self._sample(a, offset + i) for i, a in enumerate(frames)]
        eq = gp.accumulate(self.kernels_, samples, chunk_rows=gp.chunk_rows_for(len(k_mm), self.max_chunk_mb), progress=False)
        new_ata, new_atb = eq.finish()
        self.normal_equations_ = (k_mm, ata + new_ata, atb + new_atb)
        if getattr(self, "baseline_r_s_", None) is not None:  # zero on the new frames too, as fit() made it on the old
            self.baseline_r_s_ = pair_wall.lower_pair_wall(self.baseline_r_s_, frames, self.element_list_)
        if getattr(self, "r_min_", None) is not None:
            self.r_min_ = pair_wall.training_r_min(frames, self.element_list_, known=self.r_min_)
        self.domain_ = domain.extended(getattr(self, "domain_", None), frames, self.element_list_)
        self._solve()
        self.training_["n_frames"] += len(frames)
        self.training_["n_rows"] += int(eq.n_rows)
        self.training_["data_hash"] = None  # no longer the hash of one data set
        if "compositions" in self.training_:  # models from before the field stay without it
            self.training_.update(composition.training_domain(frames, self.element_list_, known=self.training_))
        self._compiled = None
        return self

    def _check_hyperparameters(self) -> list[Term] | None:
        """The validated terms, or None when they are to come from the data's preset."""
        terms = None if self.terms is None else list(self.terms)
        if terms is not None and not terms:
            raise ValueError("GAPModel needs at least one term (TwoBody, ThreeBody or Soap)")
        for t in terms or ():
            if not hasattr(t, "validate"):
                raise ValueError(f"GAP terms must be TwoBody, ThreeBody or Soap objects, got {t!r}")
            t.validate()
        if sum(isinstance(t, Soap) for t in terms or ()) > 1:
            raise ValueError("GAPModel takes at most one Soap term")
        for name in ("sigma_energy", "sigma_force", "jitter", "max_chunk_mb"):
            value = getattr(self, name)
            if value is None and name.startswith("sigma"):
                continue
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"GAPModel: '{name}' must be a positive number, got {value!r}")
        if not isinstance(self.max_candidates, int) or self.max_candidates < 1:
            raise ValueError(f"GAPModel: 'max_candidates' must be a positive integer, got {self.max_candidates!r}")
        return terms

    @staticmethod
    def _check_frames(frames: list[Atoms]) -> None:
        for i, a in enumerate(frames):
            if get_energy(a) is None and get_forces(a) is None:
                raise ValueError(f"{frame_label(a, i)}: frame has neither a reference energy nor forces")

    def _species(self, frames: list[Atoms]) -> list[int]:
        present = sorted({int(z) for a in frames for z in a.numbers})
        if self.species is None:
            return present
        unknown = [s for s in self.species if s not in _Z]
        if unknown:
            raise ValueError(f"GAPModel: 'species' has unknown chemical symbol(s) {unknown}")
        chosen = sorted({_Z[s] for s in self.species})
        missing = sorted(set(present) - set(chosen))
        if missing:
            raise ValueError(
                f"training frames contain {', '.join(chemical_symbols[z] for z in missing)}, which 'species' "
                f"({', '.join(self.species)}) leaves out"
            )
        return chosen

    def _geometry(self, atoms: Atoms, label: str) -> Geometry:
        species = species_indices(atoms, self.element_list_, label=label)
        if not atoms.pbc.any():
            return Geometry(atoms.positions.astype(float), species)
        return Geometry(atoms.positions.astype(float), species, np.array(atoms.cell[:], dtype=float), tuple(bool(p) for p in atoms.pbc))

    def _sample(self, atoms: Atoms, index: int) -> gp.Sample:
        label = frame_label(atoms, index)
        n = len(atoms)
        energy = get_energy(atoms)
        if energy is not None:
            energy -= composition.isolated_energy(atoms, self.e0_)
        sigma_e = float(atoms.info.get("energy_sigma", self.sigma_energy_)) * np.sqrt(n)
        sigma_f = np.full(n, float(atoms.info.get("force_sigma", self.sigma_force_)))
        if "force_atom_sigma" in atoms.arrays:
            sigma_f = np.asarray(atoms.arrays["force_atom_sigma"], dtype=float).reshape(n)
        if not (sigma_e > 0 and np.all(sigma_f > 0)):
            raise ValueError(f"{label}: energy_sigma / force_sigma / force_atom_sigma must be positive")
        return gp.Sample(self._geometry(atoms, label), energy, get_forces(atoms), sigma_e, sigma_f, label)

    def set_maps(self, maps: Mapping[int, Mapping[str, np.ndarray]], info: Sequence[Mapping[str, Any]]) -> None:
        """Predict the given 2b/3b terms from spline tables (:mod:`clusterforce.kinds.gap.mapping`).

        ``maps[i]`` holds term i's ``knots_r``, ``coefficients`` and, for 3b, ``knots_cos``;
        ``info`` is what the model file's metadata ``maps`` records of each (grid, errors).
        """
        check_is_fitted(self, self._FITTED)
        self.maps_ = {int(i): dict(t) for i, t in maps.items()}
        self.map_info_ = [dict(entry) for entry in info]
        self._build_predictor()

    def _per_term(self, alpha: np.ndarray) -> list[np.ndarray]:
        """The solved weights split into the terms' parts."""
        bounds = np.cumsum([0] + [k.n_sparse for k in self.kernels_])
        return [alpha[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def _build_predictor(self) -> None:
        """Forget the compiled objects of the old weights; both are rebuilt on first use."""
        self._gap_model = None
        self._compiled = None

    @property
    def predictor_(self) -> _kernels.GapModel:
        """The compiled GAP terms of the fitted weights (per-centre energies; the model file's
        Predictor runs the same terms)."""
        if getattr(self, "_gap_model", None) is None:
            check_is_fitted(self, self._FITTED)
            scale = getattr(self, "uncertainty_scale_", None)
            self._gap_model = self._gap_model_for(self.alpha_, self.variance_, scale, getattr(self, "maps_", {}))
        return self._gap_model

    def _gap_model_for(self, alpha: list[np.ndarray], variance, uncertainty_scale, maps) -> _kernels.GapModel:
        """The compiled GAP terms for per-term weights ``alpha``."""
        e0 = np.array([self.e0_[s] for s in self.element_list_])
        terms = [k.predictor_term(a) for k, a in zip(self.kernels_, alpha)]
        for i, t in maps.items():
            terms[i] = _kernels.MappedNBodyTerm(terms[i], t["knots_r"], t["coefficients"], t.get("knots_cos"))
        return _kernels.GapModel(len(e0), e0, terms, variance, uncertainty_scale=uncertainty_scale)

    # ---------------------------------------------------------------- prediction
    def score_frames(self, frames: Sequence[Atoms]) -> dict[str, Any]:
        """Energy (meV/atom) and force (eV/Angstrom) errors on frames with references."""
        check_is_fitted(self, self._FITTED)
        return energy_force_metrics(*collect_predictions(self, frames, progress=self.progress))

    # -------------------------------------------------------------- model file
    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and metadata of the model file (:meth:`save`, the Predictor)."""
        check_is_fitted(self, self._FITTED)
        arrays: dict[str, np.ndarray] = {"e0": np.array([self.e0_[s] for s in self.element_list_])}
        for i, (k, a) in enumerate(zip(self.kernels_, self.alpha_)):
            for name, value in k.arrays().items():
                arrays[f"terms/{i}/{name}"] = value
            arrays[f"terms/{i}/alpha"] = a
        if self.variance_ is not None:
            arrays["variance"] = self.variance_
        if getattr(self, "uncertainty_scale_", None) is not None:
            arrays["uncertainty_scale"] = self.uncertainty_scale_
        for i, tables in getattr(self, "maps_", {}).items():
            arrays.update({f"maps/{i}/{name}": value for name, value in tables.items()})
        params = self.get_params()
        wall_metadata = {}
        if getattr(self, "baseline_r_s_", None) is not None:
            wall_arrays, wall_metadata = pair_wall.file_entries(self.baseline_r_s_)
            arrays.update(wall_arrays)
        params.pop("terms")
        metadata = {
            "elements": self.element_list_,
            "atomic_numbers": self.atomic_numbers_,
            "terms": [k.term.to_dict() for k in self.kernels_],
            "e0": self.e0_,
            **({"e0_source": self.e0_source_} if getattr(self, "e0_source_", None) else {}),
            "hyperparameters": params,
            "training": getattr(self, "training_", {}),  # fit predicts its metrics before recording them
            **wall_metadata,
        }
        if getattr(self, "maps_", None):
            metadata["maps"] = self.map_info_
        if getattr(self, "r_min_", None) is not None:
            arrays[pair_wall.R_MIN_FIELD] = self.r_min_
        return arrays, metadata

    @classmethod
    def _from_file(cls, mf: modelfile.ModelFile) -> GAPModel:
        meta = mf.metadata
        with mf.reading():
            terms = [term_from_dict(t) for t in meta["terms"]]
            model = cls(terms=terms, **meta["hyperparameters"])
            model.atomic_numbers_ = [int(z) for z in meta["atomic_numbers"]]
            model.element_list_ = list(meta["elements"])
            model.e0_ = {s: float(v) for s, v in meta["e0"].items()}
            model.e0_source_ = meta.get("e0_source")  # None in files from before the field
            model.training_ = meta["training"]
            model.kernels_, model.alpha_ = [], []
            for i, term in enumerate(terms):
                m = len(mf.array(f"terms/{i}/sparse"))
                arrays = {"sparse": mf.array(f"terms/{i}/sparse"), "offsets": mf.array(f"terms/{i}/offsets")}
                if isinstance(term, Soap):
                    model.kernels_.append(SoapKernel.from_arrays(term, model.atomic_numbers_, arrays))
                else:
                    model.kernels_.append(NBodyKernel.from_arrays(term, len(model.atomic_numbers_), arrays))
                model.alpha_.append(mf.array(f"terms/{i}/alpha", shape=(m,)))
            n_sparse = sum(k.n_sparse for k in model.kernels_)
            model.variance_ = mf.array("variance", shape=(n_sparse, n_sparse)) if "variance" in mf.arrays else None
            n_species = len(model.atomic_numbers_)
            model.uncertainty_scale_ = mf.array("uncertainty_scale", shape=(n_species,)) if "uncertainty_scale" in mf.arrays else None
            model.baseline = "baseline/r_s" in mf.arrays
            model.baseline_r_s_ = mf.arrays.get("baseline/r_s")
            model.r_min_ = mf.arrays.get(pair_wall.R_MIN_FIELD)  # None in files from before the table
            model.map_info_ = list(meta.get("maps", []))
            model.maps_ = {}
            for entry in model.map_info_:
                i = int(entry["term"])
                names = ("knots_r", "coefficients") + (("knots_cos",) if f"maps/{i}/knots_cos" in mf.arrays else ())
                model.maps_[i] = {name: mf.array(f"maps/{i}/{name}") for name in names}
            model._build_predictor()
        return model
