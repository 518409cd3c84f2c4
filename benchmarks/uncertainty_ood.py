"""Does each kind's uncertainty find the frames it predicts badly? Out-of-domain detection, per kind.

Per data set a model of each kind is trained on some sizes and asked about a pool of frames in parts:

- ``in-sample``: training frames (the in-sample twin of every number);
- ``in-domain``: unseen frames of the training sizes (a random share of each size, never trained on);
- ``held-out size``: frames of sizes never trained on;
- ``squeezed`` / ``stretched``: in-domain frames scaled about their centroid by U(0.85, 0.9) / U(1.1, 1.15);
- ``hot``: in-domain frames with every coordinate rattled by N(0, 0.12 Angstrom).

Data: ``au`` (DFT Au10-Au19 from ../shared/data/au-clusters-dft, the split of docs/benchmarks.md:
train Au10-Au15, 500 frames per size drawn as bench_gap.py draws them; in-domain 50 other frames per
size; held out Au16-Au19, 100 per size as bench_neural.py draws them). The distorted Au copies have
no DFT reference: they get scores and flag rates but no error label. ``rings`` (shipped, GFN1-xTB;
ring6 held out) and ``na`` (shipped, GFN1-xTB; Na55 held out): in-domain is a random 20 % of each
training size; the distorted copies are labelled here with GFN1-xTB (the data sets' own settings,
``clusterforce.references.resolve``), cached in ``--workdir``.

Per frame the score is the largest per-atom uncertainty (gap and sann: ``predict(atoms,
variance=True)["uncertainty"]``, the predicted size of the atom's force error, eV/Angstrom; dml:
``predict(atoms)["uncertainty"]``, ||F|| sqrt(2 spread), eV/Angstrom; dart has none) and the label is
"frame force RMSE (per component, eV/Angstrom) > 1.5 x the median of the in-domain frames". Reported
per part: ROC AUC of the score for that label over the in-domain frames plus that part's frames
(sklearn ``roc_auc_score``) and over the whole labelled pool; AUC of the score for telling the part's
frames from in-domain ones (no labels needed: the Au copies); the share of the part's frames above
the 95th percentile of the in-domain scores; calibration RMS uncertainty / RMS |dF| over atoms and
the median over frames of that ratio per frame; coverage of +-2 sigma per force component (sigma from
``forces_variance``; dml: uncertainty / sqrt(3)); the per-atom ``extrapolating`` flag rate (atoms and
frames with any). Cost: ms per ``predict`` with and without the uncertainty on one structure per
data set (Au19, ring6, Na55), median of 5 after one warm-up call.

Writes ``benchmarks/results/uncertainty_ood.{json,md,png}`` (``--tag`` appends ``-TAG``) after every
model; data sets and kinds already in that JSON and not run this time are kept, so ``--data au`` and
``--data rings na`` can run one after the other.

    python benchmarks/uncertainty_ood.py [--data au rings na] [--kinds gap dml sann dart] [--shared DIR]
        [--workdir DIR] [--copies 20] [--sann-epochs 3] [--dart-epochs 60] [--tag TAG]

``au`` needs ../shared (``--shared``); without it the script says so and skips it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score, roc_curve

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gap import read_gz_extxyz  # noqa: E402

PARTS = ("in-sample", "in-domain", "held-out size", "squeezed", "stretched", "hot")
DISTORTIONS = {"squeezed": (0.85, 0.9), "stretched": (1.1, 1.15), "hot": 0.12}
LABEL_FACTOR = 1.5
KINDS_WITH_VARIANCE = ("gap", "sann")  # predict(atoms, variance=True); dml always returns its uncertainty


def au_split(shared: Path, per_size: int = 500) -> dict[str, list]:
    """The DFT Au split: training frames exactly as bench_gap.au_frames(shared, 10..15, 500, 0)
    (``per_size`` < 500: a smaller draw, the stated proxy on a busy machine), 50 in-domain frames
    per size from the rest, held out Au16-19 as au_frames(shared, 16..19, 100, 1)."""
    parts: dict[str, list] = {"train": [], "in-domain": [], "held-out size": []}
    rng_train, rng_test, rng_pool = (np.random.default_rng(s) for s in (0, 1, 2))
    for n in range(10, 20):
        frames = read_gz_extxyz(shared / "data" / "au-clusters-dft" / f"au{n}.extxyz.gz")
        for a in frames:
            a.info["system"] = f"Au{n}"
        if n < 16:
            idx = np.sort(rng_train.choice(len(frames), size=min(per_size, len(frames)), replace=False))
            rest = np.setdiff1d(np.arange(len(frames)), idx)
            parts["train"] += [frames[i] for i in idx]
            parts["in-domain"] += [frames[i] for i in np.sort(rng_pool.choice(rest, size=50, replace=False))]
        else:
            idx = np.sort(rng_test.choice(len(frames), size=min(100, len(frames)), replace=False))
            parts["held-out size"] += [frames[i] for i in idx]
    return parts


def shipped_split(name: str, held_out: str) -> dict[str, list]:
    """A shipped data set: ``held_out`` system held out (every frame), 20 % of each other system at
    random (seed 0) as in-domain frames, the rest for training."""
    from clusterforce.data import datasets

    frames = datasets.load(name)
    rng = np.random.default_rng(0)
    parts: dict[str, list] = {"train": [], "in-domain": [], "held-out size": []}
    for system in sorted({a.info["system"] for a in frames}):
        group = [a for a in frames if a.info["system"] == system]
        if system == held_out:
            parts["held-out size"] = group
            continue
        pool = set(rng.choice(len(group), size=len(group) // 5, replace=False).tolist())
        parts["in-domain"] += [a for i, a in enumerate(group) if i in pool]
        parts["train"] += [a for i, a in enumerate(group) if i not in pool]
    return parts


def distort(base: list, part: str, count: int, seed: int) -> list:
    """``count`` copies of frames drawn from ``base`` (no reference attached): scaled about the
    centroid (squeezed, stretched) or rattled (hot), see DISTORTIONS."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(base), size=count, replace=False):
        atoms = base[i].copy()
        atoms.calc = None
        centre = atoms.positions.mean(axis=0)
        if part == "hot":
            atoms.positions = atoms.positions + rng.normal(0.0, DISTORTIONS["hot"], atoms.positions.shape)
        else:
            atoms.positions = centre + rng.uniform(*DISTORTIONS[part]) * (atoms.positions - centre)
        atoms.info["part"] = part
        out.append(atoms)
    return out


def labelled(frames: list, cache: Path) -> list:
    """The frames with GFN1-xTB energies and forces (the shipped data sets' reference), cached;
    a frame whose SCF fails on every rung is left out (and said so)."""
    if cache.exists():
        return read(cache, ":")
    from clusterforce.references import resolve
    from clusterforce.references.scf import ScfFailure

    out = []
    for atoms in frames:
        atoms.calc = resolve("gfn1-xtb", atoms)
        try:
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        except ScfFailure as error:
            print(f"uncertainty_ood: left out a {atoms.info['part']} copy: {error}", flush=True)
            continue
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write(cache, out)
    return out


def fit(kind: str, train: list, args) -> tuple[object, float]:
    """A model of ``kind`` on ``train`` with this benchmark's (cheap, stated) settings; fit seconds."""
    if kind == "gap":
        from clusterforce.kinds.gap.model import GAPModel

        model = GAPModel(progress=False)
    elif kind == "dml":
        from clusterforce.kinds.dml.model import DMLModel

        model = DMLModel(n_references_norm=1000, n_references_direction=500, progress=False)
    elif kind == "sann":
        from clusterforce.kinds.sann import SANNModel

        model = SANNModel(epochs=args.sann_epochs, progress=False)
    else:
        from clusterforce.kinds.dart.model import DARTModel

        model = DARTModel(max_epochs=args.dart_epochs, progress=False)
    start = time.perf_counter()
    model.fit(train)
    return model, time.perf_counter() - start


def ask(model, kind: str, atoms, uncertainty: bool = True) -> dict:
    return model.predict(atoms, properties=["uncertainty"] if uncertainty and kind in KINDS_WITH_VARIANCE else None)


def frame_record(model, kind: str, atoms) -> dict:
    """Errors, uncertainties and flags of one frame; ``error`` entries are None without a reference."""
    out = ask(model, kind, atoms)
    has_ref = atoms.calc is not None
    rec = {"atoms": len(atoms), "extrapolating": np.asarray(out["extrapolating"], bool)}
    if "domain_score" in out:
        rec["domain"], rec["outside"] = float(out["domain_score"]), bool(out["outside_domain"])
        rec["parts"] = {k: float(v) for k, v in out["domain_parts"].items()}
    if "uncertainty" in out:
        rec["unc"] = np.asarray(out["uncertainty"])
        rec["sigma"] = np.sqrt(out["forces_variance"]) if "forces_variance" in out else np.repeat(rec["unc"][:, None] / np.sqrt(3), 3, 1)
    if has_ref:
        if kind == "dart":
            rec["energy_error"] = (out["energy"] - atoms.get_potential_energy()) / len(atoms)
        else:
            rec["dF"] = out["forces"] - atoms.get_forces()
    return rec


def part_summary(recs: list, indomain: list, threshold: float | None) -> dict:
    """The numbers of one pool part (see the module docstring); ``indomain`` the in-domain records."""
    s: dict = {
        "frames": len(recs),
        "extrapolating_atoms": float(np.mean(np.concatenate([r["extrapolating"] for r in recs]))),
        "extrapolating_frames": float(np.mean([r["extrapolating"].any() for r in recs])),
    }
    if "energy_error" in recs[0]:
        s["energy_rmse_meV_per_atom"] = 1000 * float(np.sqrt(np.mean([r["energy_error"] ** 2 for r in recs])))
    labelled_ = "dF" in recs[0]
    if labelled_:
        frame_rmse = np.array([np.sqrt(np.mean(r["dF"] ** 2)) for r in recs])
        s["force_rmse"] = float(np.sqrt(np.mean(np.concatenate([r["dF"].ravel() for r in recs]) ** 2)))
        s["median_frame_force_rmse"] = float(np.median(frame_rmse))
    if "domain" in recs[0]:
        s.update(domain_metrics(recs, indomain, threshold if labelled_ else None))
    if "unc" not in recs[0]:
        return s
    score = np.array([r["unc"].max() for r in recs])
    in_score = np.array([r["unc"].max() for r in indomain])
    s["median_score"] = float(np.median(score))
    s["above_indomain_p95"] = float(np.mean(score > np.percentile(in_score, 95)))
    if recs is not indomain:
        s["auc_vs_indomain"] = float(roc_auc_score(np.r_[np.zeros(len(in_score)), np.ones(len(score))], np.r_[in_score, score]))
    if labelled_:
        err = np.concatenate([np.linalg.norm(r["dF"], axis=1) for r in recs])
        unc = np.concatenate([r["unc"] for r in recs])
        s["rms_unc_over_rms_err_atoms"] = float(np.sqrt(np.mean(unc**2) / np.mean(err**2)))
        s["median_frame_unc_over_err"] = float(
            np.median([np.sqrt(np.mean(r["unc"] ** 2) / np.mean(np.sum(r["dF"] ** 2, axis=1))) for r in recs])
        )
        s["coverage_2sigma"] = float(np.mean(np.concatenate([(np.abs(r["dF"]) <= 2 * r["sigma"]).ravel() for r in recs])))
        s["spearman_score_vs_frame_rmse"] = float(spearmanr(score, frame_rmse).statistic)
        s["large_error_frames"] = int((frame_rmse > threshold).sum())
        ref = indomain if recs is not indomain else []
        y = np.r_[[np.sqrt(np.mean(r["dF"] ** 2)) > threshold for r in ref + recs]]
        x = np.r_[[r["unc"].max() for r in ref + recs]]
        s["auc_large_error"] = float(roc_auc_score(y, x)) if 0 < y.sum() < len(y) else None
    return s


def domain_metrics(recs: list, indomain: list, threshold: float | None) -> dict:
    """The per-frame out-of-domain score of one part: share of frames flagged outside, its median,
    AUC against in-domain frames and (labelled parts) AUC for the large-error label, mean parts."""
    score = np.array([r["domain"] for r in recs])
    in_score = np.array([r["domain"] for r in indomain])
    s = {
        "domain_outside": float(np.mean([r["outside"] for r in recs])),
        "domain_median": float(np.median(score)),
        "domain_parts_median": {k: float(np.nanmedian([r["parts"][k] for r in recs])) for k in recs[0]["parts"]},
    }
    if recs is not indomain:
        s["domain_auc_vs_indomain"] = float(roc_auc_score(np.r_[np.zeros(len(in_score)), np.ones(len(score))], np.r_[in_score, score]))
    if threshold is not None:
        ref = indomain if recs is not indomain else []
        y = np.r_[[np.sqrt(np.mean(r["dF"] ** 2)) > threshold for r in ref + recs]]
        x = np.r_[[r["domain"] for r in ref + recs]]
        s["domain_auc_large_error"] = float(roc_auc_score(y, x)) if 0 < y.sum() < len(y) else None
    return s


def evaluate(kind: str, model, pool: dict[str, list]) -> tuple[dict, dict]:
    """Per-part summaries and the ROC inputs (score, label over the labelled pool without in-sample)."""
    recs = {part: [frame_record(model, kind, a) for a in frames] for part, frames in pool.items()}
    threshold = None
    if "dF" in recs["in-domain"][0]:
        threshold = LABEL_FACTOR * float(np.median([np.sqrt(np.mean(r["dF"] ** 2)) for r in recs["in-domain"]]))
    summary = {part: part_summary(r, recs["in-domain"], threshold) for part, r in recs.items()}
    roc = {}
    pooled = [r for part, rs in recs.items() if part != "in-sample" for r in rs if "dF" in r]
    if threshold is None or not pooled:
        return summary, roc
    y = np.array([np.sqrt(np.mean(r["dF"] ** 2)) > threshold for r in pooled])
    pool: dict = {"frames": len(pooled), "large_error_frames": int(y.sum()), "label_threshold_eV_per_A": threshold}
    if "domain" in pooled[0]:
        pool["domain_auc_large_error"] = float(roc_auc_score(y, [r["domain"] for r in pooled]))
        pool["domain_outside"] = float(np.mean([r["outside"] for r in pooled]))
    if "unc" in pooled[0]:
        x = np.array([r["unc"].max() for r in pooled])
        unc2 = np.concatenate([r["unc"] ** 2 for r in pooled])
        err2 = np.concatenate([(r["dF"] ** 2).sum(1) for r in pooled])
        pool["auc_large_error"] = float(roc_auc_score(y, x))
        pool["rms_unc_over_rms_err_atoms"] = float(np.sqrt(unc2.mean() / err2.mean()))
        pool["coverage_2sigma"] = float(np.mean(np.concatenate([(np.abs(r["dF"]) <= 2 * r["sigma"]).ravel() for r in pooled])))
        fpr, tpr, _ = roc_curve(y, x)
        roc = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": pool["auc_large_error"]}
    summary["pool"] = pool
    return summary, roc


def cost(model, kind: str, atoms) -> dict:
    """ms per predict call on ``atoms``, with and without the uncertainty (median of 5, one warm-up)."""
    out = {}
    for flag in (False, True):
        if flag is False and kind not in KINDS_WITH_VARIANCE:
            continue  # dml computes its uncertainty in every call; dart has none
        ask(model, kind, atoms, flag)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            ask(model, kind, atoms, flag)
            times.append(time.perf_counter() - start)
        out["with_uncertainty_ms" if flag and kind != "dart" else "plain_ms"] = 1000 * float(np.median(times))
    return out


def fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(results: dict) -> str:
    lines = [
        "| data | kind | part | frames | force RMSE (eV/Å) | large-error frames | AUC max unc (in-domain + part) "
        "| AUC max unc part vs in-domain "
        "| > in-domain p95 | AUC domain score (in-domain + part) | AUC domain score part vs in-domain | outside_domain share "
        "| RMS unc / RMS err (atoms) | median frame unc/err | ±2σ coverage | extrapolating atoms / frames |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for data, kinds in results.items():
        for kind, r in kinds.items():
            for part in PARTS:
                s = r["parts"].get(part)
                if s is None:
                    continue
                lines.append(
                    f"| {data} | {kind} | {part} | {s['frames']} | {fmt(s.get('force_rmse'), '.3f')} | {s.get('large_error_frames', '-')} "
                    f"| {fmt(s.get('auc_large_error'))} | {fmt(s.get('auc_vs_indomain'))} | {fmt(s.get('above_indomain_p95'))} "
                    f"| {fmt(s.get('domain_auc_large_error'))} | {fmt(s.get('domain_auc_vs_indomain'))} | {fmt(s.get('domain_outside'))} "
                    f"| {fmt(s.get('rms_unc_over_rms_err_atoms'))} | {fmt(s.get('median_frame_unc_over_err'))} "
                    f"| {fmt(s.get('coverage_2sigma'))} | {s['extrapolating_atoms']:.3f} / {s['extrapolating_frames']:.2f} |"
                )
            p = r["parts"].get("pool")
            if p:
                lines.append(
                    f"| {data} | {kind} | **pool** (all labelled but in-sample) | {p['frames']} | | {p['large_error_frames']} "
                    f"| **{fmt(p.get('auc_large_error'))}** | | | **{fmt(p.get('domain_auc_large_error'))}** | "
                    f"| {fmt(p.get('domain_outside'))} "
                    f"| {fmt(p.get('rms_unc_over_rms_err_atoms'))} | | {fmt(p.get('coverage_2sigma'))} | |"
                )
    lines += ["", "| data | kind | fit (s) | structure | predict (ms) | with uncertainty (ms) |", "|---|---|---:|---|---:|---:|"]
    for data, kinds in results.items():
        for kind, r in kinds.items():
            c = r["cost"]
            plain, with_unc = fmt(c.get("plain_ms"), ".1f"), fmt(c.get("with_uncertainty_ms"), ".1f")
            lines.append(f"| {data} | {kind} | {r['fit_s']:.0f} | {c['structure']} | {plain} | {with_unc} |")
    return "\n".join(lines)


def plot(rocs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rocs), figsize=(4 * len(rocs), 3.6), squeeze=False)
    for ax, (data, kinds) in zip(axes[0], rocs.items()):
        for kind, roc in kinds.items():
            ax.plot(roc["fpr"], roc["tpr"], label=f"{kind} (AUC {roc['auc']:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(title=f"{data}: frame force RMSE > {LABEL_FACTOR}x in-domain median", xlabel="false positives", ylabel="true positives")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save(path: Path, data: str, kind: str, settings: dict, result: dict, roc: dict) -> None:
    """Add one kind's result to the JSON, markdown and PNG at ``path``; what is there already stays
    (data sets and kinds run in other invocations: run them one at a time on a busy machine)."""
    record = json.loads(path.read_text()) if path.exists() else {"settings": {}, "results": {}, "roc": {}}
    record["settings"][data] = settings
    record["results"].setdefault(data, {})[kind] = result
    if roc:
        record["roc"].setdefault(data, {})[kind] = roc
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    path.with_suffix(".md").write_text("# Uncertainty as an out-of-domain detector\n\n" + table(record["results"]) + "\n")
    if record["roc"]:
        plot(record["roc"], path.with_suffix(".png"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["au", "rings", "na"], choices=["au", "rings", "na"])
    parser.add_argument("--kinds", nargs="+", default=["gap", "dml", "sann", "dart"], choices=["gap", "dml", "sann", "dart"])
    parser.add_argument("--au-kinds", nargs="+", default=["gap"], help="kinds for the Au DFT data (default: gap only, issue 29's target)")
    parser.add_argument("--au-train-per-size", type=int, default=500, help="Au training frames per size (fewer: a faster proxy)")
    parser.add_argument("--shared", default=str(ROOT / ".." / "shared"))
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "uncertainty_ood"), help="cache of the xTB-labelled copies")
    parser.add_argument("--copies", type=int, default=20, help="distorted copies per part")
    parser.add_argument("--in-sample", type=int, default=60, help="training frames evaluated as the in-sample twin")
    parser.add_argument("--sann-epochs", type=int, default=3)
    parser.add_argument("--dart-epochs", type=int, default=60)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    suffix = f"-{args.tag}" if args.tag else ""
    for data in args.data:
        if data == "au":
            if not (Path(args.shared) / "data" / "au-clusters-dft").is_dir():
                print(f"uncertainty_ood: {args.shared}/data/au-clusters-dft is missing; skipping au")
                continue
            split, kinds, timing = au_split(Path(args.shared), args.au_train_per_size), args.au_kinds, lambda p: p["held-out size"][-1]
        else:
            split = shipped_split("rings", "ring6") if data == "rings" else shipped_split("na", "Na55")
            kinds, timing = args.kinds, lambda p: p["held-out size"][0]
        rng = np.random.default_rng(3)
        pool = {"in-sample": [split["train"][i] for i in np.sort(rng.choice(len(split["train"]), args.in_sample, replace=False))]}
        pool["in-domain"], pool["held-out size"] = split["in-domain"], split["held-out size"]
        for seed, part in enumerate(DISTORTIONS):
            copies = distort(split["in-domain"], part, args.copies, seed)
            pool[part] = copies if data == "au" else labelled(copies, Path(args.workdir) / f"{data}-{part}-{args.copies}.extxyz")
        path = RESULTS / f"uncertainty_ood{suffix}.json"
        settings = {k: v for k, v in vars(args).items() if k not in ("data", "shared", "workdir")}
        for kind in kinds:
            print(f"{data}: fitting {kind} on {len(split['train'])} frames", flush=True)
            model, seconds = fit(kind, split["train"], args)
            summary, roc = evaluate(kind, model, pool)
            structure = timing(split)
            result = {
                "fit_s": seconds,
                "train_frames": len(split["train"]),
                "parts": summary,
                "cost": {"structure": f"{structure.get_chemical_formula()} ({len(structure)} atoms)", **cost(model, kind, structure)},
            }
            print(table({data: {kind: result}}), flush=True)
            save(path, data, kind, settings, result, roc)
    print(table(json.loads(path.read_text())["results"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
