"""``clusterforce heat-capacity REPLICAS_DIR``: Cv(T) by the multiple-histogram method."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "heat-capacity",
        help="heat capacity Cv(T) from replica energies (multiple-histogram method, bootstrap errors, plots)",
        description="Reads the replica energies written by `clusterforce md`, reweights them by the multiple-histogram "
        "(Ferrenberg-Swendsen / WHAM) equations, and writes Cv(T) in k_B and in C0 = (3N - 9/2) k_B with "
        "block-bootstrap error bars, the melting peak, a histogram-overlap check and a PNG plot.",
    )
    p.add_argument("replicas", help="output directory of clusterforce md")
    p.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=None,
        help="replicas to use, K (default: every T<temperature> directory, evaporated ones left out)",
    )
    p.add_argument("--skip", type=int, default=0, help="samples dropped from the start of each replica (equilibration)")
    p.add_argument(
        "--grid",
        type=float,
        nargs=3,
        metavar=("TMIN", "TMAX", "N"),
        default=None,
        help="temperature grid, K (default: the replica range, 200 points)",
    )
    p.add_argument("--bootstrap", type=int, default=50, help="bootstrap samples for the error bars")
    p.add_argument("--json", default=None, help="write the curve here (default REPLICAS/heat_capacity.json)")
    p.add_argument("--plot", default=None, help="PNG of the histograms and Cv(T) (default REPLICAS/heat_capacity.png)")
    return p


def _status(root: Path, temperature: float) -> dict:
    """A replica's status.json (steps, CPU seconds); empty for replicas run before it recorded them."""
    from clusterforce.workflows.replicas import replica_dir

    path = replica_dir(root, temperature) / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _lindemann(root: Path, temperature: float, n_atoms: int) -> float | None:
    """The replica's Lindemann index over all its samples (None for replicas run before it was recorded)."""
    import numpy as np

    from clusterforce.workflows.replicas import replica_dir
    from clusterforce.workflows.thermo import Lindemann

    path = replica_dir(root, temperature) / "lindemann.npz"
    if not path.exists():
        return None
    with np.load(path) as state:
        return Lindemann.from_state(n_atoms, state).value


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from ase.io import read

    from clusterforce.workflows.replicas import load_energies
    from clusterforce.workflows.thermo import MultipleHistogram, block_bootstrap, interior_peak, reduced_heat_capacity, tracked_peak_spread

    root = Path(args.replicas)
    if args.temperatures:
        temps = np.array(sorted(args.temperatures))
    else:
        found = []
        for d in sorted(root.glob("T*")):
            status = d / "status.json"
            if status.exists() and json.loads(status.read_text())["status"] == "done":
                found.append(float(d.name[1:]))
        temps = np.array(found)
    if temps.size == 0:
        raise SystemExit(f"clusterforce heat-capacity: no finished replicas in {root}")
    energies = load_energies(root, temps, skip=args.skip)
    start = next(p for p in root.glob("T*/checkpoint.extxyz"))
    n_atoms = len(read(start))
    lo, hi, n = args.grid if args.grid else (temps.min(), temps.max(), 200)
    grid = np.linspace(lo, hi, int(n))
    mh = MultipleHistogram(energies, temps)
    bad = mh.check_overlap()
    cv, err, curves = block_bootstrap(energies, temps, grid, n_boot=args.bootstrap, return_samples=True)
    c0 = reduced_heat_capacity(cv, n_atoms)
    peak = int(np.argmax(cv))
    peaks = grid[np.argmax(curves, axis=1)]  # where each bootstrap curve peaks
    inner = interior_peak(grid, cv)
    records = [_status(root, t) for t in temps]
    lindemann = [_lindemann(root, t, n_atoms) for t in temps]
    result = {
        "n_atoms": n_atoms,
        "temperatures_K": temps.tolist(),
        "samples_per_replica": [int(e.size) for e in energies],
        "md_steps_per_replica": [r.get("steps") for r in records],
        "lindemann_index": lindemann,
        "cpu_seconds_per_replica": [r.get("cpu_seconds") for r in records],
        "grid_K": grid.tolist(),
        "cv_conf_kB": cv.tolist(),
        "cv_conf_err_kB": err.tolist(),
        "cv_over_c0": c0.tolist(),
        "cv_over_c0_err": (err / (3 * n_atoms - 4.5)).tolist(),
        "peak_K": float(grid[peak]),
        "peak_K_spread": float(np.std(peaks)),
        "peak_at_edge": bool(peak in (0, grid.size - 1)),
        "interior_peak_K": inner,
        # The same peak followed through the bootstrap curves (the nearest local maximum in each).
        "interior_peak_K_spread": tracked_peak_spread(grid, curves, inner) if inner is not None else None,
        "low_overlap_pairs": bad,
    }
    out_json = Path(args.json) if args.json else root / "heat_capacity.json"
    out_json.write_text(json.dumps(result, indent=1) + "\n")
    _plot(Path(args.plot) if args.plot else root / "heat_capacity.png", energies, temps, grid, c0, err / (3 * n_atoms - 4.5), lindemann)
    print(f"Cv/C0 peak at {grid[peak]:.1f} K (+- {np.std(peaks):.1f} K) from {len(temps)} replicas; written to {out_json}")
    if inner is not None and not result["peak_at_edge"]:
        print(f"that peak followed through the bootstrap curves: {inner:.1f} K +- {result['interior_peak_K_spread']:.1f} K")
    if result["peak_at_edge"]:
        where = "interior maximum at " + (f"{inner:.1f} K (+- {result['interior_peak_K_spread']:.1f} K)" if inner else "none")
        print(f"warning: Cv is largest at the ladder's edge ({grid[peak]:.0f} K), which is not a peak; {where}. "
              "Add replicas beyond the edge before calling either a melting temperature.")  # fmt: skip
    return 0


def _plot(path: Path, energies, temps, grid, c0, err, lindemann) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4))
    for e, t in zip(energies, temps):
        a.hist(e, bins=40, histtype="step", label=f"{t:g} K")
    a.set_xlabel("potential energy (eV)")
    a.set_ylabel("count")
    a.set_title("replica energy histograms")
    a.legend(fontsize=7)
    b.plot(grid, c0, color="k")
    b.fill_between(grid, c0 - err, c0 + err, color="0.8")
    b.set_xlabel("T (K)")
    b.set_ylabel("$C_v / C_0$")
    b.set_title("multiple-histogram heat capacity")
    known = [(t, v) for t, v in zip(temps, lindemann) if v is not None]
    if known:
        c.plot(*zip(*known), "o-", color="k")
    c.set_xlabel("T (K)")
    c.set_ylabel("Lindemann index")
    c.set_title("Lindemann index per replica (all samples)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
