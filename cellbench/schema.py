"""The shared table schemas: the contract between data, embedding and evaluation.

Every stage passes plain polars tables with these columns, so each stage can be
run, cached and tested alone.

Well metadata follows the real RxRx3-core release (``metadata_rxrx3_core.csv``)
so that ``cellbench evaluate`` reads the real file and the synthetic screen alike.
"""

from __future__ import annotations

# --- the real RxRx3-core metadata file -------------------------------------------------
RXRX3_METADATA_COLUMNS: tuple[str, ...] = (
    "well_id",  # f"{experiment_name}_{plate}_{address}"
    "experiment_name",  # batch, e.g. "gene-001" or "compound-003"
    "plate",  # integer plate number within the experiment
    "address",  # well address, e.g. "B02"
    "gene",  # gene symbol or "EMPTY_control"/"CRISPR_control" (empty for compounds)
    "treatment",  # guide ("RPLP2_guide_4"), compound name, "EMPTY_control", "CRISPR_control"
    "SMILES",  # compound structure (may be empty)
    "concentration",  # µM for compounds, empty for CRISPR
    "perturbation_type",  # "CRISPR" or "COMPOUND"
    "cell_type",  # "HUVEC" in RxRx3-core
)
CRISPR = "CRISPR"
COMPOUND = "COMPOUND"
ORF = "ORF"  # gene overexpression (JUMP); read from profiles, not part of RxRx3-core
PERTURBATION_TYPES: tuple[str, ...] = (CRISPR, ORF, COMPOUND)
CONTROL_TREATMENT = "EMPTY_control"  # the negative control used for alignment
# Canonical compound concentrations (µM) of the RxRx3-core benchmark.
CANONICAL_CONCENTRATIONS: tuple[float, ...] = (0.0025, 0.01, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0)

# --- tasks -----------------------------------------------------------------------------
#: The tasks ``cellbench evaluate`` scores from a well-embeddings table (and ``cellbench run``).
EVAL_TASKS: tuple[str, ...] = ("gene_gene", "compound_gene", "batch")
#: Every task ``cellbench evaluate`` can score: also phenotypic activity and consistency.
SCORED_TASKS: tuple[str, ...] = (*EVAL_TASKS, "activity", "consistency")
#: engines of phenotypic activity/consistency: cellbench's exact block engine, copairs itself
ACTIVITY_ENGINES: tuple[str, ...] = ("fast", "copairs")
#: Every task a stored result can hold: the scored tasks and the training's ``health``.
TASKS: tuple[str, ...] = (*SCORED_TASKS, "health")

# --- the normalised well table every stage uses -----------------------------------------
# Produced from any dataset's metadata by its loader (or by cellbench.maps.labels for
# RxRx3-core metadata). One row per well.
WELL_COLUMNS: dict[str, str] = {
    "well_id": "str: unique id of the well",
    "batch": "str: experiment / batch (alignment unit)",
    "plate": "str: plate id (unique within the batch)",
    "well": "str: well address, e.g. B02",
    "perturbation": "str: gene symbol, compound name, or control label",
    "perturbation_type": "str: CRISPR | COMPOUND (| ORF from JUMP-style profiles)",
    "concentration": "f64 | null: µM (compounds), null for genes",
    "is_control": "bool: a negative-control well used to fit the alignment",
}
#: optional extra column of the well table: the annotation phenotypic consistency groups by
TARGET_COLUMN = "target"

# --- site (field of view) table of an image dataset ---------------------------------------
SITE_COLUMNS: dict[str, str] = {
    "site_id": "str: f'{well_id}_s{site}'",
    "well_id": "str: the well it belongs to",
    "site": "i64: field-of-view index within the well",
}

# --- well-level embedding parquet (as released with RxRx3-core) ---------------------------
EMBEDDING_ID_COLUMN = "well_id"
FEATURE_PREFIX = "feature_"


def feature_columns(n: int) -> list[str]:
    """``feature_0 .. feature_{n-1}``: the column names of an embedding parquet."""
    return [f"{FEATURE_PREFIX}{i}" for i in range(n)]
