"""Small reference data sets shipped with the package.

Each data set ``NAME`` is a gzipped extended-XYZ file ``NAME.extxyz.gz`` in this directory
(energies in eV in ``info``, forces in eV/Angstrom in ``arrays``) with a data card ``NAME.md``
beside it saying how it was made.

>>> from clusterforce import datasets
>>> datasets.available()                     # doctest: +SKIP
['na', 'rings']
>>> frames = datasets.load("rings")          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ase import Atoms

from ..data import DataError, read_frames

#: Directory holding the shipped data files.
DATA_DIR: Path = Path(__file__).resolve().parent

_SUFFIX = ".extxyz.gz"


def available() -> list[str]:
    """Names of the data sets shipped in this installation, sorted."""
    return sorted(p.name[: -len(_SUFFIX)] for p in DATA_DIR.glob(f"*{_SUFFIX}"))


def path(name: str) -> Path:
    """Path of the data file of data set ``name``.

    Raises
    ------
    ValueError
        If no data set of that name is shipped; the message lists the available ones.
    """
    names = available()
    if name not in names:
        listing = ", ".join(names) if names else f"none (no *{_SUFFIX} files in {DATA_DIR})"
        raise ValueError(f"unknown dataset {name!r}; available: {listing}")
    return DATA_DIR / f"{name}{_SUFFIX}"


def load(name: str) -> list[Atoms]:
    """All frames of data set ``name`` (see :func:`clusterforce.data.read_frames`)."""
    return read_frames(path(name))


def card(name: str) -> str:
    """The data card (markdown) of data set ``name``: source, method, units, licence."""
    card_path = path(name).with_name(f"{name}.md")
    try:
        return card_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"dataset {name!r} has no data card {card_path}; the installation is incomplete, reinstall clusterforce"
        ) from None


__all__ = ["DATA_DIR", "available", "card", "load", "path"]
