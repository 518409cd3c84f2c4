"""The ``dml`` kind: distance-based learning of forces on SOAP (oamlm paper).

Per atom class (:mod:`.environments`: ``Au_core``, ``Au_unit``, ``S``, ``C``, ``H`` for
gold-thiolate data, the element otherwise), :class:`EMLM` (:mod:`.emlm`, eq. 11-12) predicts
force norms and :class:`OAMLM` (:mod:`.oamlm`, eq. 13-18) force directions after SVD
alignment of neighbourhoods (:mod:`.align`); :class:`MLM` (:mod:`.mlm`, eq. 9-10) is the
plain minimal learning machine. :class:`DMLModel` (:mod:`.model`) puts them together;
:mod:`.kind` is its record in :mod:`clusterforce.kinds`.
"""

from .emlm import EMLM
from .mlm import MLM
from .model import DMLModel
from .oamlm import OAMLM

__all__ = ["DMLModel", "EMLM", "MLM", "OAMLM"]
