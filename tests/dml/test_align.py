"""Atom classes, environment records and SVD alignment (OAMLM paper, section II C)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from align_structures import compact_cluster, metal_cluster, rotated, zoo
from ase import Atoms
from clusterforce import _kernels
from clusterforce.kinds.dml.align import align, alignment_cosines, kabsch, svd3
from clusterforce.kinds.dml.environments import (
    FLAG_MISSING,
    FLAG_SPARSE_CLOUD,
    FLAG_STRETCHED,
    FLAG_SUBSTITUTED,
    SCHEME_IDS,
    Environments,
    class_names,
    classify,
    detect_chemistry,
    extract_environments,
)
from scipy.spatial.transform import Rotation


def numpy_kabsch(p, s):
    """Reference: proper R minimising sum |p - R s|^2 via numpy's SVD."""
    U, _, Vt = np.linalg.svd(s.T @ p)
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    return Vt.T @ np.diag([1.0, 1.0, d]) @ U.T


# ---------------------------------------------------------------- SVD and Kabsch
def test_svd3_agrees_with_numpy_including_rank_deficient_matrices():
    rng = np.random.default_rng(1)
    mats = [rng.normal(size=(3, 3)) for _ in range(200)]
    mats += [np.outer(rng.normal(size=3), rng.normal(size=3)) for _ in range(20)]  # rank 1
    mats += [rng.normal(size=(3, 2)) @ rng.normal(size=(2, 3)) for _ in range(20)]  # rank 2
    mats += [np.zeros((3, 3)), np.diag([2.0, 2.0, 2.0]), np.diag([1.0, -1.0, 1.0])]
    for A in mats:
        U, s, V = svd3(A)
        scale = max(np.abs(A).max(), 1.0)
        np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False), atol=1e-13 * scale)
        np.testing.assert_allclose(U @ np.diag(s) @ V.T, A, atol=1e-13 * scale)
        np.testing.assert_allclose(U.T @ U, np.eye(3), atol=1e-13)
        np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-13)
        assert np.all(np.diff(s) <= 0)


def test_kabsch_matches_numpy_and_recovers_rotations():
    rng = np.random.default_rng(2)
    for seed in range(100):
        s = rng.normal(size=(rng.integers(2, 8), 3))
        R0 = Rotation.random(random_state=seed).as_matrix()
        R = kabsch(s @ R0.T, s)
        np.testing.assert_allclose(R, R0, atol=1e-10)
        p = s @ R0.T + rng.normal(scale=0.3, size=s.shape)
        np.testing.assert_allclose(kabsch(p, s), numpy_kabsch(p, s), atol=1e-10)


@pytest.mark.parametrize("sine", [1e-2, 1e-3, 1e-5])
def test_kabsch_of_two_nearly_collinear_points(sine):
    """Two points: closed form above sin = 1e-4 between them, SVD below; both exact on copies."""
    rng = np.random.default_rng(4)
    for seed in range(20):
        a = rng.normal(size=3)
        normal = np.cross(a, rng.normal(size=3))
        b = 1.7 * a + sine * 1.7 * np.linalg.norm(a) * normal / np.linalg.norm(normal)
        s = np.array([a, b])
        R0 = Rotation.random(random_state=seed).as_matrix()
        np.testing.assert_allclose(kabsch(s @ R0.T, s), R0, atol=1e-9 / sine)


def test_kabsch_of_a_mirror_image_is_still_a_rotation():
    rng = np.random.default_rng(3)
    for _ in range(50):
        s = rng.normal(size=(5, 3))
        p = s * np.array([1.0, 1.0, -1.0])  # a reflection cannot be reached by a rotation
        R = kabsch(p, s)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(R, numpy_kabsch(p, s), atol=1e-10)


def test_kabsch_rejects_mismatched_point_sets():
    with pytest.raises(ValueError, match=r"shape \(m, 3\)"):
        kabsch(np.zeros((3, 3)), np.zeros((4, 3)))


# ---------------------------------------------------------------- classes
def test_classes_of_hand_built_gold_thiolate_fragments():
    atoms = zoo(np.random.default_rng(4))
    classes = classify(atoms)
    symbols = np.array(atoms.get_chemical_symbols())
    # ring [Au(SCH3)]4: atoms 0-23; bridge Au-S(CH3)-Au: 24-30; Au4 + S(CH3): 31-39
    assert list(classes[[0, 6, 12, 18]]) == ["Au_unit"] * 4
    assert list(classes[[24, 25]]) == ["Au_unit"] * 2  # half units share the unit model
    assert list(classes[31:35]) == ["Au_core"] * 4
    for element in ("S", "C", "H"):
        assert set(classes[symbols == element]) == {element}
    envs = extract_environments(atoms)
    unit = envs["Au_unit"]
    assert [int(s) for s in unit.scheme] == [SCHEME_IDS["Au_unit"]] * 4 + [SCHEME_IDS["Au_half_unit"]] * 2
    core = envs["Au_core"]
    assert list(core.indices) == [31, 32, 33, 34]
    assert list(core.n_lead) == [1, 0, 0, 0]  # only the first core Au is bound to the S
    assert list(core.n_cloud) == [4, 3, 3, 3]
    # the tetrahedron's S has only one Au within bonding distance: its second Au is stretched
    assert list(envs["S"].flags) == [0] * 5 + [FLAG_STRETCHED]
    assert class_names(atoms) == ["Au_core", "Au_unit", "S", "C", "H"]
    assert detect_chemistry(symbols) == "thiolate"


def test_other_chemistries_are_classed_by_element_with_the_generic_scheme():
    na = metal_cluster(np.random.default_rng(5), n=10)
    assert set(classify(na)) == {"Na"}
    agau = Atoms("Ag3Au3", positions=compact_cluster(np.random.default_rng(6), n=6, dmax=6.0).positions)
    assert class_names(agau) == ["Ag", "Au"]
    envs = extract_environments(agau)
    assert set(envs) == {"Ag", "Au"}
    assert all(set(e.scheme) == {SCHEME_IDS["generic"]} for e in envs.values())
    # a bare gold cluster is generic too: its atoms are class "Au", not "Au_core"
    assert set(classify(Atoms("Au4", positions=na.positions[:4]))) == {"Au"}


def test_thiolate_chemistry_refuses_foreign_elements():
    atoms = zoo(np.random.default_rng(7)) + Atoms("Na", positions=[[50.0, 0, 0]])
    assert detect_chemistry(atoms.get_chemical_symbols()) == "generic"
    with pytest.raises(ValueError, match="Z=11 is not part of the Au-S-C-H"):
        classify(atoms, chemistry="thiolate")
    with pytest.raises(ValueError, match="chemistry must be one of"):
        classify(atoms, chemistry="organic")


def test_records_do_not_depend_on_neighbour_order_or_far_neighbours():
    rng = np.random.default_rng(8)
    centre_z = np.array([79], dtype=np.int32)
    z = np.array([79] * 8 + [16], dtype=np.int32)
    rel = np.vstack([rng.normal(size=(8, 3)) * 2.0 + 0.5, [[0.0, 0.0, 2.4]]])
    rel[1] = -rel[0]  # two neighbours at exactly the same distance: ties are broken canonically
    base = _kernels.build_environments(1, centre_z, np.array([0, 9]), z, rel)
    for seed in range(5):
        order = np.random.default_rng(seed).permutation(9)
        far = np.array([[7.0, 0.0, 0.0], [0.0, -6.5, 0.0]])
        z2 = np.concatenate([z[order], [79, 16]]).astype(np.int32)
        got = _kernels.build_environments(1, centre_z, np.array([0, 11]), z2, np.vstack([rel[order], far]))
        for key in base:
            np.testing.assert_array_equal(got[key], base[key])


def test_build_environments_validates_the_neighbour_list():
    z = np.array([79], dtype=np.int32)
    with pytest.raises(ValueError, match=r"offsets must have shape \(2,\)"):
        _kernels.build_environments(0, z, np.array([0, 1, 1]), z, np.ones((1, 3)))
    with pytest.raises(ValueError, match="sits on its centre atom"):
        _kernels.build_environments(0, z, np.array([0, 1]), z, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        _kernels.build_environments(0, z, np.array([0, 1]), z, np.full((1, 3), np.nan))


def test_missing_anchors_degrade_gracefully():
    atoms = Atoms(
        "HHCHHHAuSAu",
        positions=[[0, 0, 0], [0.74, 0, 0], [20, 0, 0], [21.09, 0, 0], [20, 1.09, 0], [20, 0, 1.09], [40, 0, 0], [60, 0, 0], [62.4, 0, 0]],
    )  # H2, a methyl without S, an isolated Au, an S-Au pair without C
    envs = extract_environments(atoms, chemistry="thiolate")
    h2 = envs["H"][[0, 1]]
    assert np.all(h2.flags & FLAG_SUBSTITUTED) and np.all(h2.flags & FLAG_MISSING)
    # the methyl C takes an H in place of the S, so its third H anchor is missing
    assert envs["C"].flags[0] == FLAG_SUBSTITUTED | FLAG_MISSING
    lone = envs["Au_core"]
    assert lone.flags[0] & FLAG_SPARSE_CLOUD and lone.n_cloud[0] == 0
    assert envs["S"].flags[0] & FLAG_MISSING
    normal = extract_environments(zoo(np.random.default_rng(9)))
    for name, env in envs.items():
        for refs in (normal[name], env):
            g, R = align(env, refs)
            assert np.all(np.isfinite(g)) and np.all(np.isfinite(R))
            g2, _ = align(refs, env)
            assert np.all(np.isfinite(g2))


# ---------------------------------------------------------------- alignment
@pytest.mark.parametrize("make", [lambda rng: zoo(rng), lambda rng: metal_cluster(rng, n=14)])
def test_alignment_recovers_rotation_of_permuted_copies(make):
    atoms = make(np.random.default_rng(10))
    copy, R0, order = rotated(atoms, seed=11)
    envs = extract_environments(atoms)
    moved = extract_environments(copy)
    for name, env in envs.items():
        env2 = moved[name]
        # env2 row k is atom order[indices[k]] of the original
        rows = np.array([np.flatnonzero(env.indices == order[i])[0] for i in env2.indices])
        g, R = align(env2, env)
        k = np.arange(len(env2))
        assert np.abs(g[k, rows]).max() <= 1e-10, name
        np.testing.assert_allclose(R[k, rows], np.broadcast_to(R0, (len(k), 3, 3)), atol=1e-10, err_msg=name)


def test_mirror_images_align_with_proper_rotations_and_nonzero_error():
    atoms = zoo(np.random.default_rng(12))
    mirror = atoms.copy()
    mirror.positions[:, 2] *= -1
    envs, mirrored = extract_environments(atoms), extract_environments(mirror)
    for name, env in envs.items():
        g, R = align(mirrored[name], env)
        dets = np.linalg.det(R.reshape(-1, 3, 3))
        np.testing.assert_allclose(dets, 1.0, atol=1e-10, err_msg=name)
        assert np.all(np.diag(g) > 1e-3), name  # chiral (noisy) environments cannot be superposed


def test_triangle_prefilter_finds_the_brute_force_alignment():
    rng = np.random.default_rng(13)
    for trial in range(6):
        atoms = metal_cluster(rng, n=13)
        copy, _, _ = rotated(atoms, seed=100 + trial, permute=False)
        copy.positions += rng.normal(scale=0.05, size=copy.positions.shape)
        refs, inputs = extract_environments(atoms)["Na"], extract_environments(copy)["Na"]
        assert inputs.n_cloud.max() > 4  # more than 10 ordered pairs: the prefilter matters
        g10, R10 = align(inputs, refs, n_triangles=10)
        g_all, R_all = align(inputs, refs, n_triangles=0)
        k = np.arange(len(refs))
        np.testing.assert_allclose(g10[k, k], g_all[k, k], atol=1e-12)
        np.testing.assert_allclose(R10[k, k], R_all[k, k], atol=1e-12)
        assert np.all(g10 >= g_all - 1e-12)  # keeping fewer candidates can only be worse


def test_alignment_cosines_match_align():
    rng = np.random.default_rng(14)
    envs = extract_environments(zoo(rng))
    for name in ("H", "Au_core", "Au_unit"):
        env = envs[name]
        y = rng.normal(size=(len(env), 3))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        g, R = align(env, env)
        D_c, D_g = alignment_cosines(env, env, y, y)
        np.testing.assert_array_equal(D_g, g)
        np.testing.assert_allclose(D_c, np.einsum("ia,ijab,jb->ij", y, R, y), atol=1e-14)


def test_alignment_refuses_mixed_classes_and_bad_shapes():
    envs = extract_environments(zoo(np.random.default_rng(15)))
    with pytest.raises(ValueError, match=r"input environment 0 \(scheme H, Z=1\) cannot be aligned"):
        align(envs["H"], envs["C"])
    na = extract_environments(metal_cluster(np.random.default_rng(15), n=4))["Na"]
    ag = extract_environments(metal_cluster(np.random.default_rng(15), n=4, symbol="Ag"))["Ag"]
    with pytest.raises(ValueError, match="different classes"):
        align(na, Environments.concatenate([ag, na]))
    with pytest.raises(ValueError, match="n_triangles must be >= 0"):
        align(envs["Au_core"], envs["Au_core"], n_triangles=-1)
    with pytest.raises(ValueError, match=r"input unit forces must have shape \(18, 3\)"):
        alignment_cosines(envs["H"], envs["H"], np.zeros((3, 3)), np.zeros((18, 3)))


# ---------------------------------------------------------------- container
def test_environments_container_round_trip():
    envs = extract_environments(zoo(np.random.default_rng(16)), frame=3)
    h = envs["H"]
    assert len(h) == 18 and set(h.frame) == {3}
    assert len(h[2]) == 1 and len(h[np.array([0, 5])]) == 2
    assert len(h[h.indices > 10]) == np.count_nonzero(h.indices > 10) > 0
    both = Environments.concatenate([h, h[:4]])
    assert len(both) == 22
    np.testing.assert_array_equal(both.anchors[18:], h.anchors[:4])
    assert len(Environments.concatenate([])) == 0
    arrays = h.to_arrays()
    assert all(a.dtype in (np.float64, np.int64) for a in arrays.values())
    back = Environments.from_arrays(arrays)
    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(back, key), value)
    arrays["anchors"][:] = 0.0  # to_arrays hands out copies
    assert np.any(h.anchors != 0.0)


def test_environments_from_arrays_names_the_bad_field():
    arrays = extract_environments(zoo(np.random.default_rng(17)))["S"].to_arrays()
    with pytest.raises(ValueError, match=r"model\.cfm: environment arrays \['cloud'\] are missing"):
        Environments.from_arrays({k: v for k, v in arrays.items() if k != "cloud"}, source="model.cfm")
    arrays["n_lead"] = arrays["n_lead"][:-1]
    with pytest.raises(ValueError, match="field 'n_lead' has shape"):
        Environments.from_arrays(arrays)
    bad = extract_environments(zoo(np.random.default_rng(17)))["S"].to_arrays()
    bad["scheme"][0] = 42
    with pytest.raises(ValueError, match="ids outside"):
        Environments.from_arrays(bad)


# ---------------------------------------------------------------- the core without Python
def test_core_runs_without_python_and_agrees_with_the_bindings(tmp_path):
    """Compile the header-only core into a plain C++ program (as the LAMMPS plugin will)."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler on PATH")
    root = Path(__file__).resolve().parents[2]
    exe = tmp_path / "align_standalone"
    subprocess.run(
        [
            compiler,
            "-std=c++17",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Wno-unknown-pragmas",
            f"-I{root / 'cpp' / 'include'}",
            str(root / "tests" / "cpp" / "align_standalone.cpp"),
            "-o",
            str(exe),
        ],
        check=True,
        capture_output=True,
    )
    rng = np.random.default_rng(40)
    atoms = metal_cluster(rng, n=10)
    copy, _, _ = rotated(atoms, seed=41, permute=False)
    n = len(atoms)
    B, T, d = rng.normal(size=(n, n)), rng.normal(size=(n, 3)), rng.uniform(size=(n, n))
    T /= np.linalg.norm(T, axis=1, keepdims=True)
    lines = [f"0 {n}"] + [f"{z} {x:.17g} {y:.17g} {w:.17g}" for z, (x, y, w) in zip(atoms.numbers, atoms.positions)]
    lines += [" ".join(f"{v:.17g}" for v in row) for row in copy.positions]
    lines += [" ".join(f"{v:.17g}" for v in a.ravel()) for a in (B, T, d)]
    out = subprocess.run([str(exe)], input="\n".join(lines), capture_output=True, text=True, check=True).stdout
    got = np.array([[float(v) for v in line.split()] for line in out.splitlines()])
    refs, inputs = extract_environments(atoms)["Na"], extract_environments(copy)["Na"]
    expected = _kernels.oamlm_predict(inputs.kernel_arrays(), refs.kernel_arrays(), d, B, None, T, 0.5)
    g, _ = align(inputs, refs)
    np.testing.assert_array_equal(got[:, 0], inputs.scheme)
    np.testing.assert_allclose(got[:, 1], np.diag(g), atol=1e-12)
    np.testing.assert_allclose(got[:, 2:], expected["v"], atol=1e-12)
