"""The ``dml`` kind: distance-based learning of forces on SOAP (oamlm paper).

Per atom class (:mod:`.environments`: ``Au_core``, ``Au_unit``, ``S``, ``C``, ``H`` for
gold-thiolate data, the element otherwise), :class:`EMLM` (:mod:`.emlm`, eq. 6-8) predicts
force norms and :class:`OAMLM` (:mod:`.oamlm`: training eq. 10 with D_c and D_g, losses
eq. 14-17, triangle prefilter eq. 18) force directions after SVD alignment of neighbourhoods
(:mod:`.align`, eq. 11-13); :class:`MLM` (:mod:`.mlm`, eq. 9-10) is the plain minimal
learning machine. The paper names and equations are mapped to code in ``docs/README.md``.
:class:`DMLModel` (:mod:`.model`) puts them together;
:mod:`.kind` is its record in :mod:`clusterforce.core.registry`.
"""

from clusterforce.kinds.dml.emlm import EMLM
from clusterforce.kinds.dml.mlm import MLM
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.dml.oamlm import OAMLM

__all__ = ["DMLModel", "EMLM", "MLM", "OAMLM"]
