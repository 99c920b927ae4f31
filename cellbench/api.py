"""The Python API: ``cellbench.evaluate(profiles, metadata=None, tasks=..., **options)``.

One call scores either

* a JUMP-style profiles table (``Metadata_*`` + numeric feature columns, pycytominer
  conventions; see :mod:`cellbench.maps.profiles`) - ``metadata=None``; or
* well embeddings (``well_id`` + ``feature_0..``) with their metadata (RxRx3-core layout,
  a normalised well table, or ``Metadata_*`` columns).

Each may be a polars or pandas frame or a parquet/CSV path. The result is an
:class:`EvaluationResult`: scores per task, the per-perturbation (per-target, per-source...)
tables as polars frames, the configuration and the versions; ``.to_json()`` gives what
``cellbench evaluate`` writes as ``results.json``, and ``out=FOLDER`` writes the same files.

``cellbench.evaluate`` is the module :mod:`cellbench.evaluate` made callable, so it is the same
object whichever of ``import cellbench.evaluate`` / ``cellbench.evaluate(...)`` comes first.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cellbench.errors import InputError
from cellbench.maps.profiles import ProfileOptions, is_profiles_table, split_profiles
from cellbench.schema import EMBEDDING_ID_COLUMN


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """What one evaluation measured.

    ``scores``: task -> its scores (as in ``results.json``); ``tables``: name -> polars frame
    (``activity``: one row per perturbation, ``consistency``: one per target, ``gene_gene``,
    ``compound_gene``, ``batch``); ``tasks``: task -> ``main_score``, ``main_metric``,
    ``higher_is_better``, ``evaluation_time`` (s); ``config``: every choice that changes a number;
    ``versions``: the packages that compute them."""

    scores: dict[str, dict]
    tables: dict[str, pl.DataFrame]
    tasks: dict[str, dict]
    config: dict[str, Any]
    versions: dict[str, str]
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    wells: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    def main_scores(self) -> dict[str, float | None]:
        """Task -> its headline number."""
        return {task: info["main_score"] for task, info in self.tasks.items()}

    def to_dict(self) -> dict:
        """The ``results.json`` dict (tables excluded: they are the CSV files)."""
        from cellbench.evaluate import _jsonable

        return _jsonable(
            {
                "config": self.config,
                "map": self.wells,
                "scores": self.scores,
                "tasks": self.tasks,
                "skipped": self.skipped,
                "warnings": self.warnings,
                "timings": self.timings,
                "inputs": self.inputs,
                "hashes": self.hashes,
                "versions": self.versions,
            }
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _is_path(obj) -> bool:
    return isinstance(obj, str | Path)


def _frame(obj, what: str) -> pl.DataFrame:
    from cellbench.evaluate import _as_polars

    if isinstance(obj, pl.DataFrame):
        return obj
    try:
        return _as_polars(obj)
    except InputError:
        raise InputError(
            f"{what} must be a polars or pandas DataFrame or a parquet/CSV path (got {type(obj).__name__}). "
            "Fix: pass one of those."
        ) from None


def _embeddings_frame(frame: pl.DataFrame) -> tuple[pl.Series, np.ndarray]:
    if EMBEDDING_ID_COLUMN not in frame.columns:
        raise InputError(
            f"the embeddings have no '{EMBEDDING_ID_COLUMN}' column (columns: {frame.columns[:6]}). "
            "Fix: add the well id of each row, or pass one profiles table with Metadata_* columns and metadata=None."
        )
    feats = [c for c in frame.columns if c != EMBEDDING_ID_COLUMN]
    not_numeric = [c for c in feats if not frame.schema[c].is_numeric()]
    if not_numeric or not feats:
        raise InputError(
            f"embedding columns {not_numeric[:3] or '(none)'} are not numeric features. "
            "Fix: keep well_id and numeric feature columns only."
        )
    dtype = np.float32 if all(frame.schema[c] == pl.Float32 for c in feats) else np.float64
    return frame[EMBEDDING_ID_COLUMN].cast(pl.Utf8), np.ascontiguousarray(
        frame.select(feats).to_numpy(), dtype=dtype
    )


def evaluate(
    profiles,
    metadata=None,
    *,
    tasks: Sequence[str] | None = None,
    out: str | Path | None = None,
    perturbation: str | None = None,
    batch: str | None = None,
    plate: str | None = None,
    well: str | None = None,
    control: str | None = None,
    target: str | None = None,
    perturbation_type: str | None = None,
    align: str = "pca-centerscale",
    null: str = "all",
    seeds: int = 100,
    sources: Sequence[str] | None = None,
    null_size: int = 100_000,
    threshold: float = 0.05,
    activity_engine: str = "fast",
    progress=None,
) -> EvaluationResult:
    """Score profiles (or embeddings + ``metadata``); see the module doc.

    ``tasks`` default: ``activity``, ``consistency``, ``batch`` for ``Metadata_*`` inputs, else
    ``gene_gene``, ``compound_gene``, ``batch``. The column options (``perturbation``, ``batch``,
    ``plate``, ``well``, ``control="COL=VALUE"``, ``target``, ``perturbation_type``) name
    columns of a ``Metadata_*`` table; ``target`` also names an annotation column of RxRx3-core
    metadata. ``align="none"`` scores already normalised profiles as they are.
    ``activity_engine``: ``"fast"`` or ``"copairs"`` for activity/consistency. ``out``: also
    write the result files (as ``cellbench evaluate --out``) into that folder."""
    from cellbench.metrics.annotations import SOURCES

    ev = importlib.import_module("cellbench.evaluate")

    options = {
        "align": align,
        "null": null,
        "seeds": seeds,
        "tasks": None if tasks is None else list(tasks),
        "sources": list(SOURCES if sources is None else sources),
        "null_size": null_size,
        "threshold": threshold,
        "activity_engine": activity_engine,
    }
    ev._check_options(**ev._option_subset(options))
    out_dir = None if out is None else ev._check_out_dir(Path(out))
    popts = ProfileOptions(
        perturbation=perturbation,
        batch=batch,
        plate=plate,
        well=well,
        control=control,
        target=target,
        perturbation_type=perturbation_type,
    )
    t0 = time.perf_counter()
    inputs: dict[str, str] = {}
    hashes: dict[str, str] = {}
    if metadata is None:
        if _is_path(profiles):
            inputs["profiles"], hashes["profiles"] = (
                str(Path(profiles).resolve()),
                ev.sha256_file(profiles),
            )
            frame = ev.read_profiles(profiles)
        else:
            frame = _frame(profiles, "profiles")
        ids, feats, wells, columns, _names = split_profiles(frame, popts)
        del frame
        meta, extra = wells, {}
        if options["tasks"] is None:
            options["tasks"] = list(ev.PROFILE_TASKS)
    else:
        if _is_path(profiles):
            inputs["embeddings"], hashes["embeddings"] = (
                str(Path(profiles).resolve()),
                ev.sha256_file(profiles),
            )
            ids, feats = ev.read_embeddings(profiles)
        else:
            ids, feats = _embeddings_frame(_frame(profiles, "the embeddings"))
        if _is_path(metadata):
            inputs["metadata"], hashes["metadata"] = (
                str(Path(metadata).resolve()),
                ev.sha256_file(metadata),
            )
            meta = ev.read_metadata(metadata)
        else:
            meta = _frame(metadata, "metadata")
        columns = None
        extra = {
            "profile_options": popts if is_profiles_table(meta.columns) else None,
            "target": target,
        }
    read_s = time.perf_counter() - t0
    result, tables = ev.evaluate_core(ids, feats, meta, progress=progress, **options, **extra)
    if columns is not None:
        result["config"]["columns"] = {k: v for k, v in columns.as_dict().items() if k != "notes"}
        result["warnings"] = columns.notes + result["warnings"]
    result, tables = ev.finish(
        result, tables, out_dir, inputs=inputs, hashes=hashes, read_s=read_s, progress=progress
    )
    return EvaluationResult(
        scores=result["scores"],
        tables=tables,
        tasks=result["tasks"],
        config=result["config"],
        versions=result["versions"],
        skipped=result["skipped"],
        warnings=result["warnings"],
        timings=result["timings"],
        wells=result["map"],
        inputs=result["inputs"],
        hashes=result["hashes"],
    )
