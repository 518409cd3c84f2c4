import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Icosahedron
from clusterforce.kinds.dml.descriptor import SoapDescriptor


def _cluster():
    atoms = Icosahedron("Au", 2)
    atoms.symbols[[1, 2]] = "Ag"
    return atoms


def test_soap_species_from_data_and_rotation_invariance():
    atoms = _cluster()
    desc = SoapDescriptor(r_cut=3.5, n_max=3, l_max=2).fit([atoms])
    assert desc.species_ == ["Ag", "Au"]
    X = desc.compute(atoms)
    assert X.shape == (13, desc.n_features)
    rotated = atoms.copy()
    rotated.rotate(37, (1, 2, 3), center="COM")
    np.testing.assert_allclose(desc.compute(rotated), X, atol=1e-10)
    np.testing.assert_array_equal(desc.compute(atoms, centers=[4, 0]), X[[4, 0]])
    assert desc.compute(atoms, centers=[]).shape == (0, desc.n_features)


def test_soap_params_round_trip_and_paper_defaults():
    desc = SoapDescriptor().fit([_cluster()])
    params = desc.params()
    assert (params["r_cut"], params["n_max"], params["l_max"], params["sigma"]) == (4.0, 7, 4, 0.25)
    again = SoapDescriptor.from_params(params)
    np.testing.assert_array_equal(again.compute(_cluster()), desc.compute(_cluster()))
    with pytest.raises(ValueError, match="backend 'other' is not supported"):
        SoapDescriptor.from_params({**params, "backend": "other"})


def test_soap_errors_name_element_and_atom():
    desc = SoapDescriptor(n_max=2, l_max=1, species=["Au"]).fit([])
    atoms = Atoms("Au2S", positions=[[0, 0, 0], [2.8, 0, 0], [0, 2.4, 0]])
    with pytest.raises(ValueError, match="atom 2 is S, an element this model was not trained on"):
        desc.compute(atoms)
    with pytest.raises(ValueError, match="center index out of range"):
        desc.compute(atoms[:2], centers=[5])
    with pytest.raises(RuntimeError, match="not fitted"):
        SoapDescriptor().compute(atoms)
    with pytest.raises(ValueError, match="SOAP descriptor: r_cut must be > 1 Angstrom, got -1"):
        SoapDescriptor(r_cut=-1).fit([atoms])
    with pytest.raises(ValueError, match=r"SOAP descriptor: l_max must be in \[0, 20\], got 21"):
        SoapDescriptor(l_max=21).fit([atoms])
