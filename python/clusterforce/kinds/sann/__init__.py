"""The ``sann`` kind: one network for all species, energies and decoupled forces (sann paper)."""

from clusterforce.kinds.sann.model import SANNModel

__all__ = ["SANNModel"]
