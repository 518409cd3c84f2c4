"""Reference methods: what labels training data and what ``--reference`` names on every command.

One resolver, :func:`resolve`, turns a name into an ASE calculator: ``gfn1-xtb`` (tblite, with the
SCF-failure ladder of :mod:`clusterforce.references.scf` and the settings of
:mod:`clusterforce.references.methods`), ``emt`` (ASE), ``lj`` (:class:`LennardJones`), a trained
model file (``*.cfm``) or a user's ``module:factory``.
"""

from clusterforce.references.lj import LennardJones
from clusterforce.references.methods import METHODS, Reference, Rung, default_electronic_temperature, make_reference
from clusterforce.references.resolver import NAMES, resolve
from clusterforce.references.scf import LadderCalculator, ScfCounts, ScfFailure, single_point_energies

__all__ = [
    "METHODS",
    "NAMES",
    "LadderCalculator",
    "LennardJones",
    "Reference",
    "Rung",
    "ScfCounts",
    "ScfFailure",
    "default_electronic_temperature",
    "make_reference",
    "resolve",
    "single_point_energies",
]
