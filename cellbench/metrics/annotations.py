"""Known gene-gene relationships (CORUM, HuMAP, Reactome, SIGNOR, StringDB).

Read from the files shipped in the installed ``efaar_benchmarking`` package
(``benchmark_annotations/<source>.txt``, columns ``entity1,entity2``) and cleaned exactly as
the reference ``get_benchmark_relationships`` does: each pair sorted, self-pairs and duplicates
dropped. Each source is parsed once per process (cached) with polars; the reference re-reads
and re-cleans it row by row with pandas on every call.

Only ``efaar_benchmarking.constants`` is imported (cheap); its ``benchmarking`` module pulls in
torch and is needed only by the parity tests and benchmarks.
"""

from __future__ import annotations

import functools
from importlib import metadata as _metadata
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.errors import NotFoundError

#: The gene-gene sources of the paper's tables, in the paper's order.
SOURCES: tuple[str, ...] = ("CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB")


def annotation_dir() -> Path:
    """The ``benchmark_annotations`` folder of the installed efaar_benchmarking package."""
    from efaar_benchmarking.constants import BENCHMARK_DATA_DIR

    return Path(BENCHMARK_DATA_DIR)


def annotation_version() -> str:
    """Version of efaar_benchmarking the annotations come from (stored with every result)."""
    try:
        return _metadata.version("efaar-benchmarking")
    except _metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "unknown"


def check_sources(sources) -> tuple[str, ...]:
    """Validate source names; raise :class:`NotFoundError` naming the unknown ones."""
    sources = tuple(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise NotFoundError(
            f"unknown gene-gene annotation source(s) {unknown or '(none given)'}. "
            f"Fix: choose from {list(SOURCES)}."
        )
    return sources


@functools.cache
def relationships(source: str) -> pl.DataFrame:
    """Cleaned relationship pairs of ``source``: ``entity1 < entity2``, unique, no self-pairs."""
    check_sources([source])
    path = annotation_dir() / f"{source}.txt"
    if not path.exists():
        raise NotFoundError(
            f"annotation file {path} is missing. Fix: reinstall efaar-benchmarking "
            "(`pip install --force-reinstall efaar-benchmarking`)."
        )
    raw = pl.read_csv(path, schema={"entity1": pl.Utf8, "entity2": pl.Utf8})
    a, b = pl.col("entity1"), pl.col("entity2")
    return (
        raw.drop_nulls()
        .select(
            pl.when(a <= b).then(a).otherwise(b).alias("entity1"),
            pl.when(a <= b).then(b).otherwise(a).alias("entity2"),
        )
        .filter(pl.col("entity1") != pl.col("entity2"))
        .unique(maintain_order=True)
    )


def pairs_within(source: str, entities) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)``, ``i < j``, of the relationships of ``source`` whose two ends are
    both among ``entities`` (a sequence of unique labels; ``None`` entries never match)."""
    labels = pl.DataFrame({"entity": pl.Series(list(entities), dtype=pl.Utf8)}).with_row_index(
        "idx"
    )
    labels = labels.drop_nulls("entity")
    rel = relationships(source)
    joined = rel.join(labels.rename({"entity": "entity1", "idx": "i"}), on="entity1").join(
        labels.rename({"entity": "entity2", "idx": "j"}), on="entity2"
    )
    i = joined["i"].to_numpy().astype(np.int64)
    j = joined["j"].to_numpy().astype(np.int64)
    return np.minimum(i, j), np.maximum(i, j)
