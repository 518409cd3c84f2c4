"""Global minima of Au20 and larger gold clusters by basin hopping with the DFT-gold gap: does the
search, from random starts, reach the low-energy structure of each size?

The model (``--model``, e.g. the default ``clusterforce train --kind gap`` on
../shared/data/au-clusters-dft/benchmark_train_3000.extxyz.gz) saw Au10-Au19 only: every size here is
outside its training sizes. For each size the reference is the N-atom cluster of
../shared/structures/qcd_low_energy_Au.extxyz (Au20: the tetrahedron of Li, Li and Wang, Science 299,
864 (2003)) relaxed with the same model. One search per seed (at most ``--jobs`` at once)::

    clusterforce search random:N:Au --reference MODEL --method basin-hopping --steps S --seed K
        --target E_REF [--moves ... --walkers W --restart-after M]

stops at the first minimum at or below the relaxed reference's energy (``--no-target``: runs every
step). Reported per seed: the lowest minimum's energy, point group, energy above the reference,
structural distance to it (Angstrom, after rotation, permutation and reflection), the step it was
found at, steps run and CPU seconds. Each invocation adds its runs to the JSON (one entry per size and
variant, replaced when run again), so sizes can get different budgets::

    nice -n 19 python benchmarks/au_global_minima.py --model M.cfm --sizes 20 --steps 3000 --seeds 1 2
    nice -n 19 python benchmarks/au_global_minima.py --model M.cfm --sizes 20 --steps 2000 --seeds 3 --walkers 2 --restart-after 200
    nice -n 19 python benchmarks/au_global_minima.py --model M.cfm --sizes 24 26 32 --steps 800 --seeds 1

Reads ../shared (``--shared`` to point elsewhere) and prints what is missing and exits 0 when it is not
there. Databases and per-seed JSON go to ``--work``/auN-VARIANT (``--reuse``: a seed whose JSON is
there already is read, not run again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from au20_basin_hopping import RESULTS, SAME_STRUCTURE, SHARED, STRUCTURES, qcd_cluster, run_seeds, shortest_pair  # noqa: E402

OUTPUT = RESULTS / "au_global_minima.json"


def variant(args: argparse.Namespace) -> str:
    """Name of the search settings: ``mix`` (the default moves), the moves given, walkers, restarts."""
    name = "mix" if args.moves is None else args.moves.replace("=", "").replace(",", "-")
    if args.walkers > 1:
        name += f"-w{args.walkers}"
    if args.restart_after is not None:
        name += f"-r{args.restart_after}"
    return name


def search_options(args: argparse.Namespace, target: float | None) -> tuple[str, ...]:
    """The ``clusterforce search`` options beyond start, model, steps and seed."""
    extra = [] if target is None else ["--target", f"{target:.4f}"]
    if args.moves is not None:
        extra += ["--moves", args.moves]
    if args.walkers > 1:
        extra += ["--walkers", str(args.walkers)]
    if args.restart_after is not None:
        extra += ["--restart-after", str(args.restart_after)]
    return tuple(extra)


def reference(model: Path, shared: Path, n: int) -> tuple[dict, object]:
    """The QCD N-atom cluster relaxed with the model: its summary and structure."""
    from clusterforce import Calculator
    from clusterforce.descriptors.symmetry import point_group
    from clusterforce.workflows.isomers import relax, structure_distance

    qcd = qcd_cluster(shared, n)
    relaxed, energy, converged = relax(qcd, Calculator(str(model)))
    summary = {
        "energy_eV": energy,
        "converged": converged,
        "point_group_qcd": point_group(qcd),
        "point_group": point_group(relaxed),
        "moved_A": structure_distance(relaxed, qcd),
        "shortest_pair_A": shortest_pair(relaxed),
    }
    return summary, relaxed


def analyse_seed(work: Path, seed: int, relaxed, e_ref: float) -> dict:
    """The lowest minimum of one seed's database against the relaxed reference."""
    from ase.db import connect
    from clusterforce.workflows.isomers import structure_distance

    summary = json.loads((work / f"seed{seed}.json").read_text())
    rows = list(connect(str(work / f"seed{seed}.db")).select(sort="rank"))
    distance = structure_distance(rows[0].toatoms(), relaxed)
    # basin_hopping stops at the step that reached the target, so that step is the number run
    steps_run = summary["lowest_found_at_step"] if summary["target_reached"] else summary["steps"]
    return {
        "steps_asked": summary["steps"],
        "steps_run": steps_run,
        "target_eV": summary["target"],
        "reached_reference": summary["target_reached"],
        "cpu_seconds": summary["cpu_seconds"],
        "cpu_seconds_per_step": summary["cpu_seconds"] / max(steps_run, 1),
        "n_minima": summary["n_minima"],
        "rejected": summary["rejected"],
        "lowest_energy_eV": rows[0].energy,
        "lowest_found_at_step": summary["lowest_found_at_step"],
        "lowest_point_group": rows[0].point_group,
        "lowest_minus_reference_eV": rows[0].energy - e_ref,
        "lowest_distance_to_reference_A": distance,
        "lowest_is_reference": bool(distance < SAME_STRUCTURE),
        "shortest_pair_of_lowest_A": shortest_pair(rows[0].toatoms()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="gap model file (e.g. clusterforce train --kind gap on the DFT gold frames)")
    p.add_argument("--sizes", type=int, nargs="+", default=[20], help="cluster sizes N (default: 20)")
    p.add_argument("--steps", type=int, default=2000, help="basin-hopping moves per seed (default: 2000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="one search per seed and size (default: 1 2)")
    p.add_argument("--jobs", type=int, default=2, help="searches at once (default: 2, the machine's cores)")
    p.add_argument("--moves", default=None, help="clusterforce search --moves (default: its mix)")
    p.add_argument("--walkers", type=int, default=1, help="clusterforce search --walkers (default: 1)")
    p.add_argument("--restart-after", type=int, default=None, help="clusterforce search --restart-after (default: off)")
    p.add_argument("--no-target", action="store_true", help="run every step (default: stop at the relaxed reference's energy)")
    p.add_argument("--reuse", action="store_true", help="read a seed's JSON already in --work instead of running it again")
    p.add_argument("--shared", default=str(SHARED), help="directory with structures/ (default: ../shared)")
    p.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "clusterforce-au-global-minima"), help="databases, logs")
    p.add_argument("--output", default=str(OUTPUT), help="JSON to add the runs to")
    args = p.parse_args(argv)
    shared, model, output = Path(args.shared), Path(args.model), Path(args.output)
    if not (shared / STRUCTURES).is_file():
        print(f"au_global_minima: {shared / STRUCTURES} not found (it lives in ../shared beside the repository; or --shared DIR)")
        return 0
    result = json.loads(output.read_text()) if output.is_file() else {}
    result.update(
        what="basin hopping from random starts with a gap trained on DFT gold Au10-Au19, against the QCD low-energy structure "
        "of each size relaxed with the same model",
        model=str(model),
        threads=os.environ.get("OMP_NUM_THREADS", "default"),
    )
    runs = result.setdefault("runs", {})
    for n in args.sizes:
        ref, relaxed = reference(model, shared, n)
        work = Path(args.work) / f"au{n}-{variant(args)}"
        work.mkdir(parents=True, exist_ok=True)
        extra = search_options(args, None if args.no_target else ref["energy_eV"])
        todo = [s for s in args.seeds if not (args.reuse and (work / f"seed{s}.json").is_file())]
        wall = run_seeds(model, todo, args.steps, work, size=n, extra=extra, jobs=args.jobs)
        runs[f"Au{n} {variant(args)}"] = {
            "size": n,
            "variant": variant(args),
            "search_options": list(extra),
            "reference": ref,
            "wall_seconds": {str(s): t for s, t in wall.items()},
            "seeds": {str(s): analyse_seed(work, s, relaxed, ref["energy_eV"]) for s in args.seeds},
        }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| run | seed | steps run | CPU s | lowest (eV) | point group | lowest - reference (eV) | distance (A) | reference (eV, group) |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for name, run in runs.items():
        ref = run["reference"]
        for seed, r in run["seeds"].items():
            print(
                f"| {name} | {seed} | {r['steps_run']} | {r['cpu_seconds']:.0f} | {r['lowest_energy_eV']:.3f} | {r['lowest_point_group']} "
                f"| {r['lowest_minus_reference_eV']:+.3f} | {r['lowest_distance_to_reference_A']:.2f} "
                f"| {ref['energy_eV']:.3f} {ref['point_group']} |"
            )
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
