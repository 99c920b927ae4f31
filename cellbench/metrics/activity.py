"""Phenotypic activity: do a perturbation's replicate wells retrieve each other against negative
controls? The JUMP Cell Painting standard (Kalinin et al. 2025, copairs; Chandrasekaran et al.
2024, CPJUMP1), with copairs' numbers.

For each treated well, the positives are the other wells of its perturbation and the negatives
are the negative-control wells; its average precision (cosine similarity) ranks them. A
perturbation's mAP is the mean over its wells; its p-value comes from copairs' permutation null
for the same numbers of positives and negatives, corrected over perturbations by
Benjamini-Hochberg. The *fraction retrieved* is the share of perturbations whose corrected
p-value is below ``threshold`` (0.05): CPJUMP1 reports 0.48-0.68 for CRISPR knockouts with
CellProfiler features.

Two engines give the same numbers. ``"fast"`` (the default, :mod:`cellbench.metrics.map_exact`)
ranks blocks of wells against all candidates in bounded memory; ``"copairs"`` calls
``copairs.map.average_precision`` and ``mean_average_precision``, which list every pair (memory
grows with treated x control wells) and is refused, with the fix named, when its estimate
exceeds the memory available.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import polars as pl
from copairs.map import average_precision, mean_average_precision

from cellbench.errors import InputError, ResourceError
from cellbench.metrics import map_exact
from cellbench.schema import ACTIVITY_ENGINES

_REF = "_reference_index"
ENGINES: tuple[str, ...] = ACTIVITY_ENGINES
# copairs' peak memory per listed pair: 3.2 GB for 36 M pairs in benchmarks/bench_activity.py
_COPAIRS_BYTES_PER_PAIR = 90


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def copairs_memory_estimate(n_pairs: int, null_size: int, max_total: int, n_confs: int) -> int:
    """Bytes copairs needs: its pair lists and rank lists (``n_pairs``) plus the shuffled index
    matrices of its null (``null_size`` x ``max_total`` per configuration, one per thread)."""
    itemsize = 2 if max_total < 2**16 else 4
    threads = max(1, min(n_confs, os.cpu_count() or 1))
    return _COPAIRS_BYTES_PER_PAIR * n_pairs + null_size * max_total * itemsize * threads


def check_copairs_fits(n_pairs: int, null_size: int, max_total: int, n_confs: int, what: str):
    """Refuse the copairs engine before it starts when its estimate exceeds available memory."""
    need, have = copairs_memory_estimate(n_pairs, null_size, max_total, n_confs), available_memory()
    if need > have:
        raise ResourceError(
            f"copairs would list {n_pairs:,} pairs for {what} and need about {need / 2**30:.1f} GB, "
            f"more than the {have / 2**30:.1f} GB available. Fix: use the fast engine "
            f"(engine='fast', the default; it gives copairs' numbers in bounded memory), or leave "
            f"{what} out (--tasks without activity)."
        )


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")


def _features(features, n: int, engine: str) -> np.ndarray:
    """Profiles as copairs sees them: float64 for copairs; the fast engine keeps float32 (its
    float64 values are what it ranks) and converts only the rows it recomputes."""
    x = np.asarray(features)
    if engine == "copairs" or x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[0] != n:
        return x
    if not np.isfinite(x).all():
        raise InputError("phenotypic activity needs finite features; drop or impute NaN/inf rows")
    if x.shape[0] and not (np.abs(x).max(axis=1) > 0).all():
        raise InputError(
            "a profile is all zeros, so it has no cosine similarity; drop those wells (or fix "
            "the features that produced them)"
        )
    return x


def _within_group_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair ``(a, b)``, ``a != b``, of positions sharing a code."""
    m = len(codes)
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    starts = np.searchsorted(sc, sc, side="left")
    size = np.searchsorted(sc, sc, side="right") - starts
    a = np.repeat(np.arange(m), size)
    b = (
        np.repeat(starts, size)
        + np.arange(int(size.sum()))
        - np.repeat(np.cumsum(size) - size, size)
    )
    keep = a != b
    return order[a[keep]], order[b[keep]]


@dataclass(frozen=True)
class ActivityResult:
    """Per-perturbation table (perturbation, n_wells, mean_average_precision, p_value,
    corrected_p_value, retrieved) and the fraction retrieved."""

    per_perturbation: pl.DataFrame
    fraction_retrieved: float
    threshold: float
    null_size: int

    def summary(self) -> dict:
        return {
            "fraction_retrieved": self.fraction_retrieved,
            "mean_map": float(
                cast("float | None", self.per_perturbation["mean_average_precision"].mean()) or 0.0
            ),
            "n_perturbations": self.per_perturbation.height,
            "threshold": self.threshold,
            "null_size": self.null_size,
        }


def _scores_table(maps, label: str) -> pl.DataFrame:
    """copairs' ``mean_average_precision`` output as a polars table keyed by ``label``."""
    return pl.DataFrame(
        {
            label: maps[label].astype(str).tolist(),
            "mean_average_precision": maps["mean_average_precision"].to_numpy(np.float64),
            "p_value": maps["p_value"].to_numpy(np.float64),
            "corrected_p_value": maps["corrected_p_value"].to_numpy(np.float64),
            "retrieved": maps["below_corrected_p"].to_numpy(bool),
        }
    )


def phenotypic_activity(
    features: np.ndarray,
    perturbation: np.ndarray,
    is_control: np.ndarray,
    *,
    null_size: int = 100_000,
    threshold: float = 0.05,
    seed: int = 0,
    engine: str = "fast",
) -> ActivityResult:
    """Phenotypic activity of every non-control perturbation with >= 2 wells (copairs' numbers).

    ``features`` (n, d) well profiles; ``perturbation`` (n,) labels; ``is_control`` (n,) bool,
    the negative-control wells (their labels are ignored). Follows copairs' documented recipe:
    each control well gets its own reference index so controls are never positives, and treated
    wells of different perturbations are never negatives of each other. ``engine``: ``"fast"``
    (block-wise, bounded memory, equal to copairs) or ``"copairs"`` (copairs itself).
    """
    _check_engine(engine)
    pert = np.asarray(perturbation).astype(str)
    ctrl = np.asarray(is_control, dtype=bool)
    x = _features(features, pert.size, engine)
    if x.ndim != 2 or x.shape[0] != pert.size or pert.size != ctrl.size:
        raise InputError("features, perturbation and is_control must describe the same wells")
    if not ctrl.any():
        raise InputError("phenotypic activity needs negative-control wells; mark them as controls")
    labels, counts = np.unique(pert[~ctrl], return_counts=True)
    keep_labels = set(labels[counts >= 2].tolist())
    keep = ctrl | np.isin(pert, list(keep_labels))
    if not keep_labels:
        raise InputError("no perturbation has two or more wells; activity needs replicates")
    n_wells = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    if engine == "copairs":
        maps = _activity_copairs(x[keep], pert[keep], ctrl[keep], null_size, threshold, seed)
    else:
        maps = _activity_fast(x, pert, ctrl, keep, null_size, threshold, seed)
    table = (
        _scores_table(maps, "perturbation")
        .with_columns(
            pl.col("perturbation").replace_strict(n_wells, return_dtype=pl.Int64).alias("n_wells")
        )
        .select(
            "perturbation",
            "n_wells",
            "mean_average_precision",
            "p_value",
            "corrected_p_value",
            "retrieved",
        )
        .sort("perturbation")
    )
    fraction = float(cast(float, table["retrieved"].mean())) if table.height else 0.0
    return ActivityResult(table, fraction, threshold, null_size)


def _activity_fast(x, pert, ctrl, keep, null_size, threshold, seed):
    """Treated wells of the kept perturbations against all control wells, block by block."""
    queries = np.nonzero(keep & ~ctrl)[0]
    controls = np.nonzero(ctrl)[0]
    _, codes = np.unique(pert[queries], return_inverse=True)
    a, b = _within_group_pairs(codes.ravel())
    ap, n_pos, n_neg = map_exact.exact_average_precision(x, queries, controls, a, queries[b])
    maps = map_exact.map_pvalues(
        pert[queries], ap, n_pos, n_pos + n_neg, null_size=null_size, seed=seed, threshold=threshold
    )
    return maps.rename(columns={"group": "perturbation"})


def _activity_copairs(x, pert, ctrl, null_size, threshold, seed):
    """copairs itself, after checking that its pair lists fit in memory."""
    reps = np.unique(pert[~ctrl], return_counts=True)[1]
    n_ctrl = int(ctrl.sum())
    check_copairs_fits(
        int((reps * (reps - 1) // 2).sum()) + int(reps.sum()) * n_ctrl,
        null_size,
        int(reps.max()) - 1 + n_ctrl,
        len(np.unique(reps)),
        "phenotypic activity",
    )
    meta = pd.DataFrame({"perturbation": np.where(ctrl, "__control__", pert)})
    meta[_REF] = np.where(ctrl, np.arange(len(pert)), -1)
    sameby = ["perturbation", _REF]
    logging.getLogger("copairs").setLevel(logging.WARNING)
    ap = average_precision(
        meta,
        x,
        pos_sameby=sameby,
        pos_diffby=[],
        neg_sameby=[],
        neg_diffby=sameby,
        progress_bar=False,
    )
    ap = ap[ap[_REF] == -1]
    return mean_average_precision(
        ap, sameby, null_size=null_size, threshold=threshold, seed=seed, progress_bar=False
    )


# ---------------------------------------------------------------------------------------------
# phenotypic consistency and the well-table tasks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsistencyResult:
    """Per-target table (target, n_perturbations, mean_average_precision, p_value,
    corrected_p_value, retrieved) and the fraction of targets retrieved."""

    per_target: pl.DataFrame
    fraction_retrieved: float
    threshold: float
    null_size: int


def phenotypic_consistency(
    features: np.ndarray,
    target: np.ndarray,
    compound: np.ndarray | None = None,
    *,
    null_size: int = 100_000,
    threshold: float = 0.05,
    seed: int = 0,
    engine: str = "fast",
) -> ConsistencyResult:
    """Phenotypic consistency (copairs' numbers): do perturbations sharing a target retrieve
    each other?

    ``features`` (n, d) perturbation-level consensus profiles (one row per perturbation);
    ``target`` (n,) their annotation. Positives: perturbations with the same target; negatives:
    perturbations with a different target (copairs' recipe, Kalinin et al. 2025). ``compound``
    (optional, n): a perturbation's base identity (e.g. the compound across its doses); two rows
    of the same base are never positives. Only targets with two or more bases are scored.
    ``engine`` as in :func:`phenotypic_activity`.
    """
    _check_engine(engine)
    tgt = np.asarray(target).astype(str)
    base = np.arange(len(tgt)).astype(str) if compound is None else np.asarray(compound).astype(str)
    x = _features(features, tgt.size, engine)
    if x.ndim != 2 or x.shape[0] != tgt.size or tgt.size != base.size:
        raise InputError("features, target and compound must describe the same perturbations")
    frame = pl.DataFrame({"t": tgt, "b": base})
    n_bases = frame.group_by("t").agg(pl.col("b").n_unique().alias("n"))
    scored = set(n_bases.filter(pl.col("n") >= 2)["t"].to_list())
    keep = np.isin(tgt, list(scored))
    if len(scored) < 2:
        raise InputError(
            f"only {len(scored)} target(s) have two or more perturbations; consistency needs at least two"
        )
    if engine == "copairs":
        maps = _consistency_copairs(x[keep], tgt[keep], base[keep], null_size, threshold, seed)
    else:
        maps = _consistency_fast(x, tgt, base, keep, null_size, threshold, seed)
    counts = dict(zip(*np.unique(tgt[keep], return_counts=True), strict=True))
    table = (
        _scores_table(maps, "target")
        .with_columns(
            pl.col("target")
            .replace_strict({str(k): int(v) for k, v in counts.items()}, return_dtype=pl.Int64)
            .alias("n_perturbations")
        )
        .select(
            "target",
            "n_perturbations",
            "mean_average_precision",
            "p_value",
            "corrected_p_value",
            "retrieved",
        )
        .sort("target")
    )
    fraction = float(cast(float, table["retrieved"].mean())) if table.height else 0.0
    return ConsistencyResult(table, fraction, threshold, null_size)


def _consistency_fast(x, tgt, base, keep, null_size, threshold, seed):
    """Every kept perturbation against all others: positives share the target but not the base,
    negatives have another target."""
    rows = np.nonzero(keep)[0]
    _, tcode = np.unique(tgt[rows], return_inverse=True)
    tcode = tcode.ravel()
    a, b = _within_group_pairs(tcode)
    differ = base[rows][a] != base[rows][b]
    a, b = a[differ], b[differ]

    def negatives(q: np.ndarray) -> np.ndarray:
        return tcode[q][:, None] != tcode[None, :]

    ap, n_pos, n_neg = map_exact.exact_average_precision(x, rows, rows, a, rows[b], negatives)
    maps = map_exact.map_pvalues(
        tgt[rows], ap, n_pos, n_pos + n_neg, null_size=null_size, seed=seed, threshold=threshold
    )
    return maps.rename(columns={"group": "target"})


def _consistency_copairs(x, tgt, base, null_size, threshold, seed):
    """copairs itself, after checking that its pair lists fit in memory."""
    n = len(tgt)
    check_copairs_fits(n * (n - 1) // 2, null_size, n, n, "phenotypic consistency")
    meta = pd.DataFrame({"target": tgt, "base": base})
    logging.getLogger("copairs").setLevel(logging.WARNING)
    ap = average_precision(
        meta,
        x,
        pos_sameby=["target"],
        pos_diffby=["base"],
        neg_sameby=[],
        neg_diffby=["target"],
        progress_bar=False,
    )
    return mean_average_precision(
        ap, ["target"], null_size=null_size, threshold=threshold, seed=seed, progress_bar=False
    )


_SEP = "\x1f"
ACTIVITY_COLUMNS: tuple[str, ...] = (
    "perturbation_type",
    "perturbation",
    "concentration",
    "n_wells",
    "mean_average_precision",
    "p_value",
    "corrected_p_value",
    "retrieved",
)
CONSISTENCY_COLUMNS: tuple[str, ...] = (
    "perturbation_type",
    "target",
    "n_perturbations",
    "mean_average_precision",
    "p_value",
    "corrected_p_value",
    "retrieved",
)


def _units(wells: pl.DataFrame) -> np.ndarray:
    """One label per well: perturbation at its concentration (genes: the perturbation)."""
    conc = wells["concentration"].cast(pl.Float64)
    return (
        wells.select(
            pl.concat_str(
                [pl.col("perturbation").cast(pl.Utf8), conc.cast(pl.Utf8).fill_null("").alias("c")],
                separator=_SEP,
            )
        )
        .to_series()
        .to_numpy()
        .astype(str)
    )


def activity_table(
    features: np.ndarray,
    wells: pl.DataFrame,
    *,
    null_size: int = 100_000,
    threshold: float = 0.05,
    seed: int = 0,
    engine: str = "fast",
) -> tuple[pl.DataFrame, dict]:
    """Phenotypic activity of a well table (``schema.WELL_COLUMNS``), per perturbation type.

    A perturbation at one concentration is one unit (a gene pools its guides); its wells are the
    replicates, the negative-control wells of the same perturbation type are the negatives, and
    p-values are corrected within each type; ``engine`` as in :func:`phenotypic_activity`.
    Returns ``(table of ACTIVITY_COLUMNS, scores)``."""
    units = _units(wells)
    types = wells["perturbation_type"].to_numpy().astype(str)
    ctrl = wells["is_control"].to_numpy().astype(bool)
    frames, per_type = [], {}
    for ptype in sorted(set(types[~ctrl].tolist())):
        rows = types == ptype
        if not (ctrl & rows).any():
            raise InputError(
                f"the {ptype} wells have no negative-control wells of their own type, so their activity "
                "cannot be scored. Fix: include those controls, or pass --control COL=VALUE naming them."
            )
        try:
            res = phenotypic_activity(
                features[rows],
                units[rows],
                ctrl[rows],
                null_size=null_size,
                threshold=threshold,
                seed=seed,
                engine=engine,
            )
        except InputError as exc:
            if "two or more wells" not in str(exc):
                raise
            per_type[ptype] = {"skipped": f"no {ptype} perturbation has two or more wells"}
            continue
        t = res.per_perturbation
        parts = (
            t["perturbation"]
            .str.split_exact(_SEP, 1)
            .struct.rename_fields(["p", "c"])
            .struct.unnest()
        )
        frames.append(
            t.with_columns(
                pl.lit(ptype).alias("perturbation_type"),
                parts["p"].alias("perturbation"),
                parts["c"].replace("", None).cast(pl.Float64).alias("concentration"),
            ).select(ACTIVITY_COLUMNS)
        )
        per_type[ptype] = res.summary()
    schema = {
        "perturbation_type": pl.Utf8,
        "perturbation": pl.Utf8,
        "concentration": pl.Float64,
        "n_wells": pl.Int64,
        "mean_average_precision": pl.Float64,
        "p_value": pl.Float64,
        "corrected_p_value": pl.Float64,
        "retrieved": pl.Boolean,
    }
    table = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    table = table.sort(["perturbation_type", "perturbation", "concentration"], nulls_last=True)
    scores = {
        "fraction_retrieved": float(cast(float, table["retrieved"].mean()))
        if table.height
        else 0.0,
        "mean_map": float(cast("float | None", table["mean_average_precision"].mean()) or 0.0),
        "n_perturbations": table.height,
        "n_retrieved": int(table["retrieved"].sum()),
        "threshold": threshold,
        "null_size": null_size,
        "per_type": per_type,
    }
    return table, scores


def consensus_profiles(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median profile per label (pycytominer's consensus default): ``(sorted labels, profiles)``."""
    uniq, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    x = np.asarray(features)
    out = np.empty((len(uniq), x.shape[1]), dtype=np.float64)
    for k in range(len(uniq)):
        out[k] = np.median(x[order[bounds[k] : bounds[k + 1]]], axis=0)
    return uniq, out


def consistency_table(
    features: np.ndarray,
    wells: pl.DataFrame,
    activity: pl.DataFrame,
    *,
    null_size: int = 100_000,
    threshold: float = 0.05,
    seed: int = 0,
    engine: str = "fast",
) -> tuple[pl.DataFrame, dict, dict[str, str]]:
    """Phenotypic consistency of the *active* perturbations of a well table with a ``target``
    column, per perturbation type: ``(table of CONSISTENCY_COLUMNS, scores, skipped types)``.

    Consensus profile = median of a unit's wells (as in :func:`activity_table`); positives share
    the target, negatives have another; a compound's doses are never positives of each other."""
    if "target" not in wells.columns:
        raise InputError("the well table has no target column")
    units = _units(wells)
    ctrl = wells["is_control"].to_numpy().astype(bool)
    active = activity.filter(pl.col("retrieved")).select(
        "perturbation_type",
        pl.concat_str(
            [pl.col("perturbation"), pl.col("concentration").cast(pl.Utf8).fill_null("")],
            separator=_SEP,
        ).alias("unit"),
    )
    types = wells["perturbation_type"].to_numpy().astype(str)
    target = wells["target"].to_numpy()
    frames, per_type, skipped = [], {}, {}
    for ptype in sorted(set(types[~ctrl].tolist())):
        keep_units = set(active.filter(pl.col("perturbation_type") == ptype)["unit"].to_list())
        rows = (types == ptype) & ~ctrl & np.isin(units, list(keep_units))
        labels, profiles = consensus_profiles(features[rows], units[rows])
        # one target per unit: its wells' annotation (several values -> an error naming them)
        pairs = pl.DataFrame({"u": units[rows], "t": target[rows]}).unique().drop_nulls()
        pairs = pairs.filter(pl.col("t") != "")
        multi = pairs.filter(pl.col("u").is_duplicated())
        if multi.height:
            u = multi["u"][0].split(_SEP)[0]
            raise InputError(
                f"perturbation '{u}' has several target annotations {multi.filter(pl.col('u') == multi['u'][0])['t'].to_list()}. "
                "Fix: give each perturbation one target value (or pass --target COL)."
            )
        lookup = dict(pairs.iter_rows())
        has = np.array([lab in lookup for lab in labels], dtype=bool)
        tgt = np.array([lookup.get(lab, "") for lab in labels], dtype=object)
        base = np.array([lab.split(_SEP)[0] for lab in labels], dtype=object)
        try:
            res = phenotypic_consistency(
                profiles[has],
                tgt[has].astype(str),
                base[has].astype(str),
                null_size=null_size,
                threshold=threshold,
                seed=seed,
                engine=engine,
            )
        except InputError as exc:
            skipped[ptype] = f"{int(has.sum())} active annotated {ptype} perturbations: {exc}"
            continue
        frames.append(
            res.per_target.with_columns(pl.lit(ptype).alias("perturbation_type")).select(
                CONSISTENCY_COLUMNS
            )
        )
        per_type[ptype] = {
            "fraction_retrieved": res.fraction_retrieved,
            "n_targets": res.per_target.height,
            "n_active_annotated": int(has.sum()),
        }
    schema = {
        "perturbation_type": pl.Utf8,
        "target": pl.Utf8,
        "n_perturbations": pl.Int64,
        "mean_average_precision": pl.Float64,
        "p_value": pl.Float64,
        "corrected_p_value": pl.Float64,
        "retrieved": pl.Boolean,
    }
    table = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    scores: dict[str, Any] = {
        "fraction_retrieved": float(cast(float, table["retrieved"].mean()))
        if table.height
        else None,
        "mean_map": float(cast(float, table["mean_average_precision"].mean()))
        if table.height
        else None,
        "n_targets": table.height,
        "n_retrieved": int(table["retrieved"].sum()) if table.height else 0,
        "threshold": threshold,
        "null_size": null_size,
        "consensus": "median of the unit's wells",
        "per_type": per_type,
    }
    if skipped:
        scores["skipped_types"] = skipped
    return table.sort(["perturbation_type", "target"]), scores, skipped
