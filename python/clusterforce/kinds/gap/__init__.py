"""The ``gap`` kind: GAP-style sparse Gaussian process on 2-body, 3-body and SOAP terms
(gap-sodium paper; review section III C).

:class:`GAPModel` (:mod:`.model`) is the estimator; the term hyperparameters are
:class:`TwoBody`, :class:`ThreeBody` and :class:`Soap` (:mod:`.terms`); sparse points come
from :mod:`.sparse`, kernel rows from :mod:`.kernels`, the design rows and normal equations
from :mod:`.design` and their solution from :mod:`.solve`; :mod:`.kind` is its record in
:mod:`clusterforce.core.registry`.
"""

from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.terms import Soap, ThreeBody, TwoBody, default_terms, term_from_dict

__all__ = ["GAPModel", "Soap", "ThreeBody", "TwoBody", "default_terms", "term_from_dict"]
