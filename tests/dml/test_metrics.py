import numpy as np
import pytest
from clusterforce.kinds.dml.metrics import angles_deg, class_metrics, force_rmse, markdown_table
from clusterforce.kinds.dml.plots import plot_angle_vs_norm, plot_norm_parity


def test_angles_handle_zero_vectors():
    pred = np.array([[1.0, 0, 0], [0, 2.0, 0], [0, 0, 0], [1.0, 0, 0]])
    ref = np.array([[3.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 0]])
    a = angles_deg(pred, ref)
    np.testing.assert_allclose(a[:3], [0.0, 90.0, 90.0])
    assert np.isnan(a[3])
    with pytest.raises(ValueError, match="equal shape"):
        angles_deg(pred, ref[:2])


def test_class_metrics_by_hand():
    ref = np.array([[2.0, 0, 0], [0, 1.0, 0], [0, 0, 0], [0, 0, 1.0]])
    pred = np.array([[0, 1.0, 0], [0, 1.0, 0], [0.5, 0, 0], [0, 0, 3.0]])
    m = class_metrics(pred, ref, ["Au", "Au", "Au", "S"])
    au = m["classes"]["Au"]
    assert au["n"] == 3
    assert au["norm_rmse"] == pytest.approx(np.sqrt((1.0 + 0.0 + 0.25) / 3))
    # angles 90 (|F|²=4) and 0 (|F|²=1); the zero reference force has no direction
    assert au["weighted_angle_deg"] == pytest.approx(90 * 4 / 5)
    assert au["mean_angle_deg"] == pytest.approx(45.0)
    assert m["classes"]["S"] == {"n": 1, "norm_rmse": 2.0, "weighted_angle_deg": 0.0, "mean_angle_deg": 0.0}
    assert m["force_rmse"] == pytest.approx(force_rmse(pred, ref))
    assert m["force_rmse"] == pytest.approx(np.sqrt((4 + 1 + 0 + 0 + 0.25 + 4) / 12))
    # Directions given separately take precedence over the (possibly zero) predicted force.
    d = class_metrics(np.zeros((4, 3)), ref, ["Au"] * 4, predicted_directions=ref)
    assert d["classes"]["Au"]["mean_angle_deg"] == pytest.approx(0.0)
    assert "| S | 1 | 2.000 | 0.0 | 0.0 |" in markdown_table(m)


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 2, 200)
    classes = np.array(["Au_core", "S"] * 100)
    p = plot_norm_parity(ref, ref + rng.normal(0, 0.1, 200), classes, tmp_path / "n.png")
    q = plot_angle_vs_norm(ref, rng.uniform(0, 60, 200), classes, tmp_path / "a.png")
    for path in (p, q):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
