import numpy as np
import pytest
from clusterforce.workflows.datagen import record_steps


@pytest.mark.parametrize("total,frames,ratio", [(800, 150, 10.0), (100, 100, 10.0), (1000, 7, 50.0), (5, 1, 3.0)])
def test_record_steps_are_distinct_and_end_at_last_step(total, frames, ratio):
    steps = record_steps(total, frames, ratio)
    assert len(steps) == frames
    assert len(np.unique(steps)) == frames
    assert np.all(np.diff(steps) > 0)
    assert steps[-1] == total
    assert steps[0] >= 1


def test_sampling_is_dense_toward_the_hot_end():
    steps = record_steps(1000, 100, 10.0)
    gaps = np.diff(steps)
    assert gaps[:10].mean() > 5 * gaps[-10:].mean()
    assert gaps[:10].mean() / gaps[-10:].mean() == pytest.approx(10.0, rel=0.35)


def test_density_ratio_one_is_even_and_total_steps_is_plain_logspace():
    even = record_steps(100, 11, 1.0)
    assert np.array_equal(even, np.sort(100 - np.round(9.9 * np.arange(11))))
    assert set(np.diff(even)) == {9, 10}
    total, frames = 1000, 5
    offsets = np.round(np.logspace(0, np.log10(total), frames) - 1).astype(int)
    assert np.array_equal(record_steps(total, frames, float(total)), np.sort(total - offsets))


def test_record_steps_validation():
    with pytest.raises(ValueError, match=r"--frames must be between 1 and the number of MD steps \(10\), got 11"):
        record_steps(10, 11)
    with pytest.raises(ValueError, match="--density-ratio must be >= 1"):
        record_steps(10, 5, 0.5)
    with pytest.raises(ValueError, match="at least one MD step"):
        record_steps(0, 1)
