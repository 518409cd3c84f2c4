"""The ``dart`` kind: topological atomic descriptors and the DART energy network (dart paper)."""

from clusterforce.kinds.dart.model import DARTModel, shells_from_rdf

__all__ = ["DARTModel", "shells_from_rdf"]
