"""Why do trained ViTs lose to pixel statistics on the synthetic screen?

Each *probe* is one way of turning the synthetic RxRx3-core screen's images into well vectors;
this script embeds the screen with each, scores CORUM recall at (0.05, 0.95) with the standard
map (PCA-centerscale on controls), and writes one CSV row per probe. It separates the
suspects one at a time, without training anything new unless a checkpoint is given:

* tile size:      pixel statistics of the whole 64 px site vs of 32 px tiles averaged;
* readout:        the same network read from its CLS token vs the mean of its patch tokens;
* architecture:   untrained ViT-S/16 (``random``) vs the untrained ``quick`` ViT;
* training:       any ``--checkpoint`` model.pt, read both ways.

Usage: python experiments/readout_diagnostics.py [--checkpoint NAME=PATH ...] [--out CSV]
All numbers are synthetic (``cellbench-sim`` screen), never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _score(encoder, dataset, work: Path) -> float:
    import polars as pl

    from cellbench.embed import embed_dataset
    from cellbench.evaluate import evaluate_arrays

    path = embed_dataset(encoder, dataset, work, progress=False)
    table = pl.read_parquet(path)
    feats = table.select(pl.exclude("well_id")).to_numpy().astype("float32")
    out = evaluate_arrays(
        table["well_id"].to_list(),
        feats,
        dataset.wells,
        seeds=1,
        tasks=("gene_gene",),
        sources=("CORUM",),
    )
    return float(out["scores"]["gene_gene"]["CORUM"]["recall_0.05_0.95"])


def probes(channels, checkpoints: dict[str, str], seed: int):
    """(name, factory) pairs; factories build encoders lazily."""
    from cellbench import registry
    from cellbench.encoders.baselines import PixelStatsEncoder
    from cellbench.train.export import create_encoder

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        nargs="*",
        default=[],
        help="MODEL[:label]=PATH of a model.pt (e.g. infonce-cross:600=runs/.../model.pt)",
    )
    parser.add_argument("--out", default="leaderboard/readout_diagnostics.csv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)

    import torch

    from cellbench.data import load_dataset

    torch.manual_seed(args.seed)
    dataset = load_dataset("synthetic-rxrx3-core", size="quick", seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, factory) in enumerate(probes(dataset.channels, checkpoints, args.seed)):
            t0 = time.perf_counter()
            torch.manual_seed(args.seed)
            recall = _score(factory(), dataset, Path(tmp) / str(i))
            rows.append(
                {
                    "probe": name,
                    "corum_recall": round(recall, 4),
                    "seconds": round(time.perf_counter() - t0, 1),
                    "provenance": "measured, synthetic",
                    "dataset": "synthetic-rxrx3-core-quick",
                }
            )
            print(f"{recall:.3f}  {name}", flush=True)
    import polars as pl

    from cellbench.report.paper import write_csv_atomic

    write_csv_atomic(pl.DataFrame(rows, infer_schema_length=None), args.out)


if __name__ == "__main__":
    main()
