"""Build a perturbation map: align well embeddings on controls, then aggregate.

``build_map(features, wells, align="pca-centerscale")`` follows docs/metrics.md ("Map building") in order:
alignment fitted on each batch's control wells -> drop compound-plate controls -> mean per
``(perturbation_type, perturbation, concentration)`` at canonical concentrations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cellbench.maps.aggregate import AggregateReport, aggregate_wells
from cellbench.maps.align import make_aligner


@dataclass
class MapResult:
    """The map table, its features and what was dropped on the way."""

    table: pl.DataFrame
    features: np.ndarray
    report: AggregateReport
    aligned_wells: np.ndarray


def align_wells(
    features: np.ndarray, wells: pl.DataFrame, align: str = "pca-centerscale"
) -> np.ndarray:
    """Aligned well features (same row order as ``wells``)."""
    aligner = make_aligner(align)
    batch = wells["batch"].to_numpy()
    control = wells["is_control"].to_numpy()
    return aligner.fit_transform(features, batch, control)


def build_map_full(
    features: np.ndarray, wells: pl.DataFrame, align: str = "pca-centerscale"
) -> MapResult:
    """Like :func:`build_map` but also returns the aligned wells and the aggregation report."""
    aligned = align_wells(features, wells, align)
    table, feats, report = aggregate_wells(aligned, wells)
    return MapResult(table=table, features=feats, report=report, aligned_wells=aligned)


def build_map(
    features: np.ndarray, wells: pl.DataFrame, align: str = "pca-centerscale"
) -> tuple[pl.DataFrame, np.ndarray]:
    """``(map table, map features)`` from well features and the normalised well table."""
    result = build_map_full(features, wells, align)
    return result.table, result.features
