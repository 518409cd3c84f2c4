"""``clusterforce map MODEL.cfm -o MAPPED.cfm``: tabulate a gap model's 2b and 3b terms on splines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    from clusterforce.core.options import add_config_argument
    from clusterforce.kinds.gap.mapping import MapGrid

    d = MapGrid()
    p = subparsers.add_parser(
        "map",
        help="tabulate a gap model's 2b/3b terms on cubic splines (a faster model file)",
        description="Replace the kernel sums of a gap model's 2b and 3b terms by cubic B-spline tables (the review's "
        "mapped force fields): 2b as e(r), 3b as e(r_1, r_2, cos theta) seen from the centre. The mapped file runs in "
        "Python, ASE and LAMMPS like any model; its cost per pair or triangle no longer grows with the number of "
        "sparse points. SOAP terms stay as they are; uncertainties stay those of the unmapped model. Prints the error "
        "the tables add (against the exact functions, and on --check frames).",
    )
    p.add_argument("model", metavar="MODEL.cfm", help="gap model file written by 'clusterforce train'")
    p.add_argument("-o", "--output", metavar="MAPPED.cfm", required=True, help="where to write the mapped model")
    p.add_argument(
        "--r-min",
        type=float,
        help="shortest tabulated distance, Angstrom (default: 1, or 80%% of the shortest sparse-point distance if shorter)",
    )
    p.add_argument("--r-spacing", type=float, default=d.r_spacing, help="grid spacing of distances, Angstrom (default %(default)s)")
    p.add_argument("--cos-spacing", type=float, default=d.cos_spacing, help="grid spacing of 3b cos theta (default %(default)s)")
    p.add_argument("--check", nargs="+", metavar="DATA", help="frames on which to compare mapped and unmapped forces and energies")
    p.add_argument("--json", metavar="OUT.json", help="write the error report as JSON")
    add_config_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from clusterforce.core import registry
    from clusterforce.data import read_frames
    from clusterforce.kinds.gap.mapping import MapGrid, map_model

    try:
        model = registry.load_model(args.model)
        if model.kind != "gap":
            raise ValueError(f"{args.model}: model kind is '{model.kind}'; only gap models have 2b/3b terms to map")
        check = read_frames(args.check) if args.check else []
        report = map_model(model, MapGrid(args.r_min, args.r_spacing, args.cos_spacing), check_frames=check)
    except ValueError as exc:
        print(f"clusterforce map: error: {exc}", file=sys.stderr)
        return 1
    model.save(args.output)
    print(f"{'term':>4} {'kind':>4} {'table max |error| (eV)':>24} {'table RMS error (eV)':>22}")
    for t in report["terms"]:
        print(f"{t['term']:>4} {t['kind']:>4} {t['table_max_error_eV']:>24.2e} {t['table_rms_error_eV']:>22.2e}")
    if "check" in report:
        c = report["check"]
        print(
            f"on {c['frames']} check frames, mapped - unmapped: forces RMS {1e3 * c['force_rms_eV_per_A']:.3f} meV/A "
            f"(max {1e3 * c['force_max_eV_per_A']:.3f}), energy RMS {1e3 * c['energy_rms_eV_per_atom']:.4f} meV/atom"
        )
    print(f"wrote {args.output}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
