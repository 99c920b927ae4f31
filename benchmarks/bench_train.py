"""Training step cost - CWA-MSN vs Single-Well-MSN (cross-well sampling is free), and
MSN vs CropMAE time per step - measured side by side in one run.

Bar: a CWA-MSN step costs within 10 % of a Single-Well-MSN step. The MSN :
CropMAE time per step is printed for the record (the paper: < 9 vs 14 GPU-hours to train).

Method: the real training loop (:func:`cellbench.train.loop.train`, sampler + views + forward +
backward + AdamW + EMA) on the synthetic-bray screen, ``--steps`` steps per run, runs of the
models interleaved ``--repeat`` times so that machine noise hits them alike; a step's cost is
the CPU time of this process between two steps (wall time on a shared machine measures the
other jobs); the figure of a model is the median step over its runs, after ``--warmup`` steps
of each run.

    python benchmarks/bench_train.py [--preset quick] [--size quick] [--steps 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def step_times(model: str, dataset, preset: str, steps: int, warmup: int, seed: int) -> list[float]:
    """CPU seconds (this process) of each step after ``warmup``: less sensitive than wall time
    to the other jobs of a shared machine."""
    import numpy as np

    from cellbench.train.loop import train
    from cellbench.train.methods import method_defaults
    from cellbench.train.presets import resolve

    config = resolve(
        preset,
        {
            **method_defaults(model, preset),
            "max_steps": steps,
            "log_every": 1,
            "checkpoint_every": 10**9,
        },
    )
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        train(
            model,
            dataset,
            config,
            seed=seed,
            out_dir=out,
            progress=False,
            health=False,
            callback=lambda step, record: stamps.append(time.process_time()),
        )
    return list(np.diff(np.array(stamps))[warmup:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--size", default="quick", help="synthetic-bray screen size")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch

    from cellbench.data import load_dataset

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dataset = load_dataset("synthetic-bray", size=args.size)
    dataset.load_all()
    models = ["cwa-msn", "single-well-msn", "cropmae-cross"]
    times: dict[str, list[list[float]]] = {m: [] for m in models}
    for r in range(args.repeat):
        for m in models if r % 2 == 0 else reversed(models):
            times[m].append(step_times(m, dataset, args.preset, args.steps, args.warmup, seed=r))
    med = {m: statistics.median(x for run in v for x in run) for m, v in times.items()}
    print(
        f"training step CPU time (preset {args.preset}, synthetic-bray {args.size}, "
        f"{torch.get_num_threads()} thread(s), median step over {args.repeat} interleaved runs)"
    )
    for m in models:
        runs = ", ".join(f"{statistics.median(run) * 1000:.1f}" for run in times[m])
        print(f"  {m:16s} {med[m] * 1000:8.1f} ms/step   (run medians: {runs})")
    ratio = med["cwa-msn"] / med["single-well-msn"]
    passed = abs(ratio - 1.0) <= 0.10
    print(f"  CWA-MSN : Single-Well-MSN step time = {ratio:.3f}")
    print(f"           bar   within 10 % (0.90-1.10): {'PASS' if passed else 'FAIL'}")
    print(
        f"  CWA-MSN : CropMAE-Cross step time  = {med['cwa-msn'] / med['cropmae-cross']:.3f} "
        "(record; the paper's training cost: < 9 vs 14 GPU-hours)"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
