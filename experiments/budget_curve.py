"""CORUM recall and representation health against training budget on 2 CPU cores.

For each model (CWA-MSN, Single-Well-MSN, the InfoNCE cross-well positive control) and each
step budget, ``cellbench run`` trains the `quick` preset for that many steps, embeds the
synthetic RxRx3-core screen and scores it; ``--steps 0`` is the same network untrained. The
floors (untrained ViT-S/16 ``random``, ``pixel-stats``) and the ``oracle`` ceiling are scored
once. Every point lands in the results store; this script then writes

    leaderboard/experiments/budget_curve.csv   one row per (model, steps): mean, std, 95 %
                  interval, n seeds, train wall and CPU seconds, well-shortcut rate, effective rank
    leaderboard/experiments/budget_curve.png   CORUM recall vs train steps, with the floors and
                  ceiling

Usage: python -m experiments.budget_curve --steps 0 150 600 1200 --seeds 0 1 2
(results are reused, so it can be stopped and restarted).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import polars as pl

from cellbench.io import atomic_path, write_text_atomic
from cellbench.pipeline import DATA_SIZE, dataset_id, run_pipeline
from cellbench.registry import models_with_role
from cellbench.results import ResultsStore
from experiments._common import OUT_DIR, mean_interval

MODELS = ("cwa-msn", "single-well-msn", "infonce-cross")
# quick preset, one thread, no other load: 600 steps took 146-156 s and 2,400 steps 597-633 s
# (CWA-MSN); the x axis is steps because wall times of runs sharing the cores are not comparable
SECONDS_PER_STEP = 0.25


def references() -> tuple[str, ...]:
    """The reference rows beside the trained models: every card with role floor, ceiling or reference."""
    return models_with_role("floor", "ceiling", "reference")


def seed_stats(values: list[float]) -> dict:
    """Mean, standard deviation and 95 % t-interval over seeds (none with fewer than 3)."""
    n = len(values)
    mean, half = mean_interval(values, kind="t")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    if n <= 2:
        half = float("nan")
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def collect(preset: str, dataset: str) -> list[dict]:
    """One row per (model, steps) from the results store."""
    runs: dict[tuple[str, int | None], dict[str, list]] = {}
    for rec in (r.to_dict() for r in ResultsStore().iter_results(dataset=dataset)):
        model, ckpt = rec["model"], rec["checkpoint"]
        if model in MODELS:
            # "{preset}-steps{N}-seed{S}" (older results) or "{preset}-steps{N}-h{hash}-seed{S}"
            m = re.fullmatch(rf"{preset}-steps(\d+)(?:-h[0-9a-f]{{10}})?-seed(\d+)", ckpt)
            if not m:
                continue
            key = (model, int(m.group(1)))
        elif model in references():
            key = (model, None)
        else:
            continue
        bucket = runs.setdefault(
            key, {"corum": [], "shortcut": [], "rank": [], "cpu": [], "wall": []}
        )
        if rec["task"] == "gene_gene" and "CORUM" in rec["scores"]:
            bucket["corum"].append(rec["scores"]["CORUM"]["recall_0.05_0.95"])
            bucket["cpu"].append(rec["timings"].get("train_cpu", 0.0))
        if rec["task"] == "health":
            # the training's own wall time (kept in its log, so it survives a reused run)
            bucket["wall"].append(rec["scores"].get("elapsed_s") or 0.0)
            if rec["scores"].get("well_shortcut_rate") is not None:
                bucket["shortcut"].append(rec["scores"]["well_shortcut_rate"])
            if rec["scores"].get("effective_rank") is not None:
                bucket["rank"].append(rec["scores"]["effective_rank"])
    rows = []
    for (model, steps), b in sorted(runs.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1)):
        if not b["corum"]:
            continue
        s = seed_stats(b["corum"])
        rows.append(
            {
                "model": model,
                "steps": steps,
                "corum_mean": s["mean"],
                "corum_std": s["std"],
                "corum_ci_low": s["ci_low"],
                "corum_ci_high": s["ci_high"],
                "n_seeds": s["n"],
                "train_cpu_min_this_run": sum(b["cpu"]) / len(b["cpu"]) / 60,
                "train_min": sum(b["wall"]) / len(b["wall"]) / 60 if b["wall"] else 0.0,
                "well_shortcut_rate": sum(b["shortcut"]) / len(b["shortcut"])
                if b["shortcut"]
                else None,
                "effective_rank": sum(b["rank"]) / len(b["rank"]) if b["rank"] else None,
                "provenance": "measured, synthetic",
                "dataset": dataset,
            }
        )
    return rows


def plot(rows: list[dict], out: Path) -> None:

    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = {"cwa-msn": "#d62728", "single-well-msn": "#1f77b4", "infonce-cross": "#2ca02c"}
    for k, (model, color) in enumerate(colors.items()):
        pts = sorted(
            (r for r in rows if r["model"] == model and r["steps"]), key=lambda r: r["steps"]
        )
        if not pts:
            continue
        x = [r["steps"] + (k - 1) * 70 for r in pts]  # dodged so the error bars do not overlap
        y = [r["corum_mean"] for r in pts]
        err = [
            0 if math.isnan(r["corum_ci_high"]) else r["corum_ci_high"] - r["corum_mean"]
            for r in pts
        ]
        ax.errorbar(x, y, yerr=err, marker="o", color=color, capsize=3, label=model)
        for r, xi, yi in zip(pts, x, y, strict=True):
            ax.annotate(
                f"n={r['n_seeds']}",
                (xi, yi),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
    styles = {
        "random": ("untrained ViT-S/16 (random)", ":"),
        "pixel-stats": ("pixel statistics", "--"),
        "oracle": ("oracle (true phenotype)", "-"),
        "nuisance-only": ("nuisance only", "-."),
    }
    untrained_drawn = False
    for r in rows:
        if r["steps"] == 0 and not untrained_drawn:
            untrained_drawn = True
            ax.axhline(
                r["corum_mean"],
                color="black",
                ls=":",
                lw=1.2,
                label=f"same ViT untrained (step 0): {r['corum_mean']:.3f}",
            )
            if not math.isnan(r["corum_ci_low"]):
                ax.axhspan(
                    r["corum_ci_low"],
                    r["corum_ci_high"],
                    color="0.85",
                    zorder=0,
                    label="its 95 % interval over seeds",
                )
        if r["model"] in styles:
            label, ls = styles[r["model"]]
            ax.axhline(
                r["corum_mean"], color="gray", ls=ls, lw=1, label=f"{label}: {r['corum_mean']:.3f}"
            )
    ax.set_xlabel("training steps (batch 64 pairs)")
    top = ax.secondary_xaxis(
        "top",
        functions=(lambda st: st * SECONDS_PER_STEP / 60, lambda mi: mi * 60 / SECONDS_PER_STEP),
    )
    top.set_xlabel(
        f"minutes on one free CPU core (measured {SECONDS_PER_STEP} s per step)", fontsize=8
    )
    ax.set_ylabel("CORUM recall at (0.05, 0.95)")
    ax.set_title(
        "Budget curve on the synthetic RxRx3-core screen (measured, synthetic)\n"
        "mean and 95 % t-interval over seeds (≥ 3 seeds; none where fewer); step 0 = same network untrained",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="center right")
    ax.set_xlim(left=0)
    ax.margins(x=0.04)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        with atomic_path(out.with_suffix(f".{ext}"), suffix=f".{ext}") as tmp:
            fig.savefig(tmp, dpi=150, format=ext)
    plt.close(fig)
    frame = pl.DataFrame(rows)
    write_text_atomic(out.with_suffix(".csv"), frame.write_csv(float_precision=4))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 150, 600, 1200])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--eval-seeds", type=int, default=20)
    parser.add_argument("--out", default=str(OUT_DIR / "budget_curve"))
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument(
        "--skip-references", action="store_true", help="another process scores them"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    dataset = dataset_id("synthetic", DATA_SIZE[args.preset])
    if not args.plot_only:
        for name in () if args.skip_references else references():
            run_pipeline(name, preset=args.preset, eval_seeds=args.eval_seeds, progress=False)
        for seed in args.seeds:
            for steps in args.steps:
                # step 0 is the untrained network, identical for every model: score it once
                for model in args.models[:1] if steps == 0 else args.models:
                    run_pipeline(
                        model,
                        preset=args.preset,
                        seed=seed,
                        steps=steps,
                        eval_seeds=args.eval_seeds,
                        progress=False,
                    )
                    print(f"done {model} steps={steps} seed={seed}", flush=True)
    rows = collect(args.preset, dataset)
    plot(rows, Path(args.out))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
