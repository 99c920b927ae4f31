"""What the experiments share: the mean and its interval, CORUM recall of an encoder, the CSV."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from cellbench.embed import embed_dataset
from cellbench.evaluate import evaluate_arrays
from cellbench.report.paper import write_csv_atomic

#: where every experiment writes its CSV (and the budget curve its figure)
OUT_DIR = Path("leaderboard/experiments")


def mean_interval(values: list[float], *, kind: str = "t") -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its 95 % interval: Student's t over
    ``n - 1`` degrees of freedom (``kind="t"``: few values, e.g. seeds) or normal, 1.96 standard
    errors (``"normal"``: many, e.g. 50 batches). NaN half-width with fewer than two values."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, float("nan")
    sem = float(np.std(values, ddof=1)) / math.sqrt(n)
    if kind == "t":
        return mean, float(stats.t.ppf(0.975, n - 1)) * sem
    if kind == "normal":
        return mean, 1.96 * sem
    raise ValueError(f"kind must be 't' or 'normal', not {kind!r}")


def corum_recall(
    encoder: Any,
    dataset: Any,
    work: Path,
    *,
    seeds: int = 100,
    sources: tuple[str, ...] | None = None,
) -> float:
    """CORUM recall at (0.05, 0.95) of ``encoder`` on ``dataset`` (embedded under ``work``)."""
    path = embed_dataset(encoder, dataset, work, progress=False)
    table = pl.read_parquet(path)
    features = table.select(pl.exclude("well_id")).to_numpy().astype("float32")
    extra = {} if sources is None else {"sources": sources}
    out = evaluate_arrays(
        table["well_id"].to_list(),
        features,
        dataset.wells,
        seeds=seeds,
        tasks=("gene_gene",),
        **extra,
    )
    return float(out["scores"]["gene_gene"]["CORUM"]["recall_0.05_0.95"])


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> Path:
    """The rows as a CSV at ``out`` (written atomically; folders made)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(pl.DataFrame(rows, infer_schema_length=None), out)
    return out
