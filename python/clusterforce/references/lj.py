"""The Lennard-Jones cluster potential of the Cambridge Cluster Database (``--reference lj``)."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes


class LennardJones(Calculator):
    """Lennard-Jones cluster, every pair, no cutoff: E = 4 eps sum_{i<j} ((sig/r)^12 - (sig/r)^6).

    Reduced units (eps = sig = 1 by default): energies in eps, lengths in sig, forces in eps/sig.
    All pairs in numpy, which is what global optimisation of LJ clusters (Cambridge Cluster
    Database energies are for this form) needs; ASE's own ``LennardJones`` is truncated and shifted.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]
    default_parameters = {"epsilon": 1.0, "sigma": 1.0}
    nolabel = True

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions
        eps, sig = self.parameters.epsilon, self.parameters.sigma
        d = pos[:, None, :] - pos[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", d, d)
        np.fill_diagonal(r2, np.inf)
        if np.any(r2 < 1e-12):
            i, j = np.argwhere(r2 < 1e-12)[0]
            raise ValueError(f"atoms {i} and {j} coincide; the Lennard-Jones energy is infinite")
        s6 = (sig * sig / r2) ** 3
        pair = 4.0 * eps * (s6 * s6 - s6)
        self.results["energies"] = 0.5 * pair.sum(axis=1)
        self.results["energy"] = self.results["free_energy"] = float(self.results["energies"].sum())
        # -dE/dr_i = sum_j 24 eps (2 s12 - s6) / r^2 (r_i - r_j)
        coef = 24.0 * eps * (2.0 * s6 * s6 - s6) / r2
        self.results["forces"] = np.einsum("ij,ijk->ik", coef, d)
