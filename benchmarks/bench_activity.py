"""Phenotypic activity: cellbench's path beside copairs called directly, time and peak memory.

Data: a synthetic random well table (float32, ``--dim`` features) with ``--perturbations``
perturbations and ``--control-fraction`` negative-control wells; the rest of the rows are spread
evenly over the perturbations as replicates. Both paths compute the same numbers (the test suite
checks equality): copairs' recipe with one reference index per control well.

* ``cellbench``: :func:`cellbench.metrics.activity.activity_table` on the well table (the path
  ``cellbench evaluate --tasks activity`` runs, per perturbation type; one type here).
* ``copairs``: ``copairs.map.average_precision`` + ``mean_average_precision`` called directly.

Each runs in its own fresh subprocess; reported: wall time of the call, peak RSS of the process
(``resource.getrusage``, ``ru_maxrss``) and its growth over the RSS just before the call, and with
``--tracemalloc`` the peak of Python-tracked allocations (numpy reports to tracemalloc; slower).

copairs enumerates every (treated well, control well) pair, so time and memory grow with their
product. A size whose estimate (scaled from the largest size measured, by the number of pairs)
exceeds ``--max-minutes`` or ``--max-gb`` is not run; its estimate is printed instead.

    python benchmarks/bench_activity.py [--sizes 20000 222601] [--dim 384] [--null-size 10000]
        [--measure-up-to 20000]  # run the 20k size, estimate the release size
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def make_table(n: int, dim: int, n_perts: int, control_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_ctrl = int(round(n * control_fraction))
    n_trt = n - n_ctrl
    pert = np.array([f"P{i % n_perts:05d}" for i in range(n_trt)] + ["ctrl"] * n_ctrl)
    ctrl = np.arange(n) >= n_trt
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x, pert, ctrl


def pair_counts(n: int, n_perts: int, control_fraction: float) -> dict:
    n_ctrl = int(round(n * control_fraction))
    n_trt = n - n_ctrl
    reps = np.bincount(np.arange(n_trt) % n_perts)
    return {
        "positive_pairs": int((reps * (reps - 1) // 2).sum()),
        "negative_pairs": int(n_trt) * n_ctrl,
        "treated": int(n_trt),
        "controls": n_ctrl,
    }


def run_cellbench(x, pert, ctrl, null_size):
    import polars as pl

    from cellbench.metrics.activity import activity_table

    wells = pl.DataFrame(
        {
            "perturbation": pert,
            "perturbation_type": ["CRISPR"] * len(pert),
            "concentration": pl.Series([None] * len(pert), dtype=pl.Float64),
            "is_control": ctrl,
        }
    )
    table, scores = activity_table(x, wells, null_size=null_size)
    return table["mean_average_precision"].to_numpy(), scores["fraction_retrieved"]


def run_copairs(x, pert, ctrl, null_size):
    import pandas as pd
    from copairs.map import average_precision, mean_average_precision

    meta = pd.DataFrame({"p": pert, "ref": np.where(ctrl, np.arange(len(pert)), -1)})
    ap = average_precision(meta, x, ["p", "ref"], [], [], ["p", "ref"], progress_bar=False)
    m = mean_average_precision(
        ap[ap["ref"] == -1],
        ["p", "ref"],
        null_size=null_size,
        threshold=0.05,
        seed=0,
        progress_bar=False,
    ).sort_values("p")
    return m["mean_average_precision"].to_numpy(), float(m["below_corrected_p"].mean())


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> None:
    import resource

    x, pert, ctrl = make_table(args.n, args.dim, args.perturbations, args.control_fraction)
    runner = {"cellbench": run_cellbench, "copairs": run_copairs}[args.which]
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    before = _rss_mb()
    t0 = time.perf_counter()
    maps, fraction = runner(x, pert, ctrl, args.null_size)
    seconds = time.perf_counter() - t0
    out = {
        "which": args.which,
        "n": args.n,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mb": before,
        "fraction_retrieved": fraction,
        "mean_map": float(np.mean(maps)),
        "n_perturbations": int(len(maps)),
    }
    out["peak_growth_mb"] = out["peak_rss_mb"] - before
    if args.tracemalloc:
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20_000, 222_601])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--perturbations", type=int, default=1_000)
    p.add_argument("--control-fraction", type=float, default=0.1)
    p.add_argument("--null-size", type=int, default=10_000)
    p.add_argument("--max-minutes", type=float, default=5.0)
    p.add_argument("--max-gb", type=float, default=8.0)
    p.add_argument(
        "--measure-up-to",
        type=int,
        default=None,
        help="only estimate (never run) the sizes above this many wells",
    )
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--child", choices=["cellbench", "copairs"])
    p.add_argument("--n", type=int)
    args = p.parse_args()
    if args.child:
        args.which = args.child
        child(args)
        return
    measured: dict[str, dict] = {}
    for n in sorted(args.sizes):
        pairs = pair_counts(n, args.perturbations, args.control_fraction)
        print(
            f"\n== {n:,} wells x {args.dim} features: {pairs['treated']:,} treated, {pairs['controls']:,} controls, "
            f"{pairs['negative_pairs']:,} negative + {pairs['positive_pairs']:,} positive pairs"
        )
        for which in ("cellbench", "copairs"):
            if which in measured:
                ref = measured[which]
                scale = (pairs["negative_pairs"] + pairs["positive_pairs"]) / ref["pairs"]
                est_s, est_gb = ref["seconds"] * scale, ref["peak_growth_mb"] * scale / 1024
                too_big = args.measure_up_to is not None and n > args.measure_up_to
                if too_big or est_s > 60 * args.max_minutes or est_gb > args.max_gb:
                    print(
                        f"{which:>9}: not run; estimated {est_s / 60:.0f} min and {est_gb:.0f} GB "
                        f"(scaled by pairs, x{scale:.0f} from {ref['n']:,} wells)"
                    )
                    continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                which,
                "--n",
                str(n),
                "--dim",
                str(args.dim),
                "--perturbations",
                str(args.perturbations),
                "--control-fraction",
                str(args.control_fraction),
                "--null-size",
                str(args.null_size),
            ] + (["--tracemalloc"] if args.tracemalloc else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{which:>9}: failed ({proc.stderr.strip().splitlines()[-1:]})")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["pairs"] = pairs["negative_pairs"] + pairs["positive_pairs"]
            measured[which] = r
            extra = (
                f", tracemalloc peak {r['tracemalloc_peak_mb']:.0f} MB"
                if "tracemalloc_peak_mb" in r
                else ""
            )
            print(
                f"{which:>9}: {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(+{r['peak_growth_mb']:.0f} MB over the input){extra}; fraction retrieved "
                f"{r['fraction_retrieved']:.3f}, mean mAP {r['mean_map']:.4f}"
            )
        if (
            "cellbench" in measured
            and "copairs" in measured
            and measured["cellbench"]["n"] == measured["copairs"]["n"] == n
        ):
            c, r = measured["cellbench"], measured["copairs"]
            print(
                f"    ratio cellbench/copairs: time {c['seconds'] / r['seconds']:.2f}x, "
                f"peak growth {c['peak_growth_mb'] / max(r['peak_growth_mb'], 1e-9):.2f}x"
            )


if __name__ == "__main__":
    main()
