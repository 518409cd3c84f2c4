"""clusterforce: machine-learned force fields for metal and ligand-protected nanoclusters.

Training and workflows are Python (numpy, scipy, scikit-learn, ASE); every prediction path
is compiled C++ in ``clusterforce._kernels``, shared with the LAMMPS pair style.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clusterforce")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"


def build_info() -> dict:
    """Describe the compiled core: version, compiler, OpenMP on/off and thread count."""
    from . import _kernels

    return dict(_kernels.build_info())


from .calculator import Calculator  # noqa: E402  (needs __version__ above via modelfile)
from .lammps import add_to_plugin_path as _add_to_plugin_path  # noqa: E402

# lammps.lammps() instances created after `import clusterforce` find pair_style clusterforce.
_add_to_plugin_path()

__all__ = ["Calculator", "__version__", "build_info"]
