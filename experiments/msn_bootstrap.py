"""Can MSN bootstrap at the quick scale? Its easiest possible task, with hyper-parameter variants.

Every quick-preset MSN run (CWA and single-well, every prototype count) settles at its uniform
fixed point - cross-entropy = log K, me-max = 0 - within a few hundred steps (leaderboard/README
measurement 5), and on a diagnostic screen where InfoNCE does learn (signal_check.py) MSN still
ends *below* the untrained network. This script gives MSN the easiest task there is: the target
view is another random crop of the *same site* as the anchor (as in the original MSN, where
both views come from one image). If MSN cannot leave the fixed point even there, the limit is
its self-distillation at this scale, not the cross-well pairing or the screen.

For each variant: the quick preset with the given overrides, ``--steps`` steps on
synthetic-bray quick, seed 0. Reported: CE / log K and me-max at the end (1.000 and 0.000 is
the fixed point), the mean top target probability, and at initialisation how well two crops of
one site identify each other (top-1 among 64, chance 0.016) through the untrained network's
CLS token and through pixel statistics: what the self-distillation targets can carry at first.

Usage: python experiments/msn_bootstrap.py [--steps 120] [--out leaderboard/msn_bootstrap.csv]
Numbers are synthetic (measured on cellbench's simulator), never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import json

VARIANTS: dict[str, dict] = {
    "quick preset (K = 64)": {},
    "no me-max": {"me_max_weight": 0.0},
    "K = 256 (more prototypes than dimensions)": {"num_prototypes": 256},
    "no sharpening, no Sinkhorn": {"sharpen": 1.0, "sinkhorn_iters": 0},
    "no Sinkhorn": {"sinkhorn_iters": 0},
    "lr 1e-4": {"lr": 1e-4},
    "EMA from 0.99": {"ema_start": 0.99},
    "no focal views": {"n_focal_views": 0},
    "patch 4 (16 tokens per focal view)": {"patch_size": 4},
}


def _same_site_pairs():
    """Make every PairSampler batch pair each anchor site with itself (different crops follow)."""
    import dataclasses

    from cellbench.data import sampling

    batch_at = sampling.PairSampler.batch_at

    def same_site(self, step):
        batch = batch_at(self, step)
        return dataclasses.replace(batch, target=batch.anchor)

    sampling.PairSampler.batch_at = same_site


def initial_crop_agreement(dataset, batches: int = 20) -> dict[str, float]:
    """Top-1 identification of two random 32 px crops of the same site, at initialisation."""
    import torch

    from cellbench.data.sampling import PairSampler
    from cellbench.encoders.baselines import PixelStatsEncoder
    from cellbench.metrics.health import pair_identification
    from cellbench.train.backbone import tokens
    from cellbench.train.methods import build_method, method_defaults
    from cellbench.train.presets import resolve
    from cellbench.train.views import random_crops, standardize

    config = resolve("quick", method_defaults("single-well-msn"))
    torch.manual_seed(0)
    method = build_method("single-well-msn", config, len(dataset.channels))
    pixel = PixelStatsEncoder(tuple(dataset.channels))
    sampler = PairSampler(dataset, cross_well=False, batch_size=64, seed=0)
    scores: dict[str, list[float]] = {"untrained CLS token": [], "pixel statistics": []}
    for step in range(batches):
        gen = torch.Generator().manual_seed(step)
        sites = standardize(torch.as_tensor(sampler.batch_at(step).anchor))
        a, b = random_crops(sites, config.crop_size, gen), random_crops(sites, config.crop_size, gen)
        with torch.no_grad():
            scores["untrained CLS token"].append(
                pair_identification(tokens(method.backbone, a)[:, 0], tokens(method.backbone, b)[:, 0]))
        scores["pixel statistics"].append(pair_identification(pixel.embed(a), pixel.embed(b)))
    return {k: sum(v) / len(v) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--root", default="/tmp/msn_bootstrap")
    parser.add_argument("--out", default="leaderboard/msn_bootstrap.csv")
    args = parser.parse_args()

    import polars as pl

    from cellbench.data import load_dataset
    from cellbench.report.paper import write_csv_atomic
    from cellbench.train.loop import train
    from cellbench.train.methods import method_defaults
    from cellbench.train.presets import resolve

    dataset = load_dataset("synthetic-bray", size="quick", seed=0)
    start = initial_crop_agreement(dataset)
    print("two crops of one site at initialisation:", json.dumps({k: round(v, 3) for k, v in start.items()}))
    _same_site_pairs()
    rows = []
    for name in args.variants:
        overrides = {**method_defaults("single-well-msn"), "max_steps": args.steps, "log_every": 10,
                     "health_every": args.steps, **VARIANTS[name]}
        config = resolve("quick", overrides)
        slug = "".join(c if c.isalnum() else "-" for c in name)
        result = train("single-well-msn", dataset, config, seed=0, out_dir=f"{args.root}/{slug}",
                       progress=False)
        last = result.log["history"][-5:]  # the last 50 steps

        def mean(key: str, last=last) -> float:
            return sum(h[key] for h in last) / len(last)

        rows.append({"variant": name, "overrides": json.dumps(VARIANTS[name]), "steps": args.steps,
                     "ce_over_log_k": round(mean("ce_over_log_k"), 4), "me_max": round(mean("me_max"), 4),
                     "target_max_prob": round(mean("target_max_prob"), 4),
                     "init_crop_id_cls": round(start["untrained CLS token"], 4),
                     "init_crop_id_pixel_stats": round(start["pixel statistics"], 4), "chance": round(1 / 64, 4),
                     "pairs": "two crops of the same site", "provenance": "measured, synthetic"})
        print(f"{name:42s} CE/logK {rows[-1]['ce_over_log_k']:.3f}  me-max {rows[-1]['me_max']:.3f}  "
              f"top target prob {rows[-1]['target_max_prob']:.3f}", flush=True)
        write_csv_atomic(pl.DataFrame(rows), args.out)


if __name__ == "__main__":
    main()
