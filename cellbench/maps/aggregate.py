"""Well -> perturbation aggregation (docs/metrics.md, "Map building").

Wells are grouped by ``(perturbation_type, perturbation, concentration)`` and averaged:
genes pool all their guides and batches; compounds stay per concentration. Compound-plate
controls are dropped (they only serve the alignment); the CRISPR-plate ``EMPTY_control`` stays
as one map row. Compound wells whose concentration is not one of the canonical RxRx3-core
concentrations (``schema.CANONICAL_CONCENTRATIONS``) are dropped with a warning and counted.

The mean is one sparse (groups x wells) matrix product, summed in float64 over contiguous row
blocks so a release-sized float32 table is never copied whole.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from cellbench.schema import CANONICAL_CONCENTRATIONS, COMPOUND

#: The map table's key columns, in sort order.
MAP_KEYS: tuple[str, ...] = ("perturbation_type", "perturbation", "concentration")


@dataclass
class AggregateReport:
    """What aggregation dropped, to be shown to the user and stored with the result."""

    n_wells_in: int
    n_compound_controls_dropped: int
    n_noncanonical_dropped: int
    noncanonical_values: list[float]

    def as_dict(self) -> dict:
        return {
            "n_wells_in": self.n_wells_in,
            "n_compound_controls_dropped": self.n_compound_controls_dropped,
            "n_noncanonical_dropped": self.n_noncanonical_dropped,
            "noncanonical_values": self.noncanonical_values,
        }


def canonical_concentration(values: pl.Series, rtol: float = 1e-6) -> pl.Series:
    """Snap each value to its canonical concentration (within ``rtol``), else null."""
    x = values.cast(pl.Float64).to_numpy()
    canon = np.asarray(CANONICAL_CONCENTRATIONS)
    with np.errstate(invalid="ignore"):
        hit = np.isclose(x[:, None], canon[None, :], rtol=rtol, atol=0.0)
    out = np.where(hit.any(axis=1), canon[np.argmax(hit, axis=1)], np.nan)
    return pl.Series(values.name, out).fill_nan(None)


def aggregate_wells(
    features: np.ndarray, wells: pl.DataFrame, *, block: int = 32768
) -> tuple[pl.DataFrame, np.ndarray, AggregateReport]:
    """Mean of the (aligned) well features per perturbation.

    Returns the map table (``MAP_KEYS`` + ``n_wells``, sorted by the keys), its features
    (one row per map row; float32 for float32 wells, else float64) and an
    :class:`AggregateReport`.
    """
    if len(features) != wells.height:
        raise ValueError("features and wells must have the same number of rows")
    is_compound = pl.col("perturbation_type") == COMPOUND
    table = wells.select(
        pl.col("perturbation_type"),
        pl.col("perturbation"),
        pl.col("concentration"),
        pl.col("is_control"),
    ).with_row_index("_row")
    drop_ctrl = table.filter(is_compound & pl.col("is_control"))
    table = table.filter(~(is_compound & pl.col("is_control")))
    snapped = canonical_concentration(table["concentration"])
    table = table.with_columns(
        pl.when(is_compound).then(snapped).otherwise(pl.lit(None, dtype=pl.Float64)).alias("_canon")
    )
    stray = table.filter(is_compound & pl.col("_canon").is_null())
    if stray.height:
        values = sorted({float(v) for v in stray["concentration"].drop_nulls().to_list()})
        n_null = stray["concentration"].null_count()
        warnings.warn(
            f"dropped {stray.height} compound wells at non-canonical concentrations "
            f"{values[:10]}{' ...' if len(values) > 10 else ''}"
            f"{f' ({n_null} without a concentration)' if n_null else ''}; the benchmark uses "
            f"only {list(CANONICAL_CONCENTRATIONS)} µM",
            stacklevel=2,
        )
        table = table.filter(~(is_compound & pl.col("_canon").is_null()))
    else:
        values = []
    report = AggregateReport(
        n_wells_in=wells.height,
        n_compound_controls_dropped=drop_ctrl.height,
        n_noncanonical_dropped=stray.height,
        noncanonical_values=values,
    )
    table = table.drop("concentration").rename({"_canon": "concentration"})
    keys = (
        table.select(MAP_KEYS)
        .unique()
        .sort(list(MAP_KEYS), nulls_last=False)
        .with_row_index("_group")
    )
    table = table.join(keys, on=list(MAP_KEYS), how="left", nulls_equal=True)
    rows = table["_row"].to_numpy()
    group = table["_group"].to_numpy()
    n_groups = keys.height
    counts = np.bincount(group, minlength=n_groups).astype(np.float64)
    weights = sp.csc_matrix((1.0 / counts[group], (group, rows)), shape=(n_groups, len(features)))
    out = np.zeros((n_groups, features.shape[1]), dtype=np.float64)
    for start in range(0, len(features), block):  # contiguous row blocks, summed in float64
        stop = min(start + block, len(features))
        out += weights[:, start:stop] @ np.asarray(features[start:stop], dtype=np.float64)
    if features.dtype == np.float32:
        # float32 wells (the released embeddings) give a float32 map, as averaging them with
        # numpy in the reference notebooks does; the sums themselves are taken in float64
        out = out.astype(np.float32)
    map_table = keys.drop("_group").with_columns(pl.Series("n_wells", counts.astype(np.int64)))
    return map_table, out, report
