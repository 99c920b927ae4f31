"""Simulator speed: generate the ``quick`` synthetic screens and print time and images/s.

Bar: synthetic-rxrx3-core ``quick`` generated in <= 60 s on 2 cores.
The machine is shared, so besides wall time it prints the process CPU time (user + sys; with
2 rendering threads an idle 2-core machine needs about CPU/2..CPU of wall time) and the load
average seen during the run — read wall time against the load.

    python benchmarks/bench_simulator.py [--size quick] [--preset synthetic-rxrx3-core synthetic-bray]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench(name: str, size: str, seed: int, out: str) -> dict:
    from cellbench.data.synthetic import generate_screen
    from cellbench.data.synthetic.generate import read_manifest

    cpu0, t0, load0 = _cpu(), time.perf_counter(), os.getloadavg()[0]
    path = generate_screen(name, size, seed, os.path.join(out, f"{name}-{size}"))
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    man = read_manifest(path)
    n_img = man["n_sites"] * len(man["channels"])
    return {
        "preset": name,
        "size": size,
        "wells": man["n_wells"],
        "sites": man["n_sites"],
        "channels": len(man["channels"]),
        "image_px": man["image_size"],
        "images": n_img,
        "disk_MB": round(sum(f["bytes"] for f in man["files"]) / 1e6, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "images_per_s": round(n_img / wall, 1),
        "sites_per_s": round(man["n_sites"] / wall, 1),
        "load_avg_1min": round(max(load0, os.getloadavg()[0]), 2),
        "bar_60s": ("pass" if wall <= 60 else "FAIL")
        if name == "synthetic-rxrx3-core" and size == "quick"
        else "-",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", nargs="+", default=["synthetic-rxrx3-core", "synthetic-bray"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        for name in args.preset:
            print(json.dumps(bench(name, args.size, args.seed, out)), flush=True)


if __name__ == "__main__":
    main()
