"""Embedding pipeline bars: throughput, and memory that grows with wells, not sites.

throughput: ``embed_dataset`` (read + decode + channel map + tile + standardise + forward + site/well
    aggregation + parquet) must reach >= 80 % of the bare forward pass of the same model at the
    same batch size on the same machine, measured side by side in one process: tiles/s of both.
memory: embedding 10x more sites of the same wells must raise the peak memory (max RSS of a fresh
    subprocess) by < 20 %. The images are drawn on the fly (nothing cached), so the peak is
    the pipeline's own: model, batches, per-well sums and the output.

Model: the untrained ``quick``-preset CWA-MSN encoder (the architecture `cellbench run`
embeds with; cheap, so the worst case for the pipeline's share), then a ViT-S/16 (``random``,
the paper's backbone) on 1/8 of the wells; data: the first ``--wells`` wells of the synthetic
RxRx3-core screen. Both are
timed alternately (``--repeats``), best of each; the pipeline runs with its default decoding
worker. Fixed costs (worker start, shard and parquet writes) weigh more on small runs.

    python benchmarks/bench_embed.py [--size quick] [--wells 2048] [--memory-wells 256] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


class SubsetDataset:
    """The first ``n_wells`` wells of a dataset, each site listed ``repeat`` times."""

    def __init__(self, base, n_wells: int, repeat: int = 1) -> None:
        import numpy as np
        import polars as pl

        self.base = base
        self.name = f"{getattr(base, 'name', 'data')}-first{n_wells}-x{repeat}"
        self.channels = base.channels
        self.wells = base.wells.head(n_wells)
        keep = set(self.wells["well_id"].to_list())
        sites = base.sites.with_row_index("_base").filter(pl.col("well_id").is_in(list(keep)))
        copies = [
            sites.with_columns(
                pl.col("site_id") + f"_r{r}", (pl.col("site") + r * 1000).alias("site")
            )
            for r in range(repeat)
        ]
        self.sites = pl.concat(copies)
        self._base_rows = np.asarray(self.sites["_base"].to_list(), dtype=np.int64)

    def read_sites(self, indices):
        import numpy as np

        return self.base.read_sites(self._base_rows[np.asarray(indices, dtype=np.int64)])


class StreamDataset:
    """Images drawn on the fly per site (nothing held in memory): the pipeline's own memory
    is then what the peak RSS shows. ``sites_per_well`` sites for each of ``n_wells`` wells."""

    channels = ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")

    def __init__(self, n_wells: int, sites_per_well: int, size: int = 32) -> None:
        import polars as pl

        self.name = f"stream-{n_wells}x{sites_per_well}-{size}"
        self.size = size
        ids = [f"b{w % 4}_p{w % 8}_W{w:05d}" for w in range(n_wells)]
        self.wells = pl.DataFrame({"well_id": ids})
        self.sites = pl.DataFrame(
            {
                "site_id": [f"{w}_s{s}" for s in range(sites_per_well) for w in ids],
                "well_id": [w for _ in range(sites_per_well) for w in ids],
                "site": [s for s in range(sites_per_well) for _ in ids],
            }
        )

    def read_sites(self, indices):
        import numpy as np

        out = np.empty((len(indices), len(self.channels), self.size, self.size), np.uint8)
        for k, i in enumerate(indices):
            out[k] = np.random.default_rng(int(i)).integers(0, 256, out.shape[1:], dtype=np.uint8)
        return out


def _setup(args):
    import torch

    from cellbench.data import load_dataset
    from cellbench.embed import create_for_dataset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    base = load_dataset("synthetic", size=args.size, seed=0)
    encoder = create_for_dataset(args.model, base)
    return base, encoder


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_memory(args) -> None:
    """One embedding run in this (fresh) process; print its peak RSS."""
    import torch

    from cellbench.embed import create_for_dataset, embed_dataset

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = StreamDataset(args.wells, args.repeat, size=32)
    encoder = create_for_dataset(args.model, data)
    before = _peak_mb()
    with tempfile.TemporaryDirectory() as out:
        embed_dataset(encoder, data, out, batch_size=args.batch_size, progress=False)
    print(
        json.dumps(
            {
                "repeat": args.repeat,
                "sites": data.sites.height,
                "peak_rss_mb": _peak_mb(),
                "rss_before_mb": before,
            }
        )
    )


def throughput(args) -> dict:
    import numpy as np
    import torch

    from cellbench.embed import apply_plan, channel_plan, embed_dataset, tile

    base, encoder = _setup(args)
    data = SubsetDataset(base, args.wells, 1)
    plan = channel_plan(data.channels, encoder.channels)
    # bare forward: the same tiles, already in memory and standardised, same batch size
    images = apply_plan(np.asarray(data.read_sites(np.arange(data.sites.height))), plan)
    tiles, _ = tile(torch.from_numpy(images), encoder.input_size)
    tiles = encoder.preprocess(tiles)
    encoder.embed(tiles[: args.batch_size])  # warm-up
    results = {}
    for _rep in range(args.repeats):
        t0 = time.perf_counter()
        for s in range(0, tiles.shape[0], args.batch_size):
            encoder.embed(tiles[s : s + args.batch_size])
        bare = tiles.shape[0] / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            embed_dataset(encoder, data, out, batch_size=args.batch_size, progress=False)
            pipe = tiles.shape[0] / (time.perf_counter() - t0)
        results.setdefault("bare", []).append(bare)
        results.setdefault("pipeline", []).append(pipe)
    bare, pipe = max(results["bare"]), max(results["pipeline"])
    ratio = pipe / bare
    return {
        "bar": "embed throughput >= 80% of bare forward",
        "model": args.model,
        "tile_px": encoder.input_size,
        "batch_size": args.batch_size,
        "wells": args.wells,
        "tiles": int(tiles.shape[0]),
        "bare_tiles_per_s": round(bare, 1),
        "pipeline_tiles_per_s": round(pipe, 1),
        "ratio": round(ratio, 3),
        "result": "pass" if ratio >= 0.8 else "FAIL",
        "threads": torch.get_num_threads(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def memory(args) -> dict:
    runs = {}
    for repeat in (1, 10):
        cmd = [
            sys.executable,
            __file__,
            "--child-memory",
            "--repeat",
            str(repeat),
            "--size",
            args.size,
            "--wells",
            str(args.memory_wells),
            "--batch-size",
            str(args.batch_size),
            "--model",
            args.model,
        ]
        out = (
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        runs[repeat] = json.loads(out)
    growth = runs[10]["peak_rss_mb"] / runs[1]["peak_rss_mb"] - 1
    return {
        "bar": "peak memory with 10x sites of the same wells < +20%",
        "wells": args.memory_wells,
        "sites_1x": runs[1]["sites"],
        "sites_10x": runs[10]["sites"],
        "peak_rss_mb_1x": round(runs[1]["peak_rss_mb"], 1),
        "peak_rss_mb_10x": round(runs[10]["peak_rss_mb"], 1),
        "rss_before_embedding_mb_1x": round(runs[1]["rss_before_mb"], 1),
        "growth": round(growth, 3),
        "result": "pass" if growth < 0.2 else "FAIL",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="quick")
    ap.add_argument("--wells", type=int, default=2048, help="throughput: wells embedded")
    ap.add_argument(
        "--memory-wells", type=int, default=1000, help="memory: wells (x1 and x10 sites)"
    )
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", default="cwa-msn")
    ap.add_argument("--repeats", type=int, default=2, help="throughput repetitions (best of)")
    ap.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--child-memory", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=["throughput", "memory"], default=None)
    ap.add_argument(
        "--no-vit-s", action="store_true", help="skip the throughput run with a ViT-S/16 (random)"
    )
    args = ap.parse_args()
    if args.child_memory:
        child_memory(args)
        return
    if args.only in (None, "throughput"):
        print(json.dumps(throughput(args)), flush=True)
        if args.model == "cwa-msn" and not args.no_vit_s:  # also the paper's backbone size
            vit_s = argparse.Namespace(
                **{**vars(args), "model": "random", "wells": max(64, args.wells // 8)}
            )
            print(json.dumps(throughput(vit_s)), flush=True)
    if args.only in (None, "memory"):
        print(json.dumps(memory(args)), flush=True)


if __name__ == "__main__":
    main()
