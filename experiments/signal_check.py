"""Does the training pipeline learn biology when a view carries it? (a diagnostic)

On the default synthetic screen no trained model beats the untrained network, and
``experiments.nuisance_ablation`` located why: a 32 px view shows little of its well's biology. This
script asks the converse question of the *pipeline*: on a diagnostic copy of the screens with
every technical term removed (``ScreenConfig(technical_variation=False)``) and cells drawn at half the size (4x the cells per view; a view
then finds its cross-well partner about 0.085 of the time instead of 0.033), do the quick-preset
trainers beat the same network untrained, and does cross-well beat single-well?

The diagnostic screens are written under ``--root`` with their own simulator version string
(``<version>+diagnostic-clean-dense``), so they can never be mistaken for, or cached as, the
default screens, and their results never enter the results store or the leaderboard. They are
not a realism proposal: a screen without technical variation has nothing for cross-well pairing
to remove. Everything is trained, embedded and scored with the library's own functions.

Output: one CSV row per (model, steps, seed) with CORUM recall at (0.05, 0.95), plus the
pixel-statistics and oracle rows of the same diagnostic evaluation screen.

Usage: python -m experiments.signal_check [--seeds 0 1 2] [--steps 600] [--root /tmp/signal_check]
Numbers are synthetic, on a deliberately easier screen: never comparable with the leaderboard's.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from cellbench.data.synthetic.config import make_config
from cellbench.data.synthetic.generate import generate_from_config
from cellbench.data.synthetic.loader import open_synthetic
from cellbench.embed import create_for_dataset
from cellbench.train.api import train_model
from cellbench.train.export import create_encoder
from experiments._common import OUT_DIR, corum_recall, write_rows

MODELS = ("cwa-msn", "single-well-msn", "infonce-cross", "infonce-single")
TAG = "+diagnostic-clean-dense"


def diagnostic_screen(name: str, root: Path, size: str = "quick"):
    """The screen ``name`` at ``size`` with no technical variation and cells at half the size,
    generated once under ``root`` and opened through the real loaders."""
    cfg = make_config(name, size, seed=0)
    cfg = dataclasses.replace(
        cfg,
        cell_scale=cfg.cell_scale / 2,
        technical_variation=False,
        version=cfg.version + TAG,
    )
    return open_synthetic(generate_from_config(cfg, root / f"{name}-{size}{TAG}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--root", default="/tmp/signal_check")
    parser.add_argument("--out", default=str(OUT_DIR / "signal_check.csv"))
    parser.add_argument("--size", default="quick", help="screen size (tiny: a smoke run)")
    parser.add_argument("--preset", default="quick", help="training preset (tiny: a smoke run)")
    parser.add_argument("--eval-seeds", type=int, default=100)
    args = parser.parse_args(argv)

    root = Path(args.root)
    train_ds = diagnostic_screen("synthetic-bray", root, args.size)
    eval_ds = diagnostic_screen("synthetic-rxrx3-core", root, args.size)
    version = eval_ds.manifest["config"]["version"]  # the diagnostic screen's own version string
    rows = []

    def record(model: str, steps: int | None, seed: int | None, value: float) -> None:
        rows.append(
            {
                "screen": f"synthetic-rxrx3-core-{args.size}{TAG}",
                "simulator_version": version,
                "model": model,
                "steps": steps,
                "seed": seed,
                "corum": round(value, 4),
                "provenance": "measured, synthetic diagnostic screen",
            }
        )
        print(f"{model:16s} steps={steps!s:5s} seed={seed!s:4s} CORUM {value:.3f}", flush=True)
        write_rows(rows, args.out)

    for ref in ("pixel-stats", "oracle"):
        enc = create_for_dataset(ref, eval_ds)
        record(
            ref, None, None, corum_recall(enc, eval_ds, root / "emb" / ref, seeds=args.eval_seeds)
        )
    for seed in args.seeds:
        for steps in (0, args.steps):
            for model in args.models if steps else args.models[:1]:  # one untrained network
                run = root / "runs" / f"{model}-steps{steps}-seed{seed}"
                ckpt = train_model(
                    model,
                    train_ds,
                    preset=args.preset,
                    seed=seed,
                    out_dir=run,
                    resume=True,
                    overrides={"max_steps": steps, "warmup_steps": steps // 10},
                    progress=False,
                )
                enc = create_encoder(model, ckpt)  # infonce-single is trained, not registered
                label = model if steps else "untrained quick ViT"
                record(
                    label,
                    steps,
                    seed,
                    corum_recall(enc, eval_ds, run / "emb", seeds=args.eval_seeds),
                )


if __name__ == "__main__":
    main()
