"""Reference data: reading frames (:mod:`.io`), checking them (:mod:`.validate`), splitting
them for held-out tests (:mod:`.split`) and fingerprinting them (:mod:`.fingerprint`).

Frames are :class:`ase.Atoms`; positions in Angstrom, energies in eV, forces in eV/Angstrom.
"""

from clusterforce.data.fingerprint import dataset_hash
from clusterforce.data.io import (
    DATASET_PREFIX,
    DataError,
    charge_of,
    dataset_names,
    dataset_path,
    frame_label,
    get_energy,
    get_forces,
    read_frames,
)
from clusterforce.data.split import by_size, group_split, train_test_split_frames
from clusterforce.data.validate import species_indices, validate_frames

__all__ = [
    "DATASET_PREFIX",
    "DataError",
    "by_size",
    "species_indices",
    "dataset_hash",
    "dataset_names",
    "dataset_path",
    "frame_label",
    "charge_of",
    "get_energy",
    "get_forces",
    "group_split",
    "read_frames",
    "train_test_split_frames",
    "validate_frames",
]
