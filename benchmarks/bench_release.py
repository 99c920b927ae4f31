"""Real scale: score a release the size of RxRx3-core's OpenPhenom embeddings end to end.

Generates a release of the real shape in the real layout - 222,601 wells x 384 float32
features (``well_id`` + ``feature_0..feature_383`` parquet) and ``metadata_rxrx3_core.csv`` with
the release's columns: the 735 real RxRx3-core genes, each with several guides spread over many
``gene-NNN`` experiments and 1,380-well plates; ``EMPTY_control`` and ``CRISPR_control`` wells
on every gene plate; 1,674 compounds (the 779 named ones of the compound-gene ground truth plus
placeholders) at the 8 canonical concentrations on ``compound-NNN`` plates with their own
``EMPTY_control`` wells, plus a few wells at stray concentrations; embedding and metadata rows
shuffled independently. The embeddings carry per-experiment offsets (batch effects) and a
per-perturbation signal so that every stage does real work.

Then times ``cellbench evaluate --seeds 100`` (a subprocess running the ``cellbench`` entry
point, as a user runs it) end to end and reads its peak memory (the process's own ``VmHWM``).

Bar: <= 60 s and <= 4 GB on 2 cores.

    python benchmarks/bench_release.py [--scale 1.0] [--seeds 100] [--keep DIR]

``--scale s`` multiplies the number of wells (replicates per perturbation, at least one) for a
quicker run; the map keeps its ~14,000 rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

N_WELLS = 222_601
N_FEATURES = 384
N_COMPOUNDS = 1_674
PLATE_WELLS = 1_380
CANONICAL = ("0.0025", "0.01", "0.025", "0.1", "0.25", "1.0", "2.5", "10.0")
STRAY = ("0.3", "5.0")


def _addresses(n: int) -> list[str]:
    rows = [chr(65 + i) for i in range(26)] + ["AA", "AB", "AC", "AD", "AE", "AF"]
    return [f"{rows[i // 48]}{i % 48 + 1:02d}" for i in range(n)]


def generate(out: Path, scale: float = 1.0, seed: int = 0) -> tuple[Path, Path, int]:
    from cellbench.paths import compound_gene_truth_path, rxrx3_core_genes

    rng = np.random.default_rng(seed)
    genes = rxrx3_core_genes()
    named = sorted(set(pl.read_csv(compound_gene_truth_path())["treatment"].to_list()))
    compounds = named + [f"RXC-{i:05d}" for i in range(N_COMPOUNDS - len(named))]
    n_total = max(int(N_WELLS * scale), 20_000)

    # compound part: 2 replicate wells per (compound, concentration) at full scale
    reps = max(1, round(2 * scale))
    comp = [(c, conc) for c in compounds for conc in CANONICAL for _ in range(reps)]
    comp += [(compounds[i], STRAY[i % 2]) for i in rng.choice(len(compounds), 120, replace=False)]
    comp_ctrl_per_plate = 48
    per_plate = PLATE_WELLS - comp_ctrl_per_plate
    n_comp_plates = -(-len(comp) // per_plate)
    n_comp_wells = len(comp) + n_comp_plates * comp_ctrl_per_plate
    # gene part: everything else; per plate 40 EMPTY_control + 12 CRISPR_control
    n_gene_wells = n_total - n_comp_wells
    gene_ctrl, crispr_ctrl = 40, 12
    n_gene_plates = -(-n_gene_wells // PLATE_WELLS)
    n_guided = n_gene_wells - n_gene_plates * (gene_ctrl + crispr_ctrl)

    rows: dict[str, list] = {
        k: []
        for k in (
            "experiment_name",
            "plate",
            "address",
            "gene",
            "treatment",
            "concentration",
            "perturbation_type",
        )
    }
    addr = _addresses(PLATE_WELLS)

    def emit(
        kind: str,
        items: list[tuple],
        plates: int,
        controls: list[tuple],
        prefix: str,
        plates_per_exp: int,
    ):
        pos = 0
        for p in range(plates):
            exp = f"{prefix}-{p // plates_per_exp + 1:03d}"
            plate_items = list(controls)
            room = PLATE_WELLS - len(controls)
            plate_items += items[pos : pos + room]
            pos += room
            for a, (gene, treatment, conc) in zip(addr, plate_items, strict=False):
                rows["experiment_name"].append(exp)
                rows["plate"].append(p % plates_per_exp + 1)
                rows["address"].append(a)
                rows["gene"].append(gene)
                rows["treatment"].append(treatment)
                rows["concentration"].append(conc)
                rows["perturbation_type"].append(kind)

    guide = rng.integers(1, 7, size=n_guided)
    gene_idx = np.arange(n_guided) % len(genes)
    rng.shuffle(gene_idx)
    guided = [(genes[g], f"{genes[g]}_guide_{k}", "") for g, k in zip(gene_idx, guide, strict=True)]
    controls = [("EMPTY_control", "EMPTY_control", "")] * gene_ctrl + [
        ("CRISPR_control", "CRISPR_control", "")
    ] * crispr_ctrl
    emit("CRISPR", guided, n_gene_plates, controls, "gene", 4)
    order = rng.permutation(len(comp))
    comp_items = [("", comp[i][0], comp[i][1]) for i in order]
    emit(
        "COMPOUND",
        comp_items,
        n_comp_plates,
        [("", "EMPTY_control", "")] * comp_ctrl_per_plate,
        "compound",
        4,
    )

    md = pl.DataFrame(rows).with_columns(
        (
            pl.col("experiment_name")
            + "_"
            + pl.col("plate").cast(pl.Utf8)
            + "_"
            + pl.col("address")
        ).alias("well_id"),
        pl.lit("").alias("SMILES"),
        pl.lit("HUVEC").alias("cell_type"),
    )
    md = md.select(
        "well_id",
        "experiment_name",
        "plate",
        "address",
        "gene",
        "treatment",
        "SMILES",
        "concentration",
        "perturbation_type",
        "cell_type",
    )
    n = md.height
    # features: batch offset + perturbation signal + noise, float32
    exp_code = md["experiment_name"].rank("dense").cast(pl.Int64).to_numpy() - 1
    pert_name = md["treatment"].str.split("_").list.first()
    pert_code = pert_name.rank("dense").cast(pl.Int64).to_numpy() - 1
    batch_fx = rng.normal(scale=2.0, size=(exp_code.max() + 1, N_FEATURES)).astype(np.float32)
    pert_fx = rng.normal(scale=0.7, size=(pert_code.max() + 1, N_FEATURES)).astype(np.float32)
    pert_fx[pert_code[(pert_name == "EMPTY").to_numpy()]] = 0.0  # controls carry no perturbation
    feats = np.empty((n, N_FEATURES), dtype=np.float32)
    for start in range(0, n, 50_000):
        sl = slice(start, start + 50_000)
        feats[sl] = rng.standard_normal((len(exp_code[sl]), N_FEATURES), dtype=np.float32)
        feats[sl] += batch_fx[exp_code[sl]] + pert_fx[pert_code[sl]]
    emb_order = rng.permutation(n)
    md_order = rng.permutation(n)
    ids = md["well_id"].to_numpy()[emb_order]
    out.mkdir(parents=True, exist_ok=True)
    emb_path, md_path = (
        out / "OpenPhenom_rxrx3_core_embeddings.parquet",
        out / "metadata_rxrx3_core.csv",
    )
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {"well_id": pa.array(ids)}
    shuffled = feats[emb_order]
    del feats
    for j in range(N_FEATURES):
        cols[f"feature_{j}"] = pa.array(shuffled[:, j])
    del shuffled
    pq.write_table(pa.table(cols), emb_path)
    md[md_order].write_csv(md_path)
    return emb_path, md_path, n


# Runs the `cellbench` console entry point and records the process's own peak RSS (VmHWM) at
# exit. (ru_maxrss of a child would also count this generator process it was forked from.)
WRAPPER = """
import atexit, sys
out = sys.argv[1]
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(out, 'w').write(line.split()[1])
atexit.register(_peak)
sys.argv = ['cellbench'] + sys.argv[2:]
from cellbench.cli import main
main()
"""


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--keep", type=Path, default=None, help="generate into (and keep) this folder")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="cellbench-release-"))
    try:
        t = time.perf_counter()
        emb, md, n = generate(work / "release", args.scale)
        size = emb.stat().st_size / 1e9
        print(
            f"generated {n:,} wells x {N_FEATURES} features ({size:.2f} GB parquet) in {time.perf_counter() - t:.0f} s "
            f"(scale {args.scale})"
        )
        hwm = work / "peak_kb"
        cmd = [
            sys.executable,
            "-c",
            WRAPPER,
            str(hwm),
            "evaluate",
            "--embeddings",
            str(emb),
            "--metadata",
            str(md),
            "--out",
            str(work / "out"),
            "--seeds",
            str(args.seeds),
        ]
        env = {**os.environ, "COLUMNS": "160"}
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        peak_gb = int(hwm.read_text()) / 1e6 if hwm.exists() else float("nan")
        print(proc.stdout)
        if proc.returncode != 0:
            print(proc.stderr)
            print("cellbench evaluate FAILED")
            return 1
        passed = wall <= 60 and peak_gb <= 4
        print(
            f"real scale: cellbench evaluate --seeds {args.seeds} on {n:,} wells x {N_FEATURES}: "
            f"{wall:.1f} s end to end, peak memory {peak_gb:.2f} GB (nproc={os.cpu_count()})"
        )
        print(
            f"bar: <= 60 s and <= 4 GB on 2 cores: {'PASS' if passed else 'FAIL'}"
            f"{'' if args.scale == 1.0 else f' (at scale {args.scale}; the bar is for scale 1.0)'}"
        )
        return 0 if passed else 1
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
