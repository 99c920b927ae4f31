"""How much per-view signal do the training pairs carry, before any training?

A pair objective (CWA-MSN, InfoNCE, CropMAE-Cross) learns by telling which of B target views
belongs to each anchor view. This script asks whether that is possible at all on a screen, by
scoring the same task with fixed features on the pairs the trainer's ``PairSampler`` draws:

* ``oracle``        - the simulator's true per-well latent traits (a perfect encoder's ceiling:
                      wells of the same perturbation differ only by biology's well-to-well noise);
* ``nuisance-only`` - the true technical signature of each well (what a shortcut could use);
* ``pixel-stats``   - per-channel intensity quantiles and texture of one view, after the same
                      per-image standardisation and random crop the trainer applies, at several
                      view sizes (the best hand-crafted features cellbench has); and the same
                      statistics averaged over all sites of each well (does averaging cells
                      help, or is the noise a property of the well?).

Score: top-1 pair identification among B = 64 pairs (chance 1/64), mean over batches with a
95 % normal interval. Cross-well pairs (two wells of a perturbation) are what CWA-MSN trains on;
single-well pairs (two sites of one well) show how much a well's own signature gives away.

Usage: python -m experiments.pair_signal [--screens synthetic-bray:quick rxrx3-core@DIR ...] [--out CSV]
Numbers on synthetic screens are synthetic, never comparable with the paper's. Run on real
images (NAME@DIR), the pixel-statistics rows are the simulator's calibration target: how much a
view of a real well tells about its replicate, with no model involved.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from cellbench import registry
from cellbench.data import load_dataset
from cellbench.data.sampling import PairSampler
from cellbench.encoders.baselines import PixelStatsEncoder
from cellbench.metrics.health import pair_identification
from cellbench.train.views import random_crops, standardize
from experiments._common import OUT_DIR, mean_interval, write_rows

BATCH = 64


def oracle_rows(dataset, name: str):
    """(n_wells, d) ground-truth vectors in the dataset's well order."""
    ids, feats = registry.create(name).embed_wells(dataset)
    pos = {w: i for i, w in enumerate(ids)}
    return np.asarray(feats)[[pos[w] for w in dataset.wells["well_id"].to_list()]]


def pixel_well_means(dataset, pixel):
    """Pixel statistics of every standardised whole site, averaged per well: (n_wells, d)."""
    images = dataset.load_all()
    feats = np.concatenate(
        [
            pixel.embed(standardize(torch.as_tensor(images[i : i + 512]))).numpy()
            for i in range(0, len(images), 512)
        ]
    )
    site_well = dataset.sites["well_index"].to_numpy()
    n = dataset.wells.height
    sums = np.zeros((n, feats.shape[1]))
    np.add.at(sums, site_well, feats)
    return sums / np.maximum(np.bincount(site_well, minlength=n), 1)[:, None]


def score_screen(
    dataset, screen: str, sizes: list[int], batches: int, batch_size: int = BATCH
) -> list[dict]:
    """Rows of pair-identification accuracy (among ``batch_size`` pairs the trainer's sampler
    draws) of ground-truth and pixel-statistics features of one screen."""

    rows = []
    side = int(dataset.load_all().shape[-1])
    pixel = PixelStatsEncoder(tuple(dataset.channels))
    truth = {}
    if getattr(dataset, "ground_truth", None) is not None:  # synthetic screens only
        truth = {name: oracle_rows(dataset, name) for name in ("oracle", "nuisance-only")}
    truth["pixel-stats, well mean of all sites"] = pixel_well_means(dataset, pixel)
    multi_site = int(dataset.sites.group_by("well_id").len()["len"].max()) > 1
    for cross in (True, False) if multi_site else (True,):  # single-well needs 2 sites a well
        sampler = PairSampler(dataset, cross_well=cross, batch_size=batch_size, seed=0)
        pairing = "cross-well" if cross else "single-well"
        results: dict[tuple[str, int | None], list[float]] = {}
        for step in range(batches):
            _, anchor_well, target_well, _, _ = sampler.indices_at(step)
            for name, feats in truth.items():
                if cross:  # single-well pairs share the well: its ground truth is identical
                    results.setdefault((name, None), []).append(
                        pair_identification(feats[anchor_well], feats[target_well])
                    )
            batch = sampler.batch_at(step)
            anchor, target = (
                standardize(torch.as_tensor(batch.anchor)),
                standardize(torch.as_tensor(batch.target)),
            )
            gen = torch.Generator().manual_seed(step)
            for size in sizes:
                if size > side:
                    continue
                fa = pixel.embed(random_crops(anchor, size, gen))
                ft = pixel.embed(random_crops(target, size, gen))
                results.setdefault(("pixel-stats", size), []).append(pair_identification(fa, ft))
        for (features, size), values in results.items():
            mean, half = mean_interval(values, kind="normal")
            rows.append(
                {
                    "screen": screen,
                    "pairing": pairing,
                    "features": features,
                    "view_px": str(size) if size is not None else "well",
                    "site_px": side,
                    "accuracy": round(mean, 4),
                    "ci_low": round(mean - half, 4),
                    "ci_high": round(mean + half, 4),
                    "chance": round(1 / batch_size, 4),
                    "batches": len(values),
                    "provenance": "measured, synthetic"
                    if getattr(dataset, "synthetic", False)
                    else "measured, real",
                }
            )
            print(
                f"{screen:28s} {pairing:11s} {features:13s} {str(size or 'well'):>5s}  {mean:.3f}",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--screens",
        nargs="+",
        default=["synthetic-bray:quick", "synthetic-rxrx3-core:quick"],
        help="NAME:SIZE of synthetic screens (generated if missing), or NAME@DIR "
        "of real data (e.g. rxrx3-core@/data/rxrx3_core, bray@/data/bray): "
        "the same numbers on real images calibrate the simulator without "
        "reference to any model",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=BATCH, help="pairs per batch")
    parser.add_argument("--out", default=str(OUT_DIR / "pair_signal.csv"))
    args = parser.parse_args(argv)

    rows = []
    for item in args.screens:
        if "@" in item:
            name, root = item.split("@", 1)
            dataset, label = load_dataset(name, data_dir=root), name
        else:
            name, size = item.split(":")
            dataset, label = load_dataset(name, size=size, seed=0), f"{name}-{size}"
        rows += score_screen(dataset, label, args.sizes, args.batches, args.batch_size)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
