"""Bray et al. Cell Painting in CLOOME's preprocessed layout.

One ``{plate}-{well}-{site}.npz`` per site with key ``sample`` = uint8 H x W x 5 in channel
order Mito, ER, RNA, AGP, DNA, and a metadata table with one row per site. cellbench's table
(``metadata_bray.csv``) has SAMPLE_KEY, well_id, batch, plate, well, site, compound, SMILES,
concentration, is_control and ``file`` (path relative to the root; never allowed to escape it).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.data.dataset import ImageDataset, wells_from_table
from cellbench.data.images import safe_join
from cellbench.errors import InputError, NotFoundError
from cellbench.schema import COMPOUND

METADATA = "metadata_bray.csv"
NPZ_ORDER: tuple[str, ...] = ("Mito", "ER", "RNA", "AGP", "DNA")
CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")
REQUIRED = ("SAMPLE_KEY",)
#: the first of these columns present names the perturbation (CLOOME's index has INCHIKEY/SMILES)
PERTURBATION_COLUMNS = ("compound", "perturbation", "INCHIKEY", "SMILES")


class BrayDataset(ImageDataset):
    def __init__(self, root: str | os.PathLike, name: str = "bray", metadata: str | None = None):
        root = Path(root)
        path = Path(metadata) if metadata else root / METADATA
        if not path.is_file():
            raise NotFoundError(
                f"no Bray metadata table at {path}; it needs one row per site with columns "
                f"{list(REQUIRED)} (+ batch, concentration, is_control, file)"
            )
        meta = pl.read_csv(path, infer_schema_length=None, schema_overrides={"SMILES": pl.Utf8})
        pert_col = next((c for c in PERTURBATION_COLUMNS if c in meta.columns), None)
        if "SAMPLE_KEY" not in meta.columns or pert_col is None:
            raise InputError(
                f"{path}: needs SAMPLE_KEY ('{{plate}}-{{well}}-{{site}}') and one of "
                f"{list(PERTURBATION_COLUMNS)}; it has {meta.columns[:8]}"
            )
        if pert_col != "compound":
            meta = meta.with_columns(pl.col(pert_col).cast(pl.Utf8).alias("compound"))
        parts = (
            meta["SAMPLE_KEY"]
            .cast(pl.Utf8)
            .str.extract_groups(r"^(?P<_plate>[^-]+)-(?P<_well>[^-]+)-(?P<_site>\d+)$")
            .struct.unnest()
        )
        for col in ("plate", "well", "site"):  # parse what the table lacks from SAMPLE_KEY
            if col not in meta.columns:
                if parts[f"_{col}"].null_count():
                    raise InputError(
                        f"{path}: SAMPLE_KEY values must look like '{{plate}}-{{well}}-{{site}}' "
                        f"when there is no '{col}' column"
                    )
                meta = meta.with_columns(parts[f"_{col}"].alias(col))
        meta = meta.with_columns(pl.col("plate").cast(pl.Utf8), pl.col("well").cast(pl.Utf8))
        if "file" not in meta.columns:
            meta = meta.with_columns(("images/" + pl.col("SAMPLE_KEY") + ".npz").alias("file"))
        if "well_id" not in meta.columns:
            meta = meta.with_columns((pl.col("plate") + "-" + pl.col("well")).alias("well_id"))
        if "batch" not in meta.columns:
            meta = meta.with_columns(pl.col("plate").alias("batch"))
        if "concentration" not in meta.columns:
            meta = meta.with_columns(pl.lit(None, dtype=pl.Float64).alias("concentration"))
        if "is_control" not in meta.columns:
            meta = meta.with_columns(
                pl.col("compound").str.to_uppercase().is_in(["DMSO"]).alias("is_control")
            )
        self.files = [safe_join(root, f) for f in meta["file"].to_list()]
        wells = (
            meta.group_by("well_id", maintain_order=True)
            .agg(
                pl.col("batch").first(),
                pl.col("plate").first(),
                pl.col("well").first(),
                pl.col("compound").first().alias("perturbation"),
                pl.col("concentration").first(),
                pl.col("is_control").first(),
            )
            .with_columns(pl.lit(COMPOUND).alias("perturbation_type"))
        )
        wells = wells_from_table(wells)
        sites = meta.select(
            (pl.col("well_id").cast(pl.Utf8) + "_s" + pl.col("site").cast(pl.Utf8)).alias(
                "site_id"
            ),
            pl.col("well_id").cast(pl.Utf8),
            pl.col("site").cast(pl.Int64),
            pl.col("file"),
        )
        super().__init__(name, root, CHANNELS, wells, sites)
        self._order = [NPZ_ORDER.index(c) for c in CHANNELS]

    def cache_key(self) -> str:
        from cellbench.io import config_hash

        return config_hash({"name": self.name, "files": self.sites["file"].to_list()})

    def _read_one(self, path: Path) -> np.ndarray:
        try:
            with np.load(path, allow_pickle=False) as z:
                arr = z["sample"]
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{path}: image file missing; regenerate or re-download the dataset"
            ) from exc
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(
                f"{path}: cannot read key 'sample' ({type(exc).__name__}: {exc}); "
                "the file is corrupt — regenerate or re-download it"
            ) from exc
        if arr.ndim != 3 or arr.shape[2] != len(NPZ_ORDER):
            raise InputError(
                f"{path}: 'sample' has shape {arr.shape}, expected H x W x 5 "
                "(Mito, ER, RNA, AGP, DNA)"
            )
        if arr.dtype != np.uint8:
            raise InputError(f"{path}: 'sample' is {arr.dtype}, expected uint8")
        return arr.transpose(2, 0, 1)[self._order]

    def _read(self, indices: np.ndarray) -> np.ndarray:
        imgs = [self._read_one(self.files[int(i)]) for i in indices]
        if not imgs:
            return np.empty((0, len(CHANNELS), 0, 0), dtype=np.uint8)
        return np.stack(imgs)


def load_bray(data_dir: str | os.PathLike | None) -> BrayDataset:
    if data_dir is None:
        raise NotFoundError(
            "the Bray dataset needs --data-dir pointing at CLOOME's npz images "
            f"and a {METADATA} table"
        )
    return BrayDataset(data_dir)
