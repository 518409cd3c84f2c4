"""GAP-style sparse Gaussian process: terms, sparse points, kernels, normal equations.

The estimator users fit is :class:`clusterforce.models.gap.GAPModel`; the term
hyperparameters are :class:`TwoBody`, :class:`ThreeBody` and :class:`Soap`.
"""

from .terms import Soap, ThreeBody, TwoBody, default_terms, term_from_dict

__all__ = ["Soap", "ThreeBody", "TwoBody", "default_terms", "term_from_dict"]
