"""Heat capacities of clusters from replica MD: the multiple-histogram method.

Replicas at temperatures T_k (K) give potential energies U_kn (eV). The multiple-histogram
method (Ferrenberg and Swendsen; the WHAM equations) combines them into one estimate of the
density of states, from which any canonical average follows at any temperature between the
replicas. In the limit of zero bin width the histogram equations become

    Z(beta) = sum_n exp(-beta U_n) / sum_k N_k exp(f_k - beta_k U_n),
    f_k = -ln Z(beta_k),

over all samples n of all replicas, solved self-consistently for the dimensionless free
energies f_k (the same estimator as MBAR). The configurational heat capacity, in units of k_B, is

    C_conf(T) / k_B = beta^2 (<U^2>_T - <U>_T^2).

The gap-sodium paper plots C_v / C_0 with C_0 = (3N - 9/2) k_B, the classical zero-temperature
limit of the rotational plus vibrational canonical heat capacity; :func:`reduced_heat_capacity`
adds the kinetic part ((3N - 6) vibrational + 3 rotational quadratic terms, 1/2 k_B each) and
divides by C_0.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

#: Boltzmann constant, eV/K (CODATA 2018).
KB_EV = 8.617333262e-5

#: Adjacent replicas whose energy histograms share less than this fraction trigger a warning.
MIN_OVERLAP = 0.05


class OverlapWarning(UserWarning):
    """Adjacent replicas barely overlap in energy: the reweighting between them is unreliable."""


@dataclass
class MultipleHistogram:
    """Replica potential energies combined by the multiple-histogram (WHAM) equations.

    Parameters
    ----------
    energies
        One 1-D array of potential energies (eV) per replica, sampled canonically.
    temperatures
        Replica temperatures (K), one per array.

    Use :meth:`fit` (or :func:`heat_capacity`), then :meth:`heat_capacity`, :meth:`mean_energy`.
    """

    energies: list[np.ndarray]
    temperatures: np.ndarray

    def __post_init__(self) -> None:
        self.temperatures = np.asarray(self.temperatures, dtype=float).ravel()
        self.energies = [np.asarray(e, dtype=float).ravel() for e in self.energies]
        if len(self.energies) != len(self.temperatures):
            raise ValueError(f"{len(self.energies)} energy arrays but {len(self.temperatures)} temperatures; give one per replica")
        if len(self.energies) == 0:
            raise ValueError("no replicas: give at least one array of energies and its temperature")
        for k, (e, t) in enumerate(zip(self.energies, self.temperatures)):
            if t <= 0 or not np.isfinite(t):
                raise ValueError(f"replica {k}: temperature must be positive and finite (K), got {t}")
            if e.size < 2:
                raise ValueError(f"replica {k} ({t:g} K) has {e.size} energies; it needs at least 2")
            if not np.all(np.isfinite(e)):
                raise ValueError(f"replica {k} ({t:g} K) has non-finite energies")
        self.counts = np.array([e.size for e in self.energies], dtype=float)
        self.betas = 1.0 / (KB_EV * self.temperatures)
        all_u = np.concatenate(self.energies)
        # Energies relative to their mean keep every exponent of order beta * (spread of U).
        self._shift = float(all_u.mean())
        self._u = all_u - self._shift
        self.free_energies: np.ndarray | None = None

    def fit(self, *, tol: float = 1e-10) -> MultipleHistogram:
        """Solve for the dimensionless free energies f_k (f_0 = 0).

        The solution minimises the convex function
        F(f) = sum_n ln sum_k N_k exp(f_k - beta_k U_n) - sum_k N_k f_k,
        whose stationarity condition is the self-consistent histogram equation.
        """
        k = len(self.betas)
        if k == 1:
            self.free_energies = np.zeros(1)
            return self
        log_n = np.log(self.counts)
        bu = np.outer(self.betas, self._u)  # (K, N)
        total = self.counts.sum()

        def objective(g: np.ndarray) -> tuple[float, np.ndarray]:
            f = np.concatenate(([0.0], g))
            a = log_n[:, None] + f[:, None] - bu
            lse = logsumexp(a, axis=0)
            value = lse.sum() - self.counts @ f
            grad = np.exp(a - lse).sum(axis=1) - self.counts
            return value / total, grad[1:] / total

        # Start from the one-step estimate f_k = beta_k <U>_k (exact for narrow histograms).
        means = np.array([e.mean() - self._shift for e in self.energies])
        start = np.cumsum(np.concatenate(([0.0], 0.5 * (means[1:] + means[:-1]) * np.diff(self.betas))))
        # One BLAS thread: the optimiser's vectors have K entries and threading them only costs.
        with threadpool_limits(1, user_api="blas"):
            result = minimize(objective, start[1:], jac=True, method="L-BFGS-B", options={"gtol": tol, "ftol": 1e-15, "maxiter": 10000})
        if not result.success and np.max(np.abs(result.jac)) > 1e-6:
            raise RuntimeError(f"multiple-histogram equations did not converge: {result.message}")
        self.free_energies = np.concatenate(([0.0], result.x))
        return self

    def _log_weights(self, beta: float) -> np.ndarray:
        if self.free_energies is None:
            self.fit()
        log_denominator = logsumexp(np.log(self.counts)[:, None] + self.free_energies[:, None] - np.outer(self.betas, self._u), axis=0)
        return -beta * self._u - log_denominator

    def moments(self, temperatures: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical <U> (eV, absolute) and var(U) (eV^2) at each temperature (K)."""
        temps = np.atleast_1d(np.asarray(temperatures, dtype=float))
        mean, var = np.empty(temps.size), np.empty(temps.size)
        for i, t in enumerate(temps):
            lw = self._log_weights(1.0 / (KB_EV * t))
            w = np.exp(lw - logsumexp(lw))
            m = w @ self._u
            mean[i] = m + self._shift
            var[i] = w @ (self._u - m) ** 2
        return mean, var

    def mean_energy(self, temperatures: Sequence[float] | np.ndarray) -> np.ndarray:
        """Canonical mean potential energy (eV) at each temperature (K)."""
        return self.moments(temperatures)[0]

    def heat_capacity(self, temperatures: Sequence[float] | np.ndarray) -> np.ndarray:
        """Configurational heat capacity C_conf / k_B at each temperature (K)."""
        temps = np.atleast_1d(np.asarray(temperatures, dtype=float))
        _, var = self.moments(temps)
        return var / (KB_EV * temps) ** 2

    def overlaps(self, bins: int = 50) -> np.ndarray:
        """Histogram overlap of each adjacent pair of replicas (sorted by temperature), in [0, 1].

        The overlap is the shared area of the two normalised energy histograms on common bins:
        1 for identical distributions, 0 for disjoint ones.
        """
        order = np.argsort(self.temperatures)
        out = np.empty(len(order) - 1)
        for i, (a, b) in enumerate(zip(order[:-1], order[1:])):
            ea, eb = self.energies[a], self.energies[b]
            edges = np.linspace(min(ea.min(), eb.min()), max(ea.max(), eb.max()), bins + 1)
            ha, _ = np.histogram(ea, edges)
            hb, _ = np.histogram(eb, edges)
            out[i] = np.minimum(ha / ha.sum(), hb / hb.sum()).sum()
        return out

    def check_overlap(self, threshold: float = MIN_OVERLAP) -> list[tuple[float, float, float]]:
        """Warn (:class:`OverlapWarning`) about adjacent replicas whose histograms overlap less than ``threshold``.

        Returns the offending pairs as ``(T_low, T_high, overlap)``.
        """
        temps = np.sort(self.temperatures)
        bad = [(float(temps[i]), float(temps[i + 1]), float(o)) for i, o in enumerate(self.overlaps()) if o < threshold]
        for lo, hi, o in bad:
            warnings.warn(
                f"replicas at {lo:g} K and {hi:g} K share only {100 * o:.1f} % of their energy histograms; "
                f"the heat capacity between them is unreliable: add a replica in between or run longer",
                OverlapWarning,
                stacklevel=2,
            )
        return bad


def heat_capacity(
    energies: Sequence[np.ndarray],
    temperatures: Sequence[float] | np.ndarray,
    grid: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Configurational heat capacity C_conf / k_B on ``grid`` (K) by the multiple-histogram method.

    Parameters
    ----------
    energies
        One 1-D array of potential energies (eV) per replica.
    temperatures
        Replica temperatures (K).
    grid
        Temperatures (K) at which to evaluate; best kept within the replica range.
    """
    mh = MultipleHistogram(list(energies), np.asarray(temperatures))
    mh.check_overlap()
    return mh.fit().heat_capacity(grid)


def block_bootstrap(
    energies: Sequence[np.ndarray],
    temperatures: Sequence[float] | np.ndarray,
    grid: Sequence[float] | np.ndarray,
    *,
    n_boot: int = 100,
    n_blocks: int = 20,
    seed: int = 0,
    return_samples: bool = False,
) -> tuple[np.ndarray, ...]:
    """Heat capacity (k_B) on ``grid`` and its standard error from a block bootstrap over time.

    Each replica's time series is cut into ``n_blocks`` contiguous blocks; a bootstrap sample draws
    blocks with replacement, so correlations shorter than a block are kept. With
    ``return_samples`` the bootstrap curves (n_boot, grid) come third, e.g. for the spread of the peak.
    """
    rng = np.random.default_rng(seed)
    temps = np.asarray(temperatures, dtype=float)
    series = [np.asarray(e, dtype=float).ravel() for e in energies]
    best = MultipleHistogram(series, temps).fit().heat_capacity(grid)
    samples = np.empty((n_boot, np.size(grid)))
    for b in range(n_boot):
        resampled = []
        for e in series:
            blocks = np.array_split(e, min(n_blocks, e.size // 2))
            resampled.append(np.concatenate([blocks[i] for i in rng.integers(len(blocks), size=len(blocks))]))
        samples[b] = MultipleHistogram(resampled, temps).fit().heat_capacity(grid)
    if return_samples:
        return best, samples.std(axis=0, ddof=1), samples
    return best, samples.std(axis=0, ddof=1)


def _local_maxima(curve: np.ndarray) -> np.ndarray:
    c = np.asarray(curve, dtype=float)
    return np.flatnonzero((c[1:-1] > c[:-2]) & (c[1:-1] >= c[2:])) + 1


def interior_peak(grid: np.ndarray, curve: np.ndarray) -> float | None:
    """Temperature (K) of the highest local maximum of ``curve`` strictly inside ``grid``, or None.

    A heat capacity that is largest at either end of the replica ladder has not shown its peak
    there: the maximum of the grid is then an edge, not a melting temperature.
    """
    inside = _local_maxima(curve)
    return float(np.asarray(grid)[inside[np.argmax(np.asarray(curve)[inside])]]) if inside.size else None


def tracked_peak_spread(grid: np.ndarray, curves: np.ndarray, peak: float) -> float | None:
    """Standard deviation (K) over bootstrap ``curves`` of the local maximum nearest to ``peak``.

    The uncertainty of one peak's position. The spread of each curve's highest maximum mixes in
    other maxima of similar height (a rise at the top of the ladder, say) and can be several
    times larger without saying anything about where this peak is.
    """
    grid = np.asarray(grid, dtype=float)
    found = []
    for curve in np.atleast_2d(curves):
        inside = _local_maxima(curve)
        if inside.size:
            found.append(grid[inside[np.argmin(np.abs(grid[inside] - peak))]])
    return float(np.std(found)) if found else None


def reduced_heat_capacity(configurational: np.ndarray, n_atoms: int) -> np.ndarray:
    """Total canonical C_v / C_0 of a free cluster from C_conf / k_B, with C_0 = (3N - 9/2) k_B.

    Adds the classical kinetic part of the vibrations and rotations, (3N - 6)/2 + 3/2 k_B.
    In the harmonic limit C_conf = (3N - 6)/2 and the result is 1.
    """
    if n_atoms < 3:
        raise ValueError(f"C_0 = (3N - 9/2) k_B needs a non-linear cluster (N >= 3), got N = {n_atoms}")
    return (np.asarray(configurational) + 1.5 * n_atoms - 1.5) / (3 * n_atoms - 4.5)


class Lindemann:
    """Running Lindemann index of a free cluster, one sample (positions, Angstrom) at a time.

    delta = 2 / (N (N - 1)) sum_{i<j} sqrt(<r_ij^2> - <r_ij>^2) / <r_ij>; it rises sharply (to
    about 0.1 and above) when a cluster melts. Keeps only each pair's running mean and sum of
    squared deviations (Welford's update: no cancellation for a nearly rigid cluster), so a long
    MD adds samples without storing a trajectory; ``state``/``from_state`` save and restore them.
    """

    def __init__(self, n_atoms: int) -> None:
        if n_atoms < 2:
            raise ValueError(f"the Lindemann index needs at least 2 atoms, got {n_atoms}")
        self._i, self._j = np.triu_indices(n_atoms, k=1)
        self.count = 0
        self.mean = np.zeros(self._i.size)
        self.m2 = np.zeros(self._i.size)

    def add(self, positions: np.ndarray) -> None:
        r = np.linalg.norm(positions[self._i] - positions[self._j], axis=-1)
        self.count += 1
        delta = r - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (r - self.mean)

    @property
    def value(self) -> float:
        if self.count == 0:
            raise ValueError("no samples in the Lindemann accumulator")
        return float(np.mean(np.sqrt(self.m2 / self.count) / self.mean))

    def state(self) -> dict[str, np.ndarray]:
        return {"count": np.array(self.count), "mean": self.mean, "m2": self.m2}

    @classmethod
    def from_state(cls, n_atoms: int, state) -> Lindemann:
        out = cls(n_atoms)
        out.count, out.mean, out.m2 = int(state["count"]), np.array(state["mean"]), np.array(state["m2"])
        return out


def lindemann_index(positions: np.ndarray) -> float:
    """Lindemann index of a trajectory of a free cluster: positions (frames, N, 3) in Angstrom (see :class:`Lindemann`)."""
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[1] < 2:
        raise ValueError(f"positions must be (frames, atoms >= 2, 3), got shape {pos.shape}")
    acc = Lindemann(pos.shape[1])
    for frame in pos:
        acc.add(frame)
    return acc.value
