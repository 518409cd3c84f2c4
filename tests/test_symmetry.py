"""Point groups: textbook molecules and cluster shapes, and tolerance to noise."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.cluster import Decahedron, Icosahedron, Octahedron
from clusterforce.descriptors.symmetry import point_group


@pytest.mark.parametrize(
    "name, group",
    [
        ("H2O", "C2v"),
        ("NH3", "C3v"),
        ("CH4", "Td"),
        ("C6H6", "D6h"),
        ("C2H6", "D3d"),
        ("C2H4", "D2h"),
        ("C3H4_D2d", "D2d"),
        ("BF3", "D3h"),
        ("H2O2", "C2"),
        ("CH3OH", "Cs"),
        ("trans-butane", "C2h"),
        ("CO2", "D*h"),
        ("HCN", "C*v"),
    ],
)
def test_molecules(name, group):
    assert point_group(molecule(name)) == group


def test_clusters_and_noise():
    assert point_group(Icosahedron("Au", 3)) == "Ih"
    assert point_group(Octahedron("Au", 3)) == "Oh"
    assert point_group(Decahedron("Au", 2, 2, 0)) == "D5h"
    noisy = Icosahedron("Au", 2)
    noisy.positions += np.random.default_rng(0).normal(0, 0.01, noisy.positions.shape)
    assert point_group(noisy) == "Ih"  # within the 0.1 Angstrom tolerance
    assert point_group(noisy, tol=0.001) != "Ih"
    noisy.rattle(0.3, seed=1)
    assert point_group(noisy) == "C1"


def test_elements_matter_and_s4_is_found():
    core = [[0, 0, 0]]
    ring = np.array([[1, 0, 0.3], [-1, 0, 0.3], [0, 1, -0.3], [0, -1, -0.3]]) * 1.5
    twist = [[1.5, 0.4, 0.45], [-1.5, -0.4, 0.45], [-0.4, 1.5, -0.45], [0.4, -1.5, -0.45]]
    assert point_group(Atoms("CH4O4", positions=np.vstack([core, ring, twist]))) == "S4"
    water = molecule("H2O")
    water.numbers[1] = 9  # HOF: only the molecular plane is left
    assert point_group(water) == "Cs"
