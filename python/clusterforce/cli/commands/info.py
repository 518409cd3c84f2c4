"""``clusterforce info MODEL.cfm``: what a model file holds, its integrity and its size."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "info",
        help="show a model file's kind, format, checksum status, size and largest arrays",
        description="Read a model file (verifying its checksum) and summarise it: kind, elements, format version, "
        "the clusterforce that wrote it, size, and the largest arrays with their dtype on disk.",
    )
    p.add_argument("model", help="model file (.cfm)")
    p.add_argument("--top", type=int, default=8, help="how many of the largest arrays to list")
    return p


def run(args: argparse.Namespace) -> int:
    from clusterforce.core.modelfile import human_size, load

    mf = load(args.model)
    checksum = "verified (CRC-32)" if mf.format_version >= 2 else "none (format_version 1; re-save to add one)"
    print(f"{args.model}: kind {mf.kind}, format_version {mf.format_version}, written by clusterforce {mf.clusterforce_version}")
    if "elements" in mf.metadata:
        print(f"elements: {' '.join(mf.metadata['elements'])}")
    print(f"checksum: {checksum}")
    print(f"size: {human_size(mf.size)} in {len(mf.arrays)} arrays")
    sizes = sorted(((a.size * (4 if mf.stored_dtypes[n] == "F32" else 8), n) for n, a in mf.arrays.items()), reverse=True)
    print(f"{'array':<48} {'dtype':>5} {'shape':>18} {'size':>10}")
    for n_bytes, name in sizes[: args.top]:
        print(f"{name:<48} {mf.stored_dtypes[name]:>5} {str(mf.arrays[name].shape):>18} {human_size(n_bytes):>10}")
    return 0
