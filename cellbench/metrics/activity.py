"""Phenotypic activity: do a perturbation's replicate wells retrieve each other against negative
controls? The JUMP Cell Painting standard (Kalinin et al. 2025, copairs; Chandrasekaran et al.
2024, CPJUMP1), computed by copairs itself.

For each treated well, the positives are the other wells of its perturbation and the negatives
are the negative-control wells; its average precision (cosine similarity) ranks them. A
perturbation's mAP is the mean over its wells; its p-value comes from copairs' permutation null
for the same numbers of positives and negatives, corrected over perturbations by
Benjamini-Hochberg. The *fraction retrieved* is the share of perturbations whose corrected
p-value is below ``threshold`` (0.05): CPJUMP1 reports 0.48-0.68 for CRISPR knockouts with
CellProfiler features.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import polars as pl

from cellbench.errors import InputError

_REF = "_reference_index"


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
            "mean_map": float(self.per_perturbation["mean_average_precision"].mean() or 0.0),
            "n_perturbations": self.per_perturbation.height,
            "threshold": self.threshold,
            "null_size": self.null_size,
        }


def phenotypic_activity(
    features: np.ndarray,
    perturbation: np.ndarray,
    is_control: np.ndarray,
    *,
    null_size: int = 100_000,
    threshold: float = 0.05,
    seed: int = 0,
) -> ActivityResult:
    """Phenotypic activity of every non-control perturbation with >= 2 wells (copairs).

    ``features`` (n, d) well profiles; ``perturbation`` (n,) labels; ``is_control`` (n,) bool,
    the negative-control wells (their labels are ignored). Follows copairs' documented recipe:
    each control well gets its own reference index so controls are never positives, and treated
    wells of different perturbations are never negatives of each other.
    """
    import pandas as pd
    from copairs.map import average_precision, mean_average_precision

    x = np.asarray(features, dtype=np.float64)
    pert = np.asarray(perturbation).astype(str)
    ctrl = np.asarray(is_control, dtype=bool)
    if x.ndim != 2 or x.shape[0] != pert.size or pert.size != ctrl.size:
        raise InputError("features, perturbation and is_control must describe the same wells")
    if not np.isfinite(x).all():
        raise InputError("phenotypic activity needs finite features; drop or impute NaN/inf rows")
    if not ctrl.any():
        raise InputError("phenotypic activity needs negative-control wells; mark them as controls")
    labels, counts = np.unique(pert[~ctrl], return_counts=True)
    keep_labels = set(labels[counts >= 2].tolist())
    keep = ctrl | np.isin(pert, list(keep_labels))
    if not keep_labels:
        raise InputError("no perturbation has two or more wells; activity needs replicates")
    meta = pd.DataFrame({"perturbation": np.where(ctrl, "__control__", pert)[keep]})
    meta[_REF] = np.where(ctrl[keep], np.arange(int(keep.sum())), -1)
    sameby = ["perturbation", _REF]
    logging.getLogger("copairs").setLevel(logging.WARNING)
    ap = average_precision(meta, x[keep], pos_sameby=sameby, pos_diffby=[], neg_sameby=[],
                           neg_diffby=sameby, progress_bar=False)
    ap = ap[ap[_REF] == -1]
    maps = mean_average_precision(ap, sameby, null_size=null_size, threshold=threshold, seed=seed,
                                  progress_bar=False)
    n_wells = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    table = pl.DataFrame({
        "perturbation": maps["perturbation"].astype(str).tolist(),
        "mean_average_precision": maps["mean_average_precision"].to_numpy(np.float64),
        "p_value": maps["p_value"].to_numpy(np.float64),
        "corrected_p_value": maps["corrected_p_value"].to_numpy(np.float64),
        "retrieved": maps["below_corrected_p"].to_numpy(bool),
    }).with_columns(
        pl.col("perturbation").replace_strict(n_wells, return_dtype=pl.Int64).alias("n_wells")
    ).select("perturbation", "n_wells", "mean_average_precision", "p_value", "corrected_p_value",
             "retrieved").sort("perturbation")
    fraction = float(table["retrieved"].mean()) if table.height else 0.0
    return ActivityResult(table, fraction, threshold, null_size)
