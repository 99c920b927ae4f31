"""Why do trained ViTs lose to pixel statistics on the synthetic screen?

Each *probe* is one way of turning the synthetic RxRx3-core screen's images into well vectors;
this script embeds the screen with each, scores CORUM recall at (0.05, 0.95) with the standard
map (PCA-centerscale on controls), and writes one CSV row per probe. It separates the
suspects one at a time, without training anything new unless a checkpoint is given:

* tile size:      pixel statistics of the whole 64 px site vs of 32 px tiles averaged;
* readout:        the same network read from its CLS token vs the mean of its patch tokens;
* architecture:   untrained ViT-S/16 (``random``) vs the untrained ``quick`` ViT;
* training:       any ``--checkpoint`` model.pt, read both ways.

Usage: python -m experiments.readout_diagnostics [--checkpoint NAME=PATH ...] [--out CSV]
All numbers are synthetic (``cellbench-sim`` screen), never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from cellbench import registry
from cellbench.data import load_dataset
from cellbench.encoders.baselines import PixelStatsEncoder
from cellbench.train.export import create_encoder
from experiments._common import OUT_DIR, corum_recall, write_rows


def probes(channels, checkpoints: dict[str, str], seed: int):
    """(name, factory) pairs; factories build encoders lazily."""

    def pixel_tiles():
        enc = PixelStatsEncoder(tuple(channels))
        enc.input_size = 32
        return enc

    yield "pixel-stats, whole 64 px site", lambda: registry.create("pixel-stats", channels=channels)
    yield "pixel-stats, 32 px tiles averaged", pixel_tiles
    for pooling in ("cls", "mean"):
        yield (
            f"untrained ViT-S/16 (random), {pooling}",
            lambda p=pooling: registry.create("random", channels=channels, seed=seed, pooling=p),
        )
        yield (
            f"untrained quick ViT, {pooling}",
            lambda p=pooling: create_encoder("cwa-msn", channels=tuple(channels), pooling=p),
        )
        for name, path in checkpoints.items():
            model = name.split(":")[0]
            yield (
                f"{name}, {pooling}",
                lambda m=model, c=path, p=pooling: create_encoder(m, c, pooling=p),
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        nargs="*",
        default=[],
        help="MODEL[:label]=PATH of a model.pt (e.g. infonce-cross:600=runs/.../model.pt)",
    )
    parser.add_argument("--out", default=str(OUT_DIR / "readout_diagnostics.csv"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default="quick", help="screen size (tiny: a smoke run)")
    args = parser.parse_args(argv)
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)

    torch.manual_seed(args.seed)
    dataset = load_dataset("synthetic-rxrx3-core", size=args.size, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, factory) in enumerate(probes(dataset.channels, checkpoints, args.seed)):
            t0 = time.perf_counter()
            torch.manual_seed(args.seed)
            recall = corum_recall(
                factory(), dataset, Path(tmp) / str(i), seeds=1, sources=("CORUM",)
            )
            rows.append(
                {
                    "probe": name,
                    "corum_recall": round(recall, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "provenance": "measured, synthetic",
                    "dataset": f"synthetic-rxrx3-core-{args.size}",
                }
            )
            print(f"{recall:.3f}  {name}", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
