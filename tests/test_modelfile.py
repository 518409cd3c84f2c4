import json
import struct

import numpy as np
import pytest
from clusterforce import __version__, _kernels
from clusterforce.core import modelfile
from clusterforce.core.modelfile import ModelFileError
from safetensors.numpy import load_file


@pytest.fixture
def model_path(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "classes/S/emlm/W": rng.normal(size=(7, 1)),
        "classes/S/references": rng.normal(size=(7, 3, 2)),
        "counts": np.array([3, 1, 4], dtype=np.int32),
        "flags": np.array([True, False]),
        "scalar": np.float64(2.5),
    }
    metadata = {"elements": ["Au", "S"], "descriptor": {"r_cut": 4.0, "n_max": 7}, "note": 'Å ünïcode "quoted"', "none": None}
    path = tmp_path / "m.cfm"
    modelfile.save(path, kind="dml", arrays=arrays, metadata=metadata)
    return path, arrays, metadata


def test_round_trip_python(model_path):
    path, arrays, metadata = model_path
    mf = modelfile.load(path, kind="dml")
    assert mf.kind == "dml" and mf.format_version == modelfile.FORMAT_VERSION
    assert mf.clusterforce_version == __version__
    assert mf.metadata == metadata
    for name, value in arrays.items():
        got = mf.array(name)
        np.testing.assert_array_equal(got, np.asarray(value))
        assert got.dtype in (np.float64, np.int64)
    assert mf.array("scalar").shape == ()
    assert mf.array("classes/S/references", shape=(None, 3, 2)).shape == (7, 3, 2)


def test_is_a_safetensors_file(model_path):
    path, arrays, _ = model_path
    loaded = load_file(str(path))
    np.testing.assert_array_equal(loaded["classes/S/emlm/W"], arrays["classes/S/emlm/W"])


def test_cpp_reader_agrees_with_python(model_path):
    path, arrays, metadata = model_path
    got = _kernels.read_model_file(str(path))
    assert got["kind"] == "dml" and got["format_version"] == modelfile.FORMAT_VERSION
    assert got["clusterforce_version"] == __version__
    assert got["metadata"]["elements"] == ["Au", "S"]
    assert got["metadata"]["descriptor"] == {"r_cut": 4.0, "n_max": 7.0}
    assert got["metadata"]["note"] == metadata["note"]
    assert got["metadata"]["none"] is None
    assert set(got["arrays"]) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(got["arrays"][name], np.asarray(value))


def _read(path):
    return modelfile.load(path), _kernels.read_model_file(str(path))


@pytest.mark.parametrize("reader", [modelfile.load, lambda p: _kernels.read_model_file(str(p))], ids=["python", "cpp"])
class TestBadFiles:
    def test_truncated_data(self, model_path, reader, tmp_path):
        path = model_path[0]
        bad = tmp_path / "cut.cfm"
        bad.write_bytes(path.read_bytes()[:-20])
        with pytest.raises(ValueError, match=r"cut\.cfm: truncated model file \(field '.*' ends at byte"):
            reader(bad)

    def test_truncated_header(self, model_path, reader, tmp_path):
        bad = tmp_path / "cut.cfm"
        bad.write_bytes(model_path[0].read_bytes()[:40])
        with pytest.raises(ValueError, match=r"cut\.cfm: truncated model file \(header needs"):
            reader(bad)

    def test_tiny_file(self, reader, tmp_path):
        bad = tmp_path / "tiny.cfm"
        bad.write_bytes(b"abc")
        with pytest.raises(ValueError, match=r"tiny\.cfm: truncated model file \(3 bytes"):
            reader(bad)

    def test_not_a_model(self, reader, tmp_path):
        bad = tmp_path / "text.cfm"
        bad.write_bytes(b"hello world, not a model file at all")
        with pytest.raises(ValueError, match=r"text\.cfm: not a clusterforce model file"):
            reader(bad)

    def test_missing(self, reader, tmp_path):
        with pytest.raises(ValueError, match=r"nope\.cfm: model file not found"):
            reader(tmp_path / "nope.cfm")

    def test_unknown_format_version(self, reader, tmp_path):
        header = {"__metadata__": {"format_version": "99", "kind": "dml", "metadata": "{}"}}
        text = json.dumps(header).encode()
        bad = tmp_path / "future.cfm"
        bad.write_bytes(struct.pack("<Q", len(text)) + text)
        with pytest.raises(ValueError, match=r"future\.cfm: unknown format_version 99"):
            reader(bad)

    def test_shape_mismatch_in_header(self, reader, tmp_path):
        header = {
            "W": {"dtype": "F64", "shape": [3, 3], "data_offsets": [0, 16]},
            "__metadata__": {"format_version": "1", "kind": "dml", "metadata": "{}"},
        }
        text = json.dumps(header).encode()
        bad = tmp_path / "shape.cfm"
        bad.write_bytes(struct.pack("<Q", len(text)) + text + bytes(16))
        with pytest.raises(ValueError, match=r"shape\.cfm: field 'W' holds 16 bytes but shape \(3, 3\) needs 72"):
            reader(bad)


def test_wrong_kind_and_missing_field(model_path):
    path = model_path[0]
    with pytest.raises(ModelFileError, match=r"model kind is 'dml', expected 'gap'"):
        modelfile.load(path, kind="gap")
    mf = modelfile.load(path)
    with pytest.raises(ModelFileError, match=r"m\.cfm: field 'classes/C/emlm/W' is missing"):
        mf.array("classes/C/emlm/W")
    with pytest.raises(ModelFileError, match=r"field 'classes/S/emlm/W' has shape \(7, 1\), expected \(7, 2\)"):
        mf.array("classes/S/emlm/W", shape=(7, 2))


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        modelfile.save(tmp_path / "x.cfm", kind="dml", arrays={}, metadata={"bad": object()})


def test_a_header_byte_that_is_not_utf8_is_a_damaged_file(model_path, tmp_path):
    raw = bytearray(model_path[0].read_bytes())
    at = raw.index(b"descriptor")
    raw[at] = 0xFF  # never valid in UTF-8
    damaged = tmp_path / "damaged.cfm"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"damaged\.cfm: damaged model file \(byte {at}, in the header, is not UTF-8 text\)"):
        _kernels.read_model_file(str(damaged))
    with pytest.raises(ValueError, match=r"damaged\.cfm"):
        modelfile.load(damaged)
