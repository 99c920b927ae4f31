"""JUMP-style profiles (pycytominer conventions) -> the normalised well table.

A profiles table holds one row per well: ``Metadata_*`` columns and numeric feature columns
(every column without the ``Metadata_`` prefix is a feature), as written by pycytominer and
released for JUMP Cell Painting (cpg0016; CPJUMP1, Chandrasekaran et al. 2024). The columns
are found by convention and each can be named explicitly:

============== ================================================= =========================
well field     looked for (first present)                        option
============== ================================================= =========================
plate          ``Metadata_Plate``                                ``--plate COL``
well           ``Metadata_Well``                                 ``--well COL``
batch          ``Metadata_Batch``, ``Metadata_Source``           ``--batch COL``
               (else the plate: alignment per plate)
perturbation   ``Metadata_JCP2022``, ``Metadata_broad_sample``,  ``--perturbation COL``
               ``Metadata_Symbol``
control        ``Metadata_pert_type == negcon``                  ``--control COL=VALUE``
type           ``Metadata_perturbation_type``,                   ``--perturbation-type``
               ``Metadata_experiment_type``                      ``CRISPR|ORF|COMPOUND|COL``
concentration  ``Metadata_concentration``,                       (optional)
               ``Metadata_mmoles_per_liter``
target         ``Metadata_target``, ``Metadata_gene``,           ``--target COL``
               ``Metadata_Symbol`` (never the perturbation's)    (optional)
============== ================================================= =========================

Positive controls (``poscon``) are ordinary perturbations. The well id is the table's
``well_id`` / ``Metadata_well_id`` column when it has one, else ``{batch}_{plate}_{well}``.
Every mismatch raises :class:`InputError` naming the column and the option that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from cellbench.errors import InputError
from cellbench.schema import PERTURBATION_TYPES, TARGET_COLUMN, WELL_COLUMNS

META_PREFIX = "Metadata_"
PLATE_CANDIDATES: tuple[str, ...] = ("Metadata_Plate",)
WELL_CANDIDATES: tuple[str, ...] = ("Metadata_Well",)
BATCH_CANDIDATES: tuple[str, ...] = ("Metadata_Batch", "Metadata_Source")
PERTURBATION_CANDIDATES: tuple[str, ...] = (
    "Metadata_JCP2022",
    "Metadata_broad_sample",
    "Metadata_Symbol",
)
TYPE_CANDIDATES: tuple[str, ...] = ("Metadata_perturbation_type", "Metadata_experiment_type")
CONCENTRATION_CANDIDATES: tuple[str, ...] = ("Metadata_concentration", "Metadata_mmoles_per_liter")
TARGET_CANDIDATES: tuple[str, ...] = ("Metadata_target", "Metadata_gene", "Metadata_Symbol")
ID_CANDIDATES: tuple[str, ...] = ("well_id", "Metadata_well_id")
DEFAULT_CONTROL = "Metadata_pert_type=negcon"


@dataclass(frozen=True)
class ProfileOptions:
    """Explicit column choices (``None``: found by convention, see the module table)."""

    perturbation: str | None = None
    batch: str | None = None
    plate: str | None = None
    well: str | None = None
    control: str | None = None  # "COL=VALUE"
    target: str | None = None
    perturbation_type: str | None = None  # CRISPR | ORF | COMPOUND (whole table) or a column

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ProfileColumns:
    """The columns a profiles table was read with (recorded in every result)."""

    plate: str
    well: str
    batch: str
    perturbation: str
    control: str
    perturbation_type: str
    concentration: str | None = None
    target: str | None = None
    well_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def is_profiles_table(columns) -> bool:
    """Does a table follow the ``Metadata_*`` convention?"""
    return any(str(c).startswith(META_PREFIX) for c in columns)


def _pick(columns, explicit: str | None, candidates, what: str, flag: str, required: bool = True):
    if explicit is not None:
        if explicit not in columns:
            raise InputError(
                f"{flag} {explicit}: the table has no column '{explicit}' (its metadata columns: "
                f"{_meta_list(columns)}). Fix: pass {flag} with one of its columns."
            )
        return explicit
    for c in candidates:
        if c in columns:
            return c
    if required:
        raise InputError(
            f"no {what} column: looked for {list(candidates)} (the table's metadata columns: "
            f"{_meta_list(columns)}). Fix: pass {flag} COL naming the {what} column."
        )
    return None


def _meta_list(columns) -> list[str]:
    meta = [c for c in columns if str(c).startswith(META_PREFIX) or c in ID_CANDIDATES]
    return meta[:12] + (["..."] if len(meta) > 12 else [])


def resolve_columns(columns, options: ProfileOptions | None = None) -> ProfileColumns:
    """Which column plays which part (raises for missing or unknown columns)."""
    o = options or ProfileOptions()
    cols = list(columns)
    plate = _pick(cols, o.plate, PLATE_CANDIDATES, "plate", "--plate")
    well = _pick(cols, o.well, WELL_CANDIDATES, "well", "--well")
    notes: list[str] = []
    batch = _pick(cols, o.batch, BATCH_CANDIDATES, "batch", "--batch", required=False)
    if batch is None:
        batch = plate
        notes.append(
            f"no batch column ({', '.join(BATCH_CANDIDATES)}): each plate ({plate}) is its own batch "
            "for the alignment on controls; pass --batch COL to align per batch"
        )
    perturbation = _pick(
        cols, o.perturbation, PERTURBATION_CANDIDATES, "perturbation", "--perturbation"
    )
    control = o.control or DEFAULT_CONTROL
    if "=" not in control:
        raise InputError(
            f"--control {control}: expected COL=VALUE. Fix: e.g. --control {DEFAULT_CONTROL}."
        )
    control_col = control.split("=", 1)[0]
    if control_col not in cols:
        raise InputError(
            f"no control column '{control_col}' (the table's metadata columns: {_meta_list(cols)}). "
            f"Fix: pass --control COL=VALUE naming the column and value of the negative controls "
            f"(default {DEFAULT_CONTROL})."
        )
    ptype = o.perturbation_type
    if ptype is not None and ptype.upper() in PERTURBATION_TYPES:
        ptype = ptype.upper()
    else:
        ptype = _pick(cols, ptype, TYPE_CANDIDATES, "perturbation type", "--perturbation-type")
    concentration = _pick(cols, None, CONCENTRATION_CANDIDATES, "concentration", "", required=False)
    target = o.target
    if target is not None:
        _pick(cols, target, (), "target", "--target")
    else:
        target = next((c for c in TARGET_CANDIDATES if c in cols and c != perturbation), None)
    if target is not None and target == perturbation:
        raise InputError(
            f"--target {target} is also the perturbation column: consistency needs an annotation "
            "shared by several perturbations. Fix: pass another --target or --perturbation column."
        )
    well_id = next((c for c in ID_CANDIDATES if c in cols), None)
    return ProfileColumns(
        plate, well, batch, perturbation, control, ptype, concentration, target, well_id, notes
    )


def wells_from_profiles(
    meta: pl.DataFrame, options: ProfileOptions | None = None
) -> tuple[pl.DataFrame, ProfileColumns]:
    """The metadata part of a profiles table -> ``(well table, columns used)``.

    The well table has ``schema.WELL_COLUMNS`` (+ ``target`` when an annotation column is
    found), in the row order of ``meta``."""
    c = resolve_columns(meta.columns, options)
    text = {name: meta[name].cast(pl.Utf8) for name in {c.plate, c.well, c.batch, c.perturbation}}
    for name, flag in ((c.plate, "--plate"), (c.well, "--well"), (c.batch, "--batch")):
        s = text[name]
        if s.null_count() or (s == "").any():
            raise InputError(
                f"column {name} has {s.null_count() + int((s == '').sum())} empty values. Fix: fill it, or pass {flag} COL."
            )
    control_col, control_value = c.control.split("=", 1)
    is_control = (meta[control_col].cast(pl.Utf8) == control_value).fill_null(False)
    if not is_control.any():
        values = meta[control_col].cast(pl.Utf8).unique().drop_nulls().sort().head(8).to_list()
        raise InputError(
            f"no control rows: no row has {control_col} == '{control_value}' (its values: {values}). "
            "Fix: include the negative-control wells, or pass --control COL=VALUE naming them."
        )
    pert = text[c.perturbation]
    missing = (pert.is_null() | (pert == "")) & ~is_control
    if missing.any():
        raise InputError(
            f"{int(missing.sum())} treated rows have no {c.perturbation} (the perturbation). "
            "Fix: fill it, drop those rows, or pass --perturbation COL."
        )
    if c.perturbation_type in PERTURBATION_TYPES:
        ptype = pl.Series("perturbation_type", [c.perturbation_type] * meta.height, dtype=pl.Utf8)
    else:
        raw = meta[c.perturbation_type].cast(pl.Utf8).str.strip_chars().str.to_uppercase()
        bad = raw.is_null() | ~raw.is_in(list(PERTURBATION_TYPES))
        if bad.any():
            values = meta[c.perturbation_type].filter(bad).cast(pl.Utf8).unique().head(5).to_list()
            raise InputError(
                f"column {c.perturbation_type} (the perturbation type) must hold {list(PERTURBATION_TYPES)}; "
                f"found {values}. Fix: correct it, or pass --perturbation-type CRISPR|ORF|COMPOUND for the whole table "
                "(or --perturbation-type COL)."
            )
        ptype = raw
    if c.concentration is not None:
        conc = meta[c.concentration].cast(pl.Float64, strict=False)
    else:
        conc = pl.Series("concentration", [None] * meta.height, dtype=pl.Float64)
    batch, plate, well = text[c.batch], text[c.plate], text[c.well]
    key = pl.DataFrame({"b": batch, "p": plate, "w": well})
    dup = key.is_duplicated()
    if dup.any():
        first = key.filter(dup).row(0)
        raise InputError(
            f"{int(dup.sum())} rows share a {c.well} within a plate (e.g. well '{first[2]}' of plate '{first[1]}'). "
            f"Fix: aggregate to one profile per well (e.g. pycytominer aggregate), or pass --well / --plate "
            "naming columns that identify a well."
        )
    if c.well_id is not None:
        ids = meta[c.well_id].cast(pl.Utf8)
    else:
        ids = key.select(pl.concat_str(["b", "p", "w"], separator="_")).to_series()
    wells = pl.DataFrame(
        {
            "well_id": ids,
            "batch": batch,
            "plate": plate,
            "well": well,
            "perturbation": pl.Series(
                np.where(is_control.to_numpy(), control_value, pert.fill_null("").to_numpy())
            ).cast(pl.Utf8),
            "perturbation_type": ptype,
            "concentration": conc,
            "is_control": is_control,
        }
    )
    assert tuple(wells.columns) == tuple(WELL_COLUMNS)
    if c.target is not None:
        wells = wells.with_columns(meta[c.target].cast(pl.Utf8).alias(TARGET_COLUMN))
    return wells, c


def split_profiles(
    frame: pl.DataFrame, options: ProfileOptions | None = None, name: str = "the profiles"
):
    """A profiles table -> ``(well ids, features, well table, columns used, feature names)``.

    Features: every column without the ``Metadata_`` prefix (and not the well id); they must be
    numeric and finite."""
    if not is_profiles_table(frame.columns):
        raise InputError(
            f"{name} has no Metadata_ columns (columns: {frame.columns[:6]}). Fix: pass a pycytominer/JUMP "
            "profiles table (Metadata_Plate, Metadata_Well, Metadata_pert_type, ... + feature columns)."
        )
    meta_cols = [c for c in frame.columns if c.startswith(META_PREFIX) or c in ID_CANDIDATES]
    feature_cols = [c for c in frame.columns if c not in meta_cols]
    if not feature_cols:
        raise InputError(
            f"{name} has no feature columns (every column starts with Metadata_). Fix: include the profile features."
        )
    not_numeric = [c for c in feature_cols if not frame.schema[c].is_numeric()]
    if not_numeric:
        raise InputError(
            f"feature columns {not_numeric[:5]} of {name} are not numeric (every column without the Metadata_ "
            "prefix is read as a feature). Fix: rename metadata columns with the Metadata_ prefix, or drop them."
        )
    wells, cols = wells_from_profiles(frame.select(meta_cols), options)
    x = frame.select(feature_cols).to_numpy()
    dtype = np.float32 if all(frame.schema[c] == pl.Float32 for c in feature_cols) else np.float64
    x = np.ascontiguousarray(x, dtype=dtype)
    finite = np.isfinite(x)
    if not finite.all():
        bad_cols = [feature_cols[i] for i in np.flatnonzero(~finite.all(axis=0))]
        n_rows = int((~finite.all(axis=1)).sum())
        raise InputError(
            f"{name} has NaN or inf in {len(bad_cols)} feature columns (e.g. {bad_cols[:3]}; {n_rows} rows). "
            "Fix: drop those features (e.g. pycytominer feature_select with drop_na_columns) or those rows, "
            "or impute them."
        )
    return wells["well_id"], x, wells, cols, feature_cols
