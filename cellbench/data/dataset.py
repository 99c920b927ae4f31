"""The image-dataset contract every loader returns (docs/architecture.md).

``channels`` (names), ``wells`` (schema.WELL_COLUMNS + extras), ``sites`` (SITE_COLUMNS +
``well_index``, the row of the site's well in ``wells``), ``read_sites(indices)`` -> uint8
(N, C, H, W) in ``channels`` order, and ``load_all()`` -> every site in one in-memory uint8
array (cached as .npy beside the data) for fast training.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.errors import InputError
from cellbench.io import atomic_path, config_hash
from cellbench.schema import SITE_COLUMNS, WELL_COLUMNS


class ImageDataset:
    """Base class: subclasses set the tables and implement :meth:`_read`."""

    name: str = "dataset"
    ground_truth: pl.DataFrame | None = None
    #: synthetic screens: their ``manifest.json`` (None for real data)
    manifest: dict | None = None
    #: True for a generated synthetic screen
    synthetic: bool = False
    #: how stored pixel values become uint8, in words (loaders that decode images refine it)
    intensity_scaling: str = "8-bit images as stored (other pixel types refused)"

    def __init__(
        self,
        name: str,
        root: str | os.PathLike,
        channels: tuple[str, ...],
        wells: pl.DataFrame,
        sites: pl.DataFrame,
    ):
        self.name = name
        self.root = Path(root)
        self.channels = tuple(channels)
        if sites.height == 0 or wells.height == 0:
            raise InputError(
                f"{name}: the metadata under {root} is empty (no rows: no wells or sites); fill the "
                "table with one row per site, or point --data-dir at the folder that holds the screen"
            )
        missing = [c for c in WELL_COLUMNS if c not in wells.columns]
        if missing:
            raise InputError(f"{name}: the well table lacks {missing}; fix the loader's metadata")
        self.wells = wells
        idx = {w: i for i, w in enumerate(wells["well_id"].to_list())}
        unknown = [w for w in sites["well_id"].unique().to_list() if w not in idx]
        if unknown:
            raise InputError(
                f"{name}: images exist for wells missing from the metadata (e.g. {unknown[:3]}); "
                "use the metadata table that belongs to these images"
            )
        sites = sites.with_columns(
            pl.col("well_id").replace_strict(idx, return_dtype=pl.Int64).alias("well_index")
        )
        self.sites = sites.select(
            *SITE_COLUMNS,
            "well_index",
            *[c for c in sites.columns if c not in (*SITE_COLUMNS, "well_index")],
        )
        self._all: np.ndarray | None = None

    def __len__(self) -> int:
        return self.sites.height

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, wells={self.wells.height}, "
            f"sites={self.sites.height}, channels={self.channels})"
        )

    # --- reading -----------------------------------------------------------------------
    def _read(self, indices: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_sites(self, indices) -> np.ndarray:
        """uint8 (N, C, H, W) images of the sites at rows ``indices`` of ``sites``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"site index out of range 0..{len(self) - 1}")
        if self._all is not None:
            return self._all[idx]
        return self._read(idx)

    def cache_key(self) -> str:
        """Identifies the images (for the .npy cache); subclasses refine it."""
        return config_hash(
            {"name": self.name, "channels": self.channels, "sites": self.sites["site_id"].to_list()}
        )

    def _cache_path(self) -> Path:
        name = f".images-{self.cache_key()}.npy"
        if os.access(self.root, os.W_OK):
            return self.root / name
        from cellbench.paths import data_dir

        return data_dir() / "arrays" / name

    def load_all(self, cache: bool = True) -> np.ndarray:
        """Every site as one uint8 (N, C, H, W) array, cached as .npy beside the data."""
        if self._all is not None:
            return self._all
        path = self._cache_path()
        arr = None
        if cache and path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
                if arr.dtype != np.uint8 or arr.shape[:2] != (len(self), len(self.channels)):
                    arr = None
            except (OSError, ValueError):
                arr = None
        if arr is None:
            arr = self._read_all()
            if cache:
                with atomic_path(path, suffix=".npy") as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, arr, allow_pickle=False)
        self._all = arr
        return arr

    def _read_all(self) -> np.ndarray:
        first = self._read(np.arange(min(1, len(self))))
        out = np.empty((len(self), *first.shape[1:]), dtype=np.uint8)
        step = 1024
        for s in range(0, len(self), step):
            idx = np.arange(s, min(s + step, len(self)))
            out[idx] = self._read(idx)
        return out


def wells_from_table(df: pl.DataFrame) -> pl.DataFrame:
    """Cast a table holding WELL_COLUMNS to their schema types (extras kept)."""
    return df.with_columns(
        pl.col("well_id").cast(pl.Utf8),
        pl.col("batch").cast(pl.Utf8),
        pl.col("plate").cast(pl.Utf8),
        pl.col("well").cast(pl.Utf8),
        pl.col("perturbation").cast(pl.Utf8),
        pl.col("perturbation_type").cast(pl.Utf8),
        pl.col("concentration").cast(pl.Float64),
        pl.col("is_control").cast(pl.Boolean),
    )
