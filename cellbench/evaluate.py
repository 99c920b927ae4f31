"""Score well-level embeddings or profiles: what ``cellbench evaluate`` runs.

Entry points:

* :func:`evaluate_arrays` - in-process (used by the pipeline): well ids, a feature matrix and a
  metadata table (polars or pandas: the RxRx3-core metadata columns, an already normalised table
  with ``schema.WELL_COLUMNS``, or JUMP-style ``Metadata_*`` columns) -> a dict of results.
* :func:`evaluate_files` - the real release files: an embeddings parquet (``well_id`` +
  ``feature_0..feature_{D-1}``, read in record batches straight into one preallocated array) and
  its metadata (``metadata_rxrx3_core.csv``, or CSV/parquet with ``Metadata_*`` columns).
* :func:`evaluate_profiles_file` - one JUMP-style profiles table (parquet or CSV,
  :mod:`cellbench.maps.profiles`).

Both file entry points validate everything, then write one CSV per scored task
(``gene_gene.csv``, ``compound_gene.csv``, ``batch.csv``, ``activity.csv``,
``consistency.csv``) and ``results.json`` (configuration, versions, input SHA-256, timings per
stage, and per task its ``main_score`` and ``evaluation_time``) as one set: only once every
score is computed, into a temporary folder that then replaces the output folder as a whole. On
an error nothing is written, and the folder never mixes the files of two runs. The Python API,
``cellbench.evaluate(...)``, is :func:`evaluate` at the end of this module (re-exported by
:mod:`cellbench.api`; this module is made callable for it).

Order (docs/metrics.md): well -> alignment on controls -> perturbation map -> gene-gene recall
(null over the whole map or over its genes) -> compound-gene retrieval over seeds -> batch
diagnostics on the aligned wells -> phenotypic activity and consistency on the aligned wells
(copairs; :mod:`cellbench.metrics.activity`). The map is built only for the map tasks. A map
without genes or without compounds scores what it can and records what it skipped and why.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from cellbench.errors import InputError, NotFoundError
from cellbench.io import (
    atomic_dir,
    check_writable,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from cellbench.maps.align import ALIGNMENTS
from cellbench.maps.build import align_wells, build_map_full
from cellbench.maps.labels import wells_from_rxrx3
from cellbench.maps.profiles import (
    ProfileOptions,
    is_profiles_table,
    split_profiles,
    wells_from_profiles,
)
from cellbench.metrics.annotations import SOURCES, annotation_version, check_sources
from cellbench.metrics.gene_gene import MIN_ENTITIES, THRESHOLD_PAIRS, map_recall, recall_key
from cellbench.schema import (
    ACTIVITY_ENGINES,
    COMPOUND,
    CRISPR,
    EMBEDDING_ID_COLUMN,
    EVAL_TASKS,
    FEATURE_PREFIX,
    SCORED_TASKS,
    TARGET_COLUMN,
    WELL_COLUMNS,
)

#: run by default on RxRx3-core-layout metadata
DEFAULT_TASKS: tuple[str, ...] = EVAL_TASKS
#: run by default on JUMP-style (``Metadata_*``) profiles or metadata
PROFILE_TASKS: tuple[str, ...] = ("activity", "consistency", "batch")
#: the tasks scored on the aggregated perturbation map (the others on wells)
MAP_TASKS: tuple[str, ...] = ("gene_gene", "compound_gene")
NULL_SCOPES: tuple[str, ...] = ("all", "genes")
STAGES: tuple[str, ...] = (
    "read",
    "map",
    "gene_gene",
    "compound_gene",
    "batch",
    "activity",
    "consistency",
    "write",
)
#: what an output folder may hold: it is replaced as a whole, so it must hold nothing else
RESULT_FILES: tuple[str, ...] = (
    "gene_gene.csv",
    "compound_gene.csv",
    "batch.csv",
    "activity.csv",
    "consistency.csv",
    "results.json",
)
#: each task's headline number in ``results.json["tasks"]``: (metric, higher is better)
MAIN_METRICS: dict[str, tuple[str, bool]] = {
    "gene_gene": ("CORUM recall_0.05_0.95", True),
    "compound_gene": ("average_precision at max concentration", True),
    "batch": ("batch_accuracy from aligned controls", False),
    "activity": ("fraction_retrieved", True),
    "consistency": ("fraction_retrieved", True),
}

#: progress(stage, done, total) - called as stages advance (the CLI draws bars from it)
Progress = Callable[[str, float, float], None]


def _noop(stage: str, done: float, total: float) -> None:
    return None


def versions() -> dict[str, str]:
    """Versions of everything that can change a number."""
    out = {"python": platform.python_version()}
    for pkg in (
        "cellbench",
        "efaar-benchmarking",
        "copairs",
        "numpy",
        "scipy",
        "scikit-learn",
        "pandas",
        "polars",
        "pyarrow",
    ):
        try:
            out[pkg] = _metadata.version(pkg)
        except _metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _check_options(
    align: str,
    null: str,
    seeds: int,
    tasks: Sequence[str],
    sources: Sequence[str],
    null_size: int = 100_000,
    threshold: float = 0.05,
    activity_engine: str = "fast",
):
    if align not in ALIGNMENTS:
        raise InputError(f"unknown alignment '{align}'. Fix: use one of {list(ALIGNMENTS)}.")
    if null not in NULL_SCOPES:
        raise InputError(f"unknown null scope '{null}'. Fix: use 'all' (whole map) or 'genes'.")
    if int(seeds) < 1:
        raise InputError(
            f"--seeds must be at least 1 (got {seeds}). Fix: pass --seeds 100 as the reference does."
        )
    unknown = [t for t in tasks if t not in SCORED_TASKS]
    if unknown or not tasks:
        raise InputError(
            f"unknown task(s) {unknown or '(none)'}. Fix: choose from {list(SCORED_TASKS)} (--tasks)."
        )
    if int(null_size) < 1:
        raise InputError(
            f"--null-size must be at least 1 (got {null_size}). Fix: pass --null-size 10000 or more."
        )
    if not 0 < float(threshold) < 1:
        raise InputError(
            f"--threshold must lie between 0 and 1 (got {threshold}). Fix: pass --threshold 0.05."
        )
    if activity_engine not in ACTIVITY_ENGINES:
        raise InputError(
            f"unknown activity engine '{activity_engine}'. Fix: use one of "
            f"{', '.join(ACTIVITY_ENGINES)} (--activity-engine; both give copairs' numbers)."
        )
    check_sources(sources)


def _check_features(well_ids: Sequence[str], features: np.ndarray) -> None:
    if len(features) == 0:
        raise InputError(
            "the embeddings are empty (no rows). Fix: embed the wells again or pass the right file."
        )
    if features.ndim != 2 or features.shape[1] == 0:
        raise InputError(
            f"the embeddings must be a 2-D table with at least one feature (got shape {features.shape})."
        )
    if len(well_ids) != len(features):
        raise InputError(
            f"{len(well_ids)} well ids but {len(features)} embedding rows. Fix: one id per row."
        )
    finite = np.isfinite(features).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        examples = [str(well_ids[int(i)]) for i in bad[:3]]
        raise InputError(
            f"{len(bad)} embedding rows contain NaN or inf (e.g. wells {examples}). "
            "Fix: re-embed those wells or drop them from both the embeddings and the metadata."
        )


def _as_polars(metadata) -> pl.DataFrame:
    """A polars table from a polars or pandas frame (anything else is refused by name)."""
    if isinstance(metadata, pl.DataFrame):
        return metadata
    if type(metadata).__module__.startswith("pandas"):
        return pl.from_pandas(
            metadata.reset_index(drop=True) if hasattr(metadata, "reset_index") else metadata
        )
    raise InputError(
        f"the metadata must be a polars or pandas DataFrame (got {type(metadata).__name__}). "
        "Fix: pass a table, or a CSV/parquet path to evaluate_files / cellbench.evaluate."
    )


def _wells_table(
    metadata: pl.DataFrame, target: str | None = None, profile_options: ProfileOptions | None = None
) -> tuple[pl.DataFrame, dict | None]:
    """The normalised well table (+ ``target`` when annotated) and, for ``Metadata_*`` tables,
    the columns it was read from."""
    if all(c in metadata.columns for c in WELL_COLUMNS):
        keep = list(WELL_COLUMNS) + (
            [TARGET_COLUMN] if TARGET_COLUMN in metadata.columns and target is None else []
        )
        wells, columns = metadata.select(keep), None
    elif is_profiles_table(metadata.columns):
        opts = profile_options or ProfileOptions()
        if target is not None:
            opts = ProfileOptions(**{**opts.as_dict(), "target": target})
        wells, cols = wells_from_profiles(metadata, opts)
        return wells, cols.as_dict()
    else:
        wells, columns = wells_from_rxrx3(metadata), None
    if target is not None:
        if target not in metadata.columns:
            raise InputError(
                f"--target {target}: the metadata has no column '{target}' (columns: {metadata.columns[:10]}). "
                "Fix: pass --target naming the annotation column (e.g. a gene or target column)."
            )
        wells = wells.with_columns(metadata[target].cast(pl.Utf8).alias(TARGET_COLUMN))
    return wells, columns


def _line_up(well_ids: Sequence[str], wells: pl.DataFrame) -> pl.DataFrame:
    """Metadata rows in the order of the embedding rows; errors if the ids do not line up."""
    if isinstance(well_ids, pl.Series):
        ids = well_ids.cast(pl.Utf8).alias(EMBEDDING_ID_COLUMN)
    else:
        ids = pl.Series(EMBEDDING_ID_COLUMN, list(well_ids), dtype=pl.Utf8)
    dup = ids.is_duplicated()
    if dup.any():
        examples = ids.filter(dup).unique().sort().head(3).to_list()
        raise InputError(
            f"the embeddings hold {int(dup.sum())} rows with duplicate well ids (e.g. {examples}). "
            "Fix: keep one embedding per well (average duplicates first)."
        )
    order = pl.DataFrame({"well_id": ids}).with_row_index("_pos")
    joined = order.join(wells, on="well_id", how="left", coalesce=True)
    missing = joined.filter(pl.col("batch").is_null())["well_id"]
    extra = wells.join(order, on="well_id", how="anti")["well_id"]
    if len(missing) or len(extra):
        parts = []
        if len(missing):
            parts.append(
                f"{len(missing)} embedded wells are not in the metadata (e.g. {missing.head(3).to_list()})"
            )
        if len(extra):
            parts.append(
                f"{len(extra)} metadata wells have no embedding (e.g. {extra.head(3).to_list()})"
            )
        raise InputError(
            "the embeddings and the metadata do not line up: " + "; ".join(parts) + ". "
            "Fix: pass the metadata file that belongs to these embeddings, or filter both to the same wells."
        )
    return joined.sort("_pos").drop("_pos")


def default_tasks(metadata_columns) -> tuple[str, ...]:
    """PROFILE_TASKS for ``Metadata_*`` tables, DEFAULT_TASKS for the RxRx3-core layout."""
    return PROFILE_TASKS if is_profiles_table(metadata_columns) else DEFAULT_TASKS


def evaluate_arrays(
    well_ids: Sequence[str],
    features: np.ndarray,
    metadata: pl.DataFrame,
    *,
    align: str = "pca-centerscale",
    null: str = "all",
    seeds: int = 100,
    tasks: Sequence[str] | None = None,
    sources: Sequence[str] = SOURCES,
    progress: Progress | None = None,
    truth: pl.DataFrame | None = None,
    null_size: int = 100_000,
    threshold: float = 0.05,
    target: str | None = None,
    profile_options: ProfileOptions | None = None,
    activity_engine: str = "fast",
) -> dict:
    """Score well embeddings in memory. Returns a JSON-serialisable dict with ``config``,
    ``map``, ``scores`` (per task), ``tasks`` (per task: ``main_score``, ``evaluation_time``),
    ``skipped`` (task -> reason), ``warnings`` and ``timings``.

    ``metadata`` (polars or pandas): the RxRx3-core metadata columns, an already normalised table
    with ``schema.WELL_COLUMNS``, or JUMP-style ``Metadata_*`` columns (see
    :mod:`cellbench.maps.profiles`; ``profile_options`` names columns explicitly). ``tasks``
    defaults to :data:`DEFAULT_TASKS`, or :data:`PROFILE_TASKS` for ``Metadata_*`` metadata.
    ``target`` names the annotation column phenotypic consistency groups by.
    ``activity_engine``: ``"fast"`` (cellbench's exact block engine) or ``"copairs"`` (copairs
    itself) for phenotypic activity and consistency; the same numbers either way.

    BLAS runs single-threaded unless ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` /
    ``MKL_NUM_THREADS`` is set: on a small shared machine extra BLAS threads mostly contend
    (measured on the loaded 2-core box, release-sized map stage: 5.7-6.4 s with one thread,
    8.3-25.8 s with two)."""
    result, _tables = evaluate_core(
        well_ids,
        features,
        metadata,
        align=align,
        null=null,
        seeds=seeds,
        tasks=tasks,
        sources=sources,
        progress=progress,
        truth=truth,
        null_size=null_size,
        threshold=threshold,
        target=target,
        profile_options=profile_options,
        activity_engine=activity_engine,
    )
    return result


def evaluate_core(well_ids, features, metadata, **options) -> tuple[dict, dict[str, pl.DataFrame]]:
    """:func:`evaluate_arrays`, also returning the per-row tables (``activity``,
    ``consistency``, ``gene_gene``, ``compound_gene``, ``batch``) as polars frames."""
    explicit = any(
        os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    )
    with threadpool_limits(None if explicit else 1, user_api="blas"):
        return _evaluate_arrays(well_ids, features, metadata, **options)


def _as_ids(well_ids) -> list[str] | pl.Series:
    if isinstance(well_ids, pl.Series):
        return well_ids
    if hasattr(well_ids, "tolist"):  # pandas Series / Index, numpy array
        return [str(v) for v in well_ids.tolist()]
    return list(well_ids)


def _as_features(features) -> np.ndarray:
    if type(features).__module__.startswith(("pandas", "polars")):
        non_numeric = [
            str(c) for c, t in zip(features.columns, _dtypes(features), strict=True) if not t
        ]
        if non_numeric:
            raise InputError(
                f"feature columns {non_numeric[:5]} are not numeric. Fix: pass only numeric feature columns."
            )
        features = features.to_numpy()
    features = np.asarray(features)
    if features.dtype not in (np.float32, np.float64):
        try:
            features = features.astype(np.float32)
        except (TypeError, ValueError):
            raise InputError(
                "the features are not numeric. Fix: pass a numeric feature matrix."
            ) from None
    return features


def _dtypes(frame) -> list[bool]:
    if isinstance(frame, pl.DataFrame):
        return [t.is_numeric() for t in frame.dtypes]
    return [np.issubdtype(t, np.number) or np.issubdtype(t, np.bool_) for t in frame.dtypes]


def _main_score(task: str, scores: dict):
    if task == "gene_gene":
        source = "CORUM" if "CORUM" in scores else next(iter(scores), None)
        return None if source is None else scores[source].get("recall_0.05_0.95")
    if task == "compound_gene":
        row = next((r for r in scores.get("rows", []) if r.get("concentration") == "max"), None)
        return None if row is None else row.get("average_precision")
    if task == "batch":
        return scores.get("batch_predictability", {}).get("batch_accuracy")
    return scores.get("fraction_retrieved")


def _evaluate_arrays(
    well_ids,
    features,
    metadata,
    *,
    align="pca-centerscale",
    null="all",
    seeds=100,
    tasks=None,
    sources=SOURCES,
    progress=None,
    truth=None,
    null_size=100_000,
    threshold=0.05,
    target=None,
    profile_options=None,
    activity_engine="fast",
) -> tuple[dict, dict[str, pl.DataFrame]]:
    from cellbench.metrics.activity import activity_table, consistency_table

    progress = progress or _noop
    metadata = _as_polars(metadata)
    tasks = tuple(default_tasks(metadata.columns) if tasks is None else tasks)
    sources = tuple(sources)
    _check_options(align, null, seeds, tasks, sources, null_size, threshold, activity_engine)
    well_ids = _as_ids(well_ids)
    features = _as_features(features)
    _check_features(well_ids, features)
    timings: dict[str, float] = {}
    caught: list[str] = []

    t0 = time.perf_counter()
    progress("map", 0, 3)
    wells, columns = _wells_table(metadata, target, profile_options)
    if columns:
        caught += columns.get("notes", [])
    wells = _line_up(well_ids, wells)
    if not wells["is_control"].any() and align != "none":
        raise InputError(
            "the metadata has no control wells (treatment EMPTY_control, or Metadata_pert_type negcon), so "
            f"alignment '{align}' cannot be fitted. Fix: include the control wells, pass --control COL=VALUE "
            "naming them, or use --align none."
        )
    progress("map", 1, 3)
    map_tasks = any(t in MAP_TASKS for t in tasks)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if map_tasks:
            built = build_map_full(features, wells, align)
            aligned = built.aligned_wells
        else:
            built, aligned = None, align_wells(features, wells, align)
    caught += [str(w.message) for w in record]
    progress("map", 3, 3)
    timings["map"] = time.perf_counter() - t0
    map_info = {
        "n_wells": len(features),
        "n_control_wells": int(wells["is_control"].sum()),
        "n_features_in": int(features.shape[1]),
    }
    scores: dict = {}
    skipped: dict[str, str] = {}
    tables: dict[str, pl.DataFrame] = {}
    if built is not None:
        table, map_feats = built.table, built.features
        is_gene = (table["perturbation_type"] == CRISPR).to_numpy()
        is_compound = (table["perturbation_type"] == COMPOUND).to_numpy()
        map_info.update(
            {
                "n_rows": table.height,
                "n_gene_rows": int(is_gene.sum()),
                "n_compound_rows": int(is_compound.sum()),
                "n_features_map": int(map_feats.shape[1]),
                **built.report.as_dict(),
            }
        )
        if table.height < MIN_ENTITIES:
            raise InputError(
                f"the map has only {table.height} perturbations; scoring needs at least {MIN_ENTITIES}. "
                "Fix: evaluate more wells (more genes or compounds), or --tasks activity,consistency,batch."
            )

    if "gene_gene" in tasks:
        t0 = time.perf_counter()
        progress("gene_gene", 0, 1)
        if not is_gene.any():
            skipped["gene_gene"] = "the map has no CRISPR (gene) rows"
        else:
            n_null = table.height if null == "all" else int(is_gene.sum())
            if n_null < MIN_ENTITIES:
                skipped["gene_gene"] = f"only {n_null} rows in the null (need {MIN_ENTITIES})"
            else:
                scores["gene_gene"] = map_recall(
                    table,
                    map_feats,
                    null=null,
                    sources=sources,
                    progress=lambda d, t: progress("gene_gene", d, t),
                )
                tables["gene_gene"] = gene_gene_frame(scores["gene_gene"])
        progress("gene_gene", 1, 1)
        timings["gene_gene"] = time.perf_counter() - t0

    if "compound_gene" in tasks:
        from cellbench.metrics.compound_gene import compound_gene_benchmark

        t0 = time.perf_counter()
        progress("compound_gene", 0, 1)
        limit = threadpool_limits(1)  # many small array ops: extra BLAS threads only contend
        try:
            if not is_compound.any():
                skipped["compound_gene"] = "the map has no compound rows"
            elif not is_gene.any():
                skipped["compound_gene"] = "the map has no CRISPR (gene) rows to retrieve"
            else:
                try:
                    result = compound_gene_benchmark(
                        table,
                        map_feats,
                        seeds=int(seeds),
                        truth=truth,
                        progress=lambda d, t: progress("compound_gene", d, t),
                    )
                    scores["compound_gene"] = {"rows": result["rows"], "counts": result["counts"]}
                    tables["compound_gene"] = compound_gene_frame(scores["compound_gene"])
                except InputError as exc:
                    if "no compound" not in str(exc):
                        raise
                    skipped["compound_gene"] = (
                        "no compound of the ground truth is scorable in this map"
                    )
        finally:
            limit.restore_original_limits()
        timings["compound_gene"] = time.perf_counter() - t0

    if "batch" in tasks:
        from cellbench.metrics.batch import batch_diagnostics

        t0 = time.perf_counter()
        progress("batch", 0, 1)
        with threadpool_limits(1):  # small logistic regressions: extra BLAS threads only contend
            scores["batch"] = batch_diagnostics(aligned, wells, features=features, align=align)
        tables["batch"] = batch_frame(scores["batch"])
        progress("batch", 1, 1)
        timings["batch"] = time.perf_counter() - t0

    activity = None
    if "activity" in tasks or "consistency" in tasks:
        t0 = time.perf_counter()
        progress("activity", 0, 1)
        activity, activity_scores = activity_table(
            aligned,
            wells,
            null_size=int(null_size),
            threshold=float(threshold),
            engine=activity_engine,
        )
        if "activity" in tasks:
            scores["activity"], tables["activity"] = activity_scores, activity
        progress("activity", 1, 1)
        timings["activity"] = time.perf_counter() - t0

    if "consistency" in tasks:
        assert activity is not None  # (computed above for consistency too)
        t0 = time.perf_counter()
        progress("consistency", 0, 1)
        if TARGET_COLUMN not in wells.columns:
            skipped["consistency"] = (
                "no target annotation: the metadata has no Metadata_target / Metadata_gene / Metadata_Symbol "
                "column other than the perturbation's; pass --target COL to score phenotypic consistency"
            )
        elif not activity["retrieved"].any():
            skipped["consistency"] = "no perturbation is phenotypically active: nothing to compare"
        else:
            cons, cons_scores, cons_skipped = consistency_table(
                aligned,
                wells,
                activity,
                null_size=int(null_size),
                threshold=float(threshold),
                engine=activity_engine,
            )
            if cons.height:
                scores["consistency"], tables["consistency"] = cons_scores, cons
            else:
                skipped["consistency"] = "; ".join(f"{k}: {v}" for k, v in cons_skipped.items())
        progress("consistency", 1, 1)
        timings["consistency"] = time.perf_counter() - t0

    summary = {
        task: {
            "main_score": _main_score(task, scores[task]),
            "main_metric": MAIN_METRICS[task][0],
            "higher_is_better": MAIN_METRICS[task][1],
            "evaluation_time": timings.get(task, 0.0),
        }
        for task in SCORED_TASKS
        if task in scores
    }
    config = {
        "align": align,
        "null": null,
        "seeds": int(seeds),
        "tasks": list(tasks),
        "sources": list(sources),
        "recall_thresholds": [list(p) for p in THRESHOLD_PAIRS],
        "annotations": f"efaar-benchmarking {annotation_version()}",
        "compound_gene": "docs/metrics.md, compound-gene retrieval; z = (mu - mu_b) / sqrt(sigma^2 + sigma_b^2) (cellbench's definition)",
    }
    if "activity" in tasks or "consistency" in tasks:
        engine_text = (
            "cellbench's exact block engine (cellbench.metrics.map_exact), equal to copairs"
            if activity_engine == "fast"
            else "copairs itself (copairs.map.average_precision, mean_average_precision)"
        )
        config.update(
            null_size=int(null_size),
            threshold=float(threshold),
            activity_engine=activity_engine,
            activity=(
                "copairs mAP (cosine) of each perturbation's aligned wells against the negative-control wells "
                "of its perturbation type; permutation p-values, Benjamini-Hochberg within each type; computed by "
                + engine_text
            ),
            consistency=(
                "copairs mAP (cosine) between median consensus profiles of the active perturbations: "
                "positives share the target, negatives have another; same engine"
            ),
        )
    if columns is not None:
        config["columns"] = {k: v for k, v in columns.items() if k != "notes"}
    result = {
        "config": config,
        "map": map_info,
        "scores": scores,
        "tasks": summary,
        "skipped": skipped,
        "warnings": caught,
        "timings": timings,
    }
    return result, tables


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def read_embeddings(
    path: str | Path, progress: Progress | None = None
) -> tuple[pl.Series, np.ndarray]:
    """``(well ids, features)`` of an embeddings parquet (``well_id`` + ``feature_0..``).

    Streams the feature columns with polars in groups of 64 into one preallocated C-ordered
    float32 array (float64 if stored so): the table is never held twice, and the parquet's
    column chunks are read directly rather than row batch by row batch."""
    progress = progress or _noop
    path = Path(path)
    if not path.exists():
        raise NotFoundError(
            f"embeddings file {path} does not exist. Fix: check the --embeddings path."
        )
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as exc:
        raise InputError(
            f"cannot read {path} as parquet ({exc}). Fix: pass the embeddings .parquet file."
        ) from None
    names = list(schema)
    feats = [c for c in names if c.startswith(FEATURE_PREFIX)]
    if EMBEDDING_ID_COLUMN not in names or not feats:
        raise InputError(
            f"{path} has columns {names[:6]}{'...' if len(names) > 6 else ''}; an embeddings file needs "
            f"'{EMBEDDING_ID_COLUMN}' and '{FEATURE_PREFIX}0..{FEATURE_PREFIX}N'. Fix: write it in that layout."
        )
    feats.sort(
        key=lambda c: (
            int(c[len(FEATURE_PREFIX) :]) if c[len(FEATURE_PREFIX) :].isdigit() else math.inf
        )
    )
    not_numeric = [c for c in feats if not schema[c].is_numeric()]
    if not_numeric:
        raise InputError(
            f"feature columns {not_numeric[:3]} of {path} are not numeric. Fix: store features as floats."
        )
    dtype = np.float64 if all(schema[c] == pl.Float64 for c in feats) else np.float32
    try:
        ids = pl.read_parquet(path, columns=[EMBEDDING_ID_COLUMN]).to_series().cast(pl.Utf8)
        if ids.null_count():
            raise InputError(
                f"{path} has rows without a well_id. Fix: every row needs its well id."
            )
        if len(ids) == 0:
            raise InputError(
                f"{path} is empty (no rows). Fix: embed the wells again or pass the right file."
            )
        out = np.empty((len(ids), len(feats)), dtype=dtype)
        null_rows = np.zeros(len(ids), dtype=bool)
        group = 64
        for start in range(0, len(feats), group):
            cols = feats[start : start + group]
            block = pl.read_parquet(path, columns=cols).select(
                pl.all().cast(pl.Float64 if dtype == np.float64 else pl.Float32)
            )
            null_rows |= block.select(pl.any_horizontal(pl.all().is_null())).to_series().to_numpy()
            out[:, start : start + len(cols)] = block.to_numpy()
            progress("read", start + len(cols), len(feats))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged data page fails in several ways
        raise InputError(
            f"cannot read the values of {path} ({type(exc).__name__}); the file is damaged. "
            "Fix: write or download the embeddings again."
        ) from None
    if null_rows.any():
        raise InputError(
            f"{int(null_rows.sum())} embedding rows of {path} have null (missing) feature values "
            f"(e.g. wells {ids.filter(pl.Series(null_rows)).head(3).to_list()}). "
            "Fix: re-embed those wells or drop them from both the embeddings and the metadata."
        )
    return ids, out


def read_metadata(path: str | Path) -> pl.DataFrame:
    """A metadata table: ``metadata_rxrx3_core.csv`` or JUMP-style ``Metadata_*`` columns, as CSV
    (all columns read as text; concentration parsed later) or parquet."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"metadata file {path} does not exist. Fix: check the --metadata path.")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:
            raise InputError(
                f"cannot read {path} as parquet ({exc}). Fix: pass a metadata .parquet or .csv."
            ) from None
    else:
        try:
            frame = pl.read_csv(path, infer_schema=False)
        except Exception as exc:
            raise InputError(
                f"cannot read {path} as CSV ({exc}). Fix: pass metadata_rxrx3_core.csv."
            ) from None
    if frame.height == 0:
        raise InputError(
            f"{path} is empty (no rows). Fix: pass the metadata file that belongs to the embeddings."
        )
    return frame


def read_profiles(path: str | Path) -> pl.DataFrame:
    """A profiles table (``Metadata_*`` + feature columns) from parquet or CSV."""
    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"profiles file {path} does not exist. Fix: check the --profiles path.")
    try:
        if path.suffix.lower() in (".csv", ".tsv", ".gz"):
            sep = "\t" if ".tsv" in path.name.lower() else ","
            return pl.read_csv(path, separator=sep, infer_schema_length=None)
        return pl.read_parquet(path)
    except Exception as exc:
        raise InputError(
            f"cannot read {path} as {'CSV' if path.suffix.lower() == '.csv' else 'parquet'} ({type(exc).__name__}: {exc}). "
            "Fix: pass a profiles .parquet or .csv file (Metadata_* + feature columns)."
        ) from None


def _csv(frame: pl.DataFrame) -> str:
    buf = io.StringIO()
    frame.write_csv(buf, float_precision=None)
    return buf.getvalue()


def gene_gene_frame(scores: dict) -> pl.DataFrame:
    cols = ["source", "n_relationships"] + [recall_key(lo, hi) for lo, hi in THRESHOLD_PAIRS]
    rows = [{"source": s, **v} for s, v in scores.items()]
    return pl.DataFrame(
        rows,
        schema={
            c: (pl.Utf8 if c == "source" else pl.Int64 if c == "n_relationships" else pl.Float64)
            for c in cols
        },
    )


def compound_gene_frame(scores: dict) -> pl.DataFrame:
    rows = [{**r, "concentration": str(r["concentration"])} for r in scores["rows"]]
    return pl.DataFrame(rows)


def batch_frame(scores: dict) -> pl.DataFrame:
    """The numeric batch diagnostics, one row each (lists become ``name_0``, ``name_1``...;
    text such as a skip reason or the fit stays in ``results.json``)."""
    rows = []
    for diagnostic, values in scores.items():
        for key, value in values.items():
            items = (
                [(f"{key}_{i}", v) for i, v in enumerate(value)]
                if isinstance(value, list | tuple)
                else [(key, value)]
            )
            for name, v in items:
                if isinstance(v, bool | int | float | np.number) and not isinstance(v, str):
                    rows.append({"diagnostic": diagnostic, "metric": name, "value": float(v)})
    return pl.DataFrame(
        rows, schema={"diagnostic": pl.Utf8, "metric": pl.Utf8, "value": pl.Float64}
    )


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def evaluate_files(
    embeddings: str | Path,
    metadata: str | Path,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    **options,
) -> dict:
    """Score an embeddings parquet against its metadata (CSV or parquet: RxRx3-core layout or
    ``Metadata_*`` columns) and write the result files into ``out_dir`` (see module doc).
    ``options``: those of :func:`evaluate_arrays`."""
    progress = progress or _noop
    _check_options(**_option_subset(options))
    out_dir = _check_out_dir(Path(out_dir))
    t0 = time.perf_counter()
    ids, feats = read_embeddings(embeddings, progress)
    meta = read_metadata(metadata)
    hashes = {"embeddings": sha256_file(embeddings), "metadata": sha256_file(metadata)}
    read_s = time.perf_counter() - t0
    result, tables = evaluate_core(ids, feats, meta, progress=progress, **options)
    del feats
    inputs = {
        "embeddings": str(Path(embeddings).resolve()),
        "metadata": str(Path(metadata).resolve()),
    }
    return finish(
        result, tables, out_dir, inputs=inputs, hashes=hashes, read_s=read_s, progress=progress
    )[0]


def evaluate_profiles_file(
    profiles: str | Path,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    profile_options: ProfileOptions | None = None,
    **options,
) -> dict:
    """Score one JUMP-style profiles table (parquet or CSV: ``Metadata_*`` + numeric feature
    columns, see :mod:`cellbench.maps.profiles`) and write the result files into ``out_dir``."""
    progress = progress or _noop
    _check_options(**_option_subset(options))
    out_dir = _check_out_dir(Path(out_dir))
    t0 = time.perf_counter()
    progress("read", 0, 1)
    frame = read_profiles(profiles)
    ids, feats, wells, columns, _names = split_profiles(frame, profile_options, name=str(profiles))
    del frame
    hashes = {"profiles": sha256_file(profiles)}
    progress("read", 1, 1)
    read_s = time.perf_counter() - t0
    if options.get("tasks") is None:
        options["tasks"] = PROFILE_TASKS
    result, tables = evaluate_core(ids, feats, wells, progress=progress, **options)
    del feats
    result["config"]["columns"] = {k: v for k, v in columns.as_dict().items() if k != "notes"}
    result["warnings"] = columns.notes + result["warnings"]
    return finish(
        result,
        tables,
        out_dir,
        inputs={"profiles": str(Path(profiles).resolve())},
        hashes=hashes,
        read_s=read_s,
        progress=progress,
    )[0]


def _option_subset(options: dict) -> dict:
    keys = (
        "align",
        "null",
        "seeds",
        "tasks",
        "sources",
        "null_size",
        "threshold",
        "activity_engine",
    )
    defaults = {
        "align": "pca-centerscale",
        "null": "all",
        "seeds": 100,
        "tasks": DEFAULT_TASKS,
        "sources": SOURCES,
    }
    out = {k: options[k] for k in keys if k in options and options[k] is not None}
    return {**defaults, **out}


def finish(
    result: dict,
    tables: dict[str, pl.DataFrame],
    out_dir: Path | None,
    *,
    inputs: dict,
    hashes: dict,
    read_s: float,
    progress: Progress | None = None,
) -> tuple[dict, dict[str, pl.DataFrame]]:
    """Add inputs, hashes, versions and the read time to a result; write the result files into
    ``out_dir`` (when given) as one set. Returns the JSON-ready result and the tables."""
    progress = progress or _noop
    t0 = time.perf_counter()
    result["timings"] = {"read": read_s, **result["timings"]}
    result.update(
        inputs=inputs,
        hashes=hashes,
        versions=versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if out_dir is None:
        return _jsonable(result), tables
    progress("write", 0, 1)
    files = {f"{name}.csv": _csv(frame) for name, frame in tables.items()}
    with atomic_dir(
        out_dir
    ) as tmp:  # the folder is replaced as a set: no file of an older run stays
        for name, text in files.items():
            write_text_atomic(tmp / name, text)
        result["timings"]["write"] = time.perf_counter() - t0
        result["files"] = sorted(files) + ["results.json"]
        result = _jsonable(result)
        write_json_atomic(tmp / "results.json", result)
    progress("write", 1, 1)
    return result, tables


def _check_out_dir(out_dir: Path) -> Path:
    """Before any work: ``--out`` must be a new folder, or one holding only earlier results
    (it is replaced as a whole), somewhere writable."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file. Fix: pass a folder for the results.")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in RESULT_FILES)
        if others:
            raise InputError(
                f"--out {out_dir} holds other files ({', '.join(others[:3])}{'...' if len(others) > 3 else ''}); "
                "the results replace the folder as a whole. Fix: pass a new folder, or an earlier result folder."
            )
    return check_writable(out_dir)


# --- the Python API (re-exported by cellbench.api; this module, called, is `evaluate`) ---
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
    if isinstance(obj, pl.DataFrame):
        return obj
    try:
        return _as_polars(obj)
    except InputError:
        raise InputError(
            f"{what} must be a polars or pandas DataFrame or a parquet/CSV path (got {type(obj).__name__}). "
            "Fix: pass one of those."
        ) from None


def _note_input(name: str, path, inputs: dict[str, str], hashes: dict[str, str]) -> None:
    """Record an input file read by path: its resolved path and its SHA-256."""
    inputs[name], hashes[name] = str(Path(path).resolve()), sha256_file(path)


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
    _check_options(**_option_subset(options))
    out_dir = None if out is None else _check_out_dir(Path(out))
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
            _note_input("profiles", profiles, inputs, hashes)
            frame = read_profiles(profiles)
        else:
            frame = _frame(profiles, "profiles")
        ids, feats, wells, columns, _names = split_profiles(frame, popts)
        del frame
        meta, extra = wells, {}
        if options["tasks"] is None:
            options["tasks"] = list(PROFILE_TASKS)
    else:
        if _is_path(profiles):
            _note_input("embeddings", profiles, inputs, hashes)
            ids, feats = read_embeddings(profiles)
        else:
            ids, feats = _embeddings_frame(_frame(profiles, "the embeddings"))
        if _is_path(metadata):
            _note_input("metadata", metadata, inputs, hashes)
            meta = read_metadata(metadata)
        else:
            meta = _frame(metadata, "metadata")
        columns = None
        extra = {
            "profile_options": popts if is_profiles_table(meta.columns) else None,
            "target": target,
        }
    read_s = time.perf_counter() - t0
    result, tables = evaluate_core(ids, feats, meta, progress=progress, **options, **extra)
    if columns is not None:
        result["config"]["columns"] = {k: v for k, v in columns.as_dict().items() if k != "notes"}
        result["warnings"] = columns.notes + result["warnings"]
    result, tables = finish(
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


class _CallableModule(types.ModuleType):
    """This module, callable: ``cellbench.evaluate(...)`` is :func:`evaluate`, the Python API
    (the package attribute and the submodule are one object, in any import order)."""

    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
