"""What the repulsive baseline (on by default) costs in accuracy: the same models with and without
the wall, in-sample and on held-out sizes or rings.

Splits (held out by system, never by frame):

* ``au``: ../shared/data/au-clusters-dft (VASP), train on Au10-Au15, test on Au16-Au19
  (``--au-per-size`` frames of each size, default 500, drawn as bench_gap.py draws them);
* ``rings``: the shipped ``dataset:rings`` (GFN1-xTB), train on ring4 and ring5, test on ring6;
* ``na``: the shipped ``dataset:na`` (GFN1-xTB), train on Na20-Na41, test on Na55.

Each kind is fitted once with its defaults (the wall on). The wall is zero on every training frame
(checked here, frame by frame), so the learned part is exactly what a fit without the wall gives:
same sparse points or network, same targets (reference minus a zero wall). "Without the wall" is
that learned part alone, the model with ``baseline/r_s`` taken out, so the two columns differ by
the wall alone. For sann the compiled predictor applies the wall once the shared structure driver
does; until then (``applied_by_compiled_predictor: false`` in the JSON) the wall's energy and forces
(:func:`clusterforce.core.baseline.energy_forces`, the same pair sum) are added here.

Usage::

    nice python benchmarks/wall_cost.py [--only au rings na] [--kinds gap sann] [--au-per-size 500]
        [--shared DIR] [--output benchmarks/results/wall_cost.json]

Writes the JSON and a markdown table next to it (``.md``) and prints the table. ``au`` is skipped,
with a message, when ../shared (``--shared``) is not there.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
from bench_gap import SHARED, au_frames

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def split(data: str, shared: Path, au_per_size: int):
    """(train, test, description) of data set ``data``; None when its files are missing."""
    from clusterforce.data import datasets

    if data == "au":
        if not (shared / "data" / "au-clusters-dft").is_dir():
            print(
                f"wall_cost: {shared / 'data' / 'au-clusters-dft'} not found (../shared beside the repository; or --shared DIR); au skipped"
            )
            return None
        train = au_frames(str(shared), range(10, 16), au_per_size, seed=0)
        test = au_frames(str(shared), range(16, 20), au_per_size, seed=1)
        return train, test, f"Au10-Au15 -> Au16-Au19, {au_per_size} frames per size"
    frames = datasets.load(data)
    held = {"rings": {"ring6"}, "na": {"Na55"}}[data]
    train = [a for a in frames if a.info["system"] not in held]
    test = [a for a in frames if a.info["system"] in held]
    return train, test, {"rings": "ring4, ring5 -> ring6", "na": "Na20-Na41 -> Na55"}[data]


def fit(kind: str, train):
    from clusterforce.kinds.gap.model import GAPModel
    from clusterforce.kinds.sann import SANNModel

    if kind == "gap":
        return GAPModel(progress=False).fit(train)
    # sann's table lacks Au: the value bench_neural.py uses (Clementi-Raimondi-Reinhardt 6s, as recalled there).
    return SANNModel(z_eff={"Au": 10.94}, progress=False).fit(train)


def learned_part(model):
    """The fitted model with its wall taken out."""
    plain = copy.copy(model)
    plain.baseline_r_s_ = None
    plain._build_predictor()
    return plain


def wall_of(model, atoms) -> tuple[float, np.ndarray]:
    from clusterforce.core import baseline as pair_wall
    from clusterforce.data import species_indices

    return pair_wall.energy_forces(model.baseline_r_s_, atoms, species_indices(atoms, model.element_list_))


def predictions(model, plain, frames, add_wall: bool):
    """Per frame: (energy with, energy without, forces with, forces without) and the wall's share."""
    out = []
    for atoms in frames:
        without = plain.predict(atoms)
        if add_wall:
            e_wall, f_wall = wall_of(model, atoms)
            full = {"energy": without["energy"] + e_wall, "forces": without["forces"] + f_wall}
        else:
            full = model.predict(atoms)
        out.append((full, without))
    return out


def metrics(frames, predicted) -> dict:
    """Energy RMSE (meV/atom) and force RMSE (meV/Angstrom) with and without the wall, and where it acts."""
    ref_e = np.array([a.get_potential_energy() for a in frames])
    n = np.array([len(a) for a in frames])
    ref_f = np.concatenate([a.get_forces().ravel() for a in frames])
    out = {"n_frames": len(frames), "n_atoms": int(n.sum())}
    for i, name in enumerate(("with_wall", "without_wall")):
        e = np.array([p[i]["energy"] for p in predicted])
        f = np.concatenate([p[i]["forces"].ravel() for p in predicted])
        out[name] = {
            "energy_rmse_mev_per_atom": float(1000 * np.sqrt(np.mean(((e - ref_e) / n) ** 2))),
            "force_rmse_mev_per_A": float(1000 * np.sqrt(np.mean((f - ref_f) ** 2))),
        }
    wall_e = np.array([p[0]["energy"] - p[1]["energy"] for p in predicted])
    wall_f = np.concatenate([np.abs(p[0]["forces"] - p[1]["forces"]).max(axis=1) for p in predicted])
    out["frames_where_the_wall_acts"] = int(np.count_nonzero(wall_e))
    out["atoms_where_the_wall_acts"] = int(np.count_nonzero(wall_f))
    out["largest_wall_energy_eV"] = float(wall_e.max())
    out["largest_wall_force_component_eV_per_A"] = float(wall_f.max())
    return out


def run_one(data: str, kind: str, train, test) -> dict:
    start = time.perf_counter()
    model = fit(kind, train)
    fit_seconds = time.perf_counter() - start
    for i, atoms in enumerate(train):
        e_wall, f_wall = wall_of(model, atoms)
        if e_wall != 0.0 or f_wall.any():
            raise RuntimeError(f"{data}/{kind}: the wall is not zero on training frame {i} ({e_wall} eV)")
    plain = learned_part(model)
    # Whether the compiled predictor already adds the wall (sann: once the structure driver does).
    probe = test[0].copy()
    probe.positions[1] = probe.positions[0] + [0.5, 0.0, 0.0]
    applied = model.predict(probe)["energy"] != plain.predict(probe)["energy"]
    return {
        "data": data,
        "kind": kind,
        "r_s_A": dict(zip(model.element_list_, model.baseline_r_s_.tolist())),
        "fit_seconds": fit_seconds,
        "applied_by_compiled_predictor": bool(applied),
        "train": metrics(train, predictions(model, plain, train, add_wall=not applied)),
        "test": metrics(test, predictions(model, plain, test, add_wall=not applied)),
    }


def table(rows: list[dict], splits: dict[str, str]) -> str:
    head = (
        "| data (split) | kind | set | energy RMSE with / without wall (meV/atom) | force RMSE with / without wall (meV/Å) "
        "| force change | atoms the wall touches |\n|---|---|---|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        for part, label in (("train", "in-sample"), ("test", "held out")):
            m = r[part]
            w, o = m["with_wall"], m["without_wall"]
            change = 100 * (w["force_rmse_mev_per_A"] / o["force_rmse_mev_per_A"] - 1)
            lines.append(
                f"| {r['data']} ({splits[r['data']]}) | {r['kind']} | {label} | {w['energy_rmse_mev_per_atom']:.3f} / "
                f"{o['energy_rmse_mev_per_atom']:.3f} | {w['force_rmse_mev_per_A']:.1f} / {o['force_rmse_mev_per_A']:.1f} | "
                f"{change:+.2f} % | {m['atoms_where_the_wall_acts']} of {m['n_atoms']} |"
            )
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=["au", "rings", "na"], default=["au", "rings", "na"])
    p.add_argument("--kinds", nargs="+", choices=["gap", "sann"], default=["gap", "sann"])
    p.add_argument("--au-per-size", type=int, default=500, help="frames per size of Au10-Au19 (default: 500)")
    p.add_argument("--shared", default=str(SHARED), help="directory with data/au-clusters-dft (default: ../shared)")
    p.add_argument("--output", default=str(RESULTS / "wall_cost.json"))
    args = p.parse_args(argv)
    rows, splits = [], {}
    for data in args.only:
        got = split(data, Path(args.shared), args.au_per_size)
        if got is None:
            continue
        train, test, splits[data] = got
        for kind in args.kinds:
            print(f"{data} / {kind}: fitting on {len(train)} frames, testing on {len(test)}", flush=True)
            rows.append(run_one(data, kind, train, test))
    if not rows:
        return 0
    text = table(rows, splits)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"splits": splits, "runs": rows}, indent=2) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(
        "## The repulsive baseline's cost (same fits, with and without the wall)\n\n" + text, encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
