"""RxRx3-core labelling rules: the release's metadata table -> the normalised well table.

Rules (the public EFAAR RxRx3-core notebook of ``efaar_benchmarking``; docs/metrics.md,
"Map building"):

* ``perturbation = treatment.split("_")[0]`` unless the treatment contains ``_control``
  (then the treatment itself): guides ``RPLP2_guide_4`` collapse to the gene ``RPLP2``.
  The split applies to CRISPR rows only; compound names are kept whole (none of the
  benchmark's compound names holds an underscore, so this changes nothing on the release
  and protects a user's own compound names).
* ``EMPTY_control`` is the negative control (on CRISPR and compound plates alike) used to fit
  the alignment of its batch; ``CRISPR_control`` is an ordinary perturbation row.
* batch = ``experiment_name``; plate is kept unique within its batch; concentration is µM for
  compounds and null for CRISPR rows.
"""

from __future__ import annotations

import polars as pl

from cellbench.errors import InputError
from cellbench.schema import (
    COMPOUND,
    CONTROL_TREATMENT,
    CRISPR,
    RXRX3_METADATA_COLUMNS,
    WELL_COLUMNS,
)

#: The metadata columns the labelling rules need (the rest are carried along if present).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "well_id",
    "experiment_name",
    "plate",
    "address",
    "treatment",
    "concentration",
    "perturbation_type",
)


def _check_columns(metadata: pl.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in metadata.columns]
    if missing:
        raise InputError(
            f"the metadata lacks the column(s) {missing}; it must have the RxRx3-core columns "
            f"{list(RXRX3_METADATA_COLUMNS)}. Fix: pass metadata_rxrx3_core.csv from the release "
            "(or a table in the same layout)."
        )


def wells_from_rxrx3(metadata: pl.DataFrame) -> pl.DataFrame:
    """Apply the RxRx3-core labelling rules; return the table of ``schema.WELL_COLUMNS``.

    Raises :class:`InputError` for missing columns, empty or duplicate well ids, empty
    treatments and perturbation types other than CRISPR / COMPOUND.
    """
    _check_columns(metadata)
    md = metadata.with_columns(
        pl.col("well_id").cast(pl.Utf8),
        pl.col("experiment_name").cast(pl.Utf8),
        pl.col("plate").cast(pl.Utf8),
        pl.col("address").cast(pl.Utf8),
        pl.col("treatment").cast(pl.Utf8),
        pl.col("perturbation_type").cast(pl.Utf8).str.strip_chars(),
    )
    if md["well_id"].null_count() or (md["well_id"] == "").any():
        raise InputError(
            "the metadata has empty well ids. Fix: every row needs its well_id "
            "(f'{experiment_name}_{plate}_{address}')."
        )
    dup = md["well_id"].is_duplicated()
    if dup.any():
        examples = md.filter(dup)["well_id"].unique().sort().head(3).to_list()
        raise InputError(
            f"the metadata lists {int(dup.sum())} rows with duplicate well ids (e.g. {examples}). "
            "Fix: keep one row per well."
        )
    bad_type = md.filter(
        ~pl.col("perturbation_type").is_in([CRISPR, COMPOUND])
        | pl.col("perturbation_type").is_null()
    )
    if bad_type.height:
        values = bad_type["perturbation_type"].unique().to_list()[:5]
        raise InputError(
            f"perturbation_type must be '{CRISPR}' or '{COMPOUND}'; found {values}. "
            "Fix: correct those rows of the metadata."
        )
    if md["treatment"].null_count() or (md["treatment"] == "").any():
        raise InputError(
            "some metadata rows have an empty treatment. Fix: fill the treatment column "
            "(guide, compound name, EMPTY_control or CRISPR_control)."
        )
    if md["experiment_name"].null_count():
        raise InputError("some metadata rows have no experiment_name (the batch). Fix: fill it.")

    treatment = pl.col("treatment")
    is_crispr = pl.col("perturbation_type") == CRISPR
    perturbation = (
        pl.when(treatment.str.contains("_control", literal=True))
        .then(treatment)
        .when(is_crispr)
        .then(treatment.str.split("_").list.first())
        .otherwise(treatment)
    )
    concentration = (
        pl.when(is_crispr)
        .then(pl.lit(None, dtype=pl.Float64))
        .otherwise(pl.col("concentration").cast(pl.Float64, strict=False))
    )
    wells = md.select(
        pl.col("well_id"),
        pl.col("experiment_name").alias("batch"),
        pl.col("plate"),
        pl.col("address").alias("well"),
        perturbation.alias("perturbation"),
        pl.col("perturbation_type"),
        concentration.alias("concentration"),
        (treatment == CONTROL_TREATMENT).alias("is_control"),
    )
    assert tuple(wells.columns) == tuple(WELL_COLUMNS)
    return wells
