"""Gene-gene recall - cellbench vs the efaar reference, side by side in one run.

Bar: same numbers as ``efaar_benchmarking.benchmarking.known_relationship_benchmark``;
>= 20x faster at 735 entities (the RxRx3-core genes) and >= 10x faster with <= 25 % of the
reference's peak memory at 13,000 entities.

Method: one random map per size (float64, ``--dim`` features, the 735 real genes first so that
every source has relationships, then placeholder entities). Time: both functions in this
process on the same map, warm (each called once before timing; best of ``--repeat``). Memory:
each in its own fresh subprocess, peak RSS of that process (``VmHWM``) and its growth over
the RSS just before the call.

    python benchmarks/bench_recall.py [--sizes 735 13000] [--dim 128] [--repeat 3]
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


def make_map(n: int, dim: int, seed: int = 0):
    from cellbench.paths import rxrx3_core_genes

    genes = rxrx3_core_genes()
    labels = (genes + [f"ENTITY_{i}" for i in range(max(0, n - len(genes)))])[:n]
    X = np.random.default_rng(seed).normal(size=(n, dim))
    return labels, X


def run_reference(labels, X):
    import pandas as pd
    from efaar_benchmarking.benchmarking import known_relationship_benchmark
    from sklearn.utils import Bunch

    df = known_relationship_benchmark(
        Bunch(features=pd.DataFrame(X), metadata=pd.DataFrame({"p": labels})), "p"
    )
    return {
        r.source: (
            int(r.query_distribution_size),
            float(r["recall_0.05_0.95"]),
            float(r["recall_0.1_0.9"]),
        )
        for _, r in df.iterrows()
    }


def run_cellbench(labels, X):
    from cellbench.metrics.gene_gene import gene_gene_recall

    out = gene_gene_recall(X, labels)
    return {
        s: (v["n_relationships"], v["recall_0.05_0.95"], v["recall_0.1_0.9"])
        for s, v in out.items()
    }


RUNNERS = {"reference": run_reference, "cellbench": run_cellbench}


def _status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (VmHWM is this process image's own peak;
    ru_maxrss would also count the parent it was forked from)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e3
    raise RuntimeError(field)


def worker(which: str, n: int, dim: int) -> None:
    """Subprocess: warm up on a small map, then one call on the real one; print JSON."""
    labels, X = make_map(n, dim)
    small_labels, small_X = make_map(100, dim, seed=1)
    RUNNERS[which](small_labels, small_X)  # imports, caches
    before = _status_mb("VmRSS")
    t = time.perf_counter()
    RUNNERS[which](labels, X)
    seconds = time.perf_counter() - t
    peak = _status_mb("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "rss_before_mb": before}))


def in_subprocess(which: str, n: int, dim: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--sizes", str(n), "--dim", str(dim)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[735, 13000])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", choices=sorted(RUNNERS))
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.sizes[0], args.dim)
        return 0

    # warm both in this process
    small_labels, small_X = make_map(100, args.dim, seed=1)
    for fn in RUNNERS.values():
        fn(small_labels, small_X)
    ok = True
    print(
        f"gene-gene recall: cellbench vs efaar known_relationship_benchmark (float64, dim {args.dim}, "
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})"
    )
    for n in args.sizes:
        labels, X = make_map(n, args.dim)
        times, results = {}, {}
        for name, fn in RUNNERS.items():
            reps = 1 if (name == "reference" and n > 5000) else args.repeat
            best = np.inf
            for _ in range(reps):
                t = time.perf_counter()
                results[name] = fn(labels, X)
                best = min(best, time.perf_counter() - t)
            times[name] = best
        same = all(results["cellbench"][s] == v for s, v in results["reference"].items())
        mem = {name: in_subprocess(name, n, args.dim) for name in RUNNERS}
        speedup = times["reference"] / times["cellbench"]
        mem_ratio = mem["cellbench"]["peak_mb"] / mem["reference"]["peak_mb"]
        growth = {k: v["peak_mb"] - v["rss_before_mb"] for k, v in mem.items()}
        if n <= 1000:
            bar, passed = ">= 20x faster", speedup >= 20
        else:
            bar, passed = (
                ">= 10x faster and <= 25% peak memory",
                speedup >= 10 and mem_ratio <= 0.25,
            )
        passed = passed and same
        ok &= passed
        print(f"  N={n:>6}: identical numbers: {same}")
        print(
            f"           time  reference {times['reference']:8.3f} s | cellbench {times['cellbench']:8.4f} s | {speedup:7.1f}x"
        )
        print(
            f"           peak  reference {mem['reference']['peak_mb']:8.0f} MB | cellbench {mem['cellbench']['peak_mb']:8.0f} MB | "
            f"{100 * mem_ratio:5.1f}% (growth during the call: {growth['reference']:.0f} MB vs {growth['cellbench']:.0f} MB)"
        )
        print(f"           bar   {bar}: {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
