"""The test kind ``morse`` (docs/adding-a-kind.md): a pair potential fitted by least squares.

Built the way any new kind is: a C++ LocalModel and factory (``../morse.hpp``, compiled in with
``-DCLUSTERFORCE_EXTRA_KINDS``), this estimator (:mod:`morse_kind.model`) and its registry record
(:mod:`morse_kind.kind`), registered through the ``clusterforce.kinds`` entry-point group (or
``clusterforce.core.registry.register("morse", "morse_kind.kind")``). ``tests/test_new_kind.py``
runs the conformance kit on it.
"""

from morse_kind.model import MorseModel

__all__ = ["MorseModel"]
