"""Phenotypic activity: cellbench's fast exact engine beside copairs called directly, time and
peak memory.

Data: a synthetic random well table (float32, ``--dim`` features) with ``--control-fraction``
negative-control wells; the treated rows are spread evenly over ``--perturbations`` perturbations,
or over ``treated / --replicates`` of them when ``--replicates`` is given. Both paths compute the
same numbers (tests/test_map_exact.py checks equality with copairs): copairs' recipe with one
reference index per control well.

* ``fast``: :func:`cellbench.metrics.activity.activity_table` on the well table, default engine
  (the path ``cellbench evaluate --tasks activity`` runs; blocks of wells x controls).
* ``copairs``: ``copairs.map.average_precision`` + ``mean_average_precision`` called directly
  on the float64 profiles (the conversion is timed: cellbench's copairs engine makes it too).

When both ran at a size, the script says whether they gave the same fraction retrieved and
mean mAP (to 1e-12).

Each runs in its own fresh subprocess; reported: wall time of the call, peak RSS of the process
(``resource.getrusage``, ``ru_maxrss``) and its growth over the RSS just before the call, the
1-minute load average seen, and with ``--tracemalloc`` the peak of Python-tracked allocations.

copairs enumerates every (treated well, control well) pair, so its time and memory grow with
their product. A size above ``--measure-up-to``, or whose estimate (scaled from the largest size
measured, by the number of pairs) exceeds ``--max-minutes`` or ``--max-gb``, is not run; its
estimate and cellbench's own size-guard estimate (``copairs_memory_estimate``) are printed.

    python benchmarks/bench_activity.py [--sizes 20000 222601] [--dim 384] [--null-size 10000]
        [--replicates 8] [--measure-up-to 20000]  # run copairs at 20k, fast at both
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

from cellbench.metrics.activity import copairs_memory_estimate  # noqa: E402


def n_perturbations(n: int, args) -> int:
    n_trt = n - int(round(n * args.control_fraction))
    return max(1, n_trt // args.replicates) if args.replicates else args.perturbations


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


def run_fast(x, pert, ctrl, null_size):
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
    # float64, as cellbench's copairs engine and tests/test_map_exact.py call it: on float32
    # rows copairs' cosine is computed in float32 and near-ties can rank differently
    x = np.asarray(x, dtype=np.float64)
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
    runner = {"fast": run_fast, "copairs": run_copairs}[args.which]
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    before, load0 = _rss_mb(), os.getloadavg()[0]
    t0 = time.perf_counter()
    maps, fraction = runner(x, pert, ctrl, args.null_size)
    seconds = time.perf_counter() - t0
    out = {
        "which": args.which,
        "n": args.n,
        "seconds": seconds,
        "load_avg_1min": round(max(load0, os.getloadavg()[0]), 2),
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
    p.add_argument(
        "--replicates",
        type=int,
        default=None,
        help="wells per perturbation (overrides --perturbations)",
    )
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
    p.add_argument("--child", choices=["fast", "copairs"])
    p.add_argument("--n", type=int)
    args = p.parse_args()
    if args.child:
        args.which = args.child
        child(args)
        return
    measured: dict[str, dict] = {}
    for n in sorted(args.sizes):
        n_perts = n_perturbations(n, args)
        pairs = pair_counts(n, n_perts, args.control_fraction)
        print(
            f"\n== {n:,} wells x {args.dim} features: {pairs['treated']:,} treated in {n_perts:,} "
            f"perturbations, {pairs['controls']:,} controls, "
            f"{pairs['negative_pairs']:,} negative + {pairs['positive_pairs']:,} positive pairs"
        )
        for which in ("fast", "copairs"):
            too_big = args.measure_up_to is not None and n > args.measure_up_to
            if which == "copairs" and too_big:
                reps = int(np.ceil(pairs["treated"] / n_perts))
                need = copairs_memory_estimate(
                    pairs["negative_pairs"] + pairs["positive_pairs"],
                    args.null_size,
                    reps - 1 + pairs["controls"],
                    1,
                )
                print(
                    f"{which:>9}: would need about {need / 2**30:.1f} GB (cellbench's size guard), not run"
                )
                continue
            if which in measured and which != "fast":
                ref = measured[which]
                scale = (pairs["negative_pairs"] + pairs["positive_pairs"]) / ref["pairs"]
                est_s, est_gb = ref["seconds"] * scale, ref["peak_growth_mb"] * scale / 1024
                if est_s > 60 * args.max_minutes or est_gb > args.max_gb:
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
                str(n_perts),
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
                f"(+{r['peak_growth_mb']:.0f} MB over the input){extra}, load {r['load_avg_1min']}; "
                f"fraction retrieved "
                f"{r['fraction_retrieved']:.3f}, mean mAP {r['mean_map']:.4f}"
            )
        if (
            "fast" in measured
            and "copairs" in measured
            and measured["fast"]["n"] == measured["copairs"]["n"] == n
        ):
            c, r = measured["fast"], measured["copairs"]
            print(
                f"    ratio copairs/fast: time {r['seconds'] / c['seconds']:.1f}x, "
                f"peak growth {r['peak_growth_mb'] / max(c['peak_growth_mb'], 1e-9):.1f}x; "
                f"fast/copairs: time {c['seconds'] / r['seconds']:.2f}x, "
                f"peak growth {c['peak_growth_mb'] / max(r['peak_growth_mb'], 1e-9):.2f}x"
            )
            same = c["fraction_retrieved"] == r["fraction_retrieved"] and np.isclose(
                c["mean_map"], r["mean_map"], rtol=1e-12, atol=0
            )
            print(f"    same numbers (fraction retrieved, mean mAP): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
