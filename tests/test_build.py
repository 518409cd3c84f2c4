import clusterforce


def test_build_info_reports_compiled_core():
    info = clusterforce.build_info()
    assert info["version"] == clusterforce.__version__
    assert info["compiler"] and info["compiler"] != "unknown"
    assert isinstance(info["openmp"], bool)
    assert info["threads"] >= 1
    assert info["cxx_standard"] >= 201703
