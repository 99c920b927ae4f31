"""Can MSN bootstrap at the quick scale? Its easiest possible task, with hyper-parameter variants.

Every quick-preset MSN run (CWA and single-well, every prototype count) settles at its uniform
fixed point - cross-entropy = log K, me-max = 0 - within a few hundred steps (leaderboard/README
measurement 5), and on a diagnostic screen where InfoNCE does learn (``experiments.signal_check``) MSN still
ends *below* the untrained network. This script gives MSN the easiest task there is: the target
view is another random crop of the *same site* as the anchor (as in the original MSN, where
both views come from one image). If MSN cannot leave the fixed point even there, the limit is
its self-distillation at this scale, not the cross-well pairing or the screen.

For each variant: the quick preset with ``cellbench train``'s own method defaults for it (the CPU
MSN learning rate) and the given overrides, seed 0, on synthetic-bray (``--size``, default
quick). ``--steps`` defaults to the preset's step count; a shorter run keeps the preset's
warm-up fraction. Reported: CE / log K and me-max at the end (1.000 and 0.000 is
the fixed point), the mean top target probability, and at initialisation how well two crops of
one site identify each other (top-1 among 64, chance 0.016) through the untrained network's
CLS token and through pixel statistics: what the self-distillation targets can carry at first.

Usage: python -m experiments.msn_bootstrap [--steps N] [--size quick] [--out leaderboard/experiments/msn_bootstrap.csv]
Numbers are synthetic (measured on cellbench's simulator), never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from cellbench.data import load_dataset
from cellbench.data.sampling import PairBatch, PairSampler
from cellbench.encoders.baselines import PixelStatsEncoder
from cellbench.metrics.health import pair_identification
from cellbench.train.backbone import tokens
from cellbench.train.loop import train
from cellbench.train.methods import build_method, method_defaults
from cellbench.train.presets import get_preset, resolve
from cellbench.train.views import random_crops, standardize
from experiments._common import OUT_DIR, write_rows

VARIANTS: dict[str, dict] = {
    "quick preset (K = 64)": {},
    "no me-max": {"me_max_weight": 0.0},
    "K = 256 (more prototypes than dimensions)": {"num_prototypes": 256},
    "no sharpening, no Sinkhorn": {"sharpen": 1.0, "sinkhorn_iters": 0},
    "no Sinkhorn": {"sinkhorn_iters": 0},
    "lr 1e-4": {"lr": 1e-4},
    "EMA from 0.99": {"ema_start": 0.99},
    # the quick preset has no focal views (n_focal_views=0); this was its former setting
    "4 masked focal views of 16 px (4 tokens each)": {
        "n_focal_views": 4,
        "focal_size": 16,
        "mask_focal": True,
    },
    "patch 4": {"patch_size": 4},
}

PRESET = "quick"
MODEL = "single-well-msn"


def preset_config(steps: int | None = None, overrides: dict | None = None):
    """The config ``cellbench train --model single-well-msn --preset quick`` resolves (its method
    defaults included), with ``overrides``; ``steps`` shortens or lengthens the run and scales
    the warm-up with it (the preset's warm-up fraction)."""
    base = resolve(PRESET, method_defaults(MODEL, PRESET))
    extra: dict = {}
    if steps is not None and steps != base.max_steps:
        warm = base.warmup_steps or 0
        extra = {
            "max_steps": steps,
            "warmup_steps": int(round(warm * steps / get_preset(PRESET).max_steps)),
        }
    return resolve(base, {**extra, **(overrides or {})})


class SameSitePairs:
    """A pair sampler whose every target is its anchor site (the two views then differ only by
    their random crops), as in the original MSN where both views come from one image. It is
    passed to the loop as its ``sampler``; everything else is the wrapped sampler's."""

    def __init__(self, sampler: PairSampler) -> None:
        self.sampler = sampler

    def batch_at(self, step: int) -> PairBatch:
        batch = self.sampler.batch_at(step)
        return dataclasses.replace(batch, target=batch.anchor)

    def __getattr__(self, name: str):
        return getattr(self.sampler, name)


def initial_crop_agreement(dataset, batches: int = 20) -> dict[str, float]:
    """Top-1 identification of two random 32 px crops of the same site, at initialisation."""
    config = preset_config()
    torch.manual_seed(0)
    method = build_method(MODEL, config, len(dataset.channels))
    pixel = PixelStatsEncoder(tuple(dataset.channels))
    sampler = PairSampler(dataset, cross_well=False, batch_size=64, seed=0)
    scores: dict[str, list[float]] = {"untrained CLS token": [], "pixel statistics": []}
    for step in range(batches):
        gen = torch.Generator().manual_seed(step)
        sites = standardize(torch.as_tensor(sampler.batch_at(step).anchor))
        a, b = (
            random_crops(sites, config.crop_size, gen),
            random_crops(sites, config.crop_size, gen),
        )
        with torch.no_grad():
            scores["untrained CLS token"].append(
                pair_identification(
                    tokens(method.backbone, a)[:, 0], tokens(method.backbone, b)[:, 0]
                )
            )
        scores["pixel statistics"].append(pair_identification(pixel.embed(a), pixel.embed(b)))
    return {k: sum(v) / len(v) for k, v in scores.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--size", default="quick", help="synthetic-bray size (tiny: a smoke run)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--root", default="/tmp/msn_bootstrap")
    parser.add_argument("--out", default=str(OUT_DIR / "msn_bootstrap.csv"))
    parser.add_argument("--batches", type=int, default=20, help="of the crop agreement at start")
    args = parser.parse_args(argv)

    dataset = load_dataset("synthetic-bray", size=args.size, seed=0)
    start = initial_crop_agreement(dataset, args.batches)
    print(
        "two crops of one site at initialisation:",
        json.dumps({k: round(v, 3) for k, v in start.items()}),
    )
    rows = []
    for name in args.variants:
        config = preset_config(args.steps, VARIANTS[name])
        config = dataclasses.replace(
            config, log_every=min(10, config.max_steps), health_every=config.max_steps
        )
        slug = "".join(c if c.isalnum() else "-" for c in name)
        sampler = SameSitePairs(
            PairSampler(dataset, cross_well=False, batch_size=config.batch_size, seed=0)
        )
        result = train(
            MODEL,
            dataset,
            config,
            seed=0,
            out_dir=f"{args.root}/{slug}",
            progress=False,
            sampler=sampler,
        )
        last = result.log["history"][-5:]  # the last 5 logged steps

        def mean(key: str, last=last) -> float:
            return sum(h[key] for h in last) / len(last)

        rows.append(
            {
                "variant": name,
                "overrides": json.dumps(VARIANTS[name]),
                "steps": config.max_steps,
                "lr": config.lr,
                "warmup_steps": config.warmup_steps,
                "ce_over_log_k": round(mean("ce_over_log_k"), 4),
                "me_max": round(mean("me_max"), 4),
                "target_max_prob": round(mean("target_max_prob"), 4),
                "init_crop_id_cls": round(start["untrained CLS token"], 4),
                "init_crop_id_pixel_stats": round(start["pixel statistics"], 4),
                "chance": round(1 / 64, 4),
                "pairs": "two crops of the same site",
                "provenance": "measured, synthetic",
            }
        )
        print(
            f"{name:42s} CE/logK {rows[-1]['ce_over_log_k']:.3f}  me-max {rows[-1]['me_max']:.3f}  "
            f"top target prob {rows[-1]['target_max_prob']:.3f}",
            flush=True,
        )
        write_rows(rows, args.out)


if __name__ == "__main__":
    main()
