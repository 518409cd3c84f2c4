"""Every registered kind passes the conformance kit (clusterforce.testing) on a small model fitted here.

A check that does not apply to a kind (it says so itself: force-only, or global) is skipped with
the reason; a check a kind is known to fail is listed in KNOWN_FAILURES with the reason and must
keep failing (a kind that starts passing it should lose the exemption).
"""

from __future__ import annotations

import pytest
from _frames import emt_frames, rattled_icosahedron
from ase.calculators.emt import EMT
from clusterforce import testing
from clusterforce.core import registry


def _gap():
    from clusterforce.kinds.gap import Soap, ThreeBody, TwoBody
    from clusterforce.kinds.gap.model import GAPModel

    terms = [
        TwoBody(delta=1.0, r_cut=4.5, width=1.0, theta=0.6, n_sparse=10),
        ThreeBody(delta=0.1, r_cut=3.6, width=1.0, theta=0.8, n_sparse=15),
        Soap(delta=0.1, r_cut=3.0, n_max=3, l_max=2, sigma=0.4, zeta=2, n_sparse=15),
    ]
    return GAPModel(terms=terms, progress=False).fit(emt_frames(4, seed=0, rattle=0.1, element="Cu"))


def _sann():
    from clusterforce.kinds.sann.model import SANNModel

    small = dict(exponents=(0.004, 0.028), xi=(0.06, 0.48), l_max=2, hidden=(6, 6), r_cut=5.0, progress=False)
    return SANNModel(epochs=1, **small).fit(emt_frames(8, seed=0, rattle=0.1, element="Cu"))


def _dart():
    from clusterforce.kinds.dart.model import DARTModel

    small = dict(feature_width=8, atom_hidden=(8,), interaction_hidden=(8, 4), progress=False)
    return DARTModel(max_epochs=10, r_J=3.0, r_K=4.6, width=0.3, **small).fit(emt_frames(20, seed=0, rattle=0.1, element="Cu"))


def _dml():
    from clusterforce.kinds.dml.model import DMLModel

    small = dict(n_max=4, l_max=3, n_references_norm=40, n_references_direction=30, random_state=0, progress=False)
    return DMLModel(**small).fit(emt_frames(4, seed=0, rattle=0.1, element="Cu"))


#: A small model of every registered kind, fitted in seconds on EMT Cu13 frames.
MODELS = {"gap": _gap, "sann": _sann, "dart": _dart, "dml": _dml}

#: (kind, check) -> why the kind fails it today (measured; see the report in docs/adding-a-kind.md).
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

_fitted: dict[str, object] = {}


def model_of(kind: str):
    if kind not in _fitted:
        _fitted[kind] = MODELS[kind]()
    return _fitted[kind]


def probe() -> object:
    atoms = rattled_icosahedron(7, "Cu", amplitude=0.1)
    atoms.calc = EMT()  # not used by the checks; keeps the frame like the training ones
    return atoms


def test_every_registered_kind_has_a_conformance_model():
    assert set(MODELS) == set(registry.KINDS)


@pytest.mark.parametrize("check", list(testing.CHECKS))
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_kind_passes_the_kit(kind, check, tmp_path):
    model = model_of(kind)
    skipped = testing.not_applicable(model)
    if check in skipped:
        pytest.skip(f"{kind}: {skipped[check]}")
    if check.startswith("lammps") and testing.lammps_available() is not None:
        pytest.skip(testing.lammps_available())
    if (kind, check) in KNOWN_FAILURES:
        with pytest.raises(AssertionError):
            testing.run_check(check, model, probe(), tmp_path)
        return
    testing.run_check(check, model, probe(), tmp_path)
