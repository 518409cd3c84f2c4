"""clusterforce: machine-learned force fields for metal and ligand-protected nanoclusters.

Training and workflows are Python (numpy, scipy, scikit-learn, ASE); every prediction path
is compiled C++ in ``clusterforce._kernels``, shared with the LAMMPS pair style. The model
kinds live in subpackages (:mod:`clusterforce.kinds.dml`, :mod:`clusterforce.kinds.gap`) registered in
:mod:`clusterforce.core.registry`; ``docs/`` in the source tree describes the architecture.
"""

from __future__ import annotations

from clusterforce._version import __version__
from clusterforce.core.calculator import Calculator
from clusterforce.core.registry import load_model
from clusterforce.lammps import add_to_plugin_path as _add_to_plugin_path


def build_info() -> dict:
    """Describe the compiled core: version, compiler, OpenMP on/off and thread count."""
    from clusterforce import _kernels

    return dict(_kernels.build_info())


# lammps.lammps() instances created after `import clusterforce` find pair_style clusterforce.
_add_to_plugin_path()

__all__ = ["Calculator", "__version__", "build_info", "load_model"]
