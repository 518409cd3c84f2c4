"""Small reference data sets shipped with the package.

Each data set ``NAME`` is a gzipped extended-XYZ file ``NAME.extxyz.gz`` in this directory
(energies in eV in ``info``, forces in eV/Angstrom in ``arrays``) with a data card ``NAME.md``
beside it saying how it was made. On the command line a data set is ``dataset:NAME``.

>>> from clusterforce.data import datasets
>>> datasets.available()                     # doctest: +SKIP
['au25', 'au38', 'na', 'rings']
>>> frames = datasets.load("rings")          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from clusterforce.data.io import DataError, dataset_names, dataset_path, read_frames


def available() -> list[str]:
    """Names of the data sets shipped in this installation, sorted."""
    return dataset_names()


def path(name: str) -> Path:
    """Path of the data file of data set ``name`` (:class:`DataError`, a ValueError, if unknown)."""
    return dataset_path(name)


def load(name: str) -> list[Atoms]:
    """All frames of data set ``name`` (see :func:`clusterforce.data.read_frames`)."""
    return read_frames(dataset_path(name))


def card(name: str) -> str:
    """The data card (markdown) of data set ``name``: source, method, units, licence."""
    card_path = dataset_path(name).with_name(f"{name}.md")
    try:
        return card_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"dataset {name!r} has no data card {card_path}; the installation is incomplete, reinstall clusterforce") from None


__all__ = ["available", "card", "load", "path"]
