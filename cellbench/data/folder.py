"""A generic folder of images + one table (bring your own screen).

Table (``wells.csv`` or given path): one row per site with WELL_COLUMNS (well_id, batch, plate,
well, perturbation, perturbation_type, concentration, is_control), ``site``, and one column per
channel named ``file_<Channel>`` holding the path (relative to the folder) of that channel's
single-channel image (PNG/TIFF/JPEG, or JPEG 2000 with a decoder). 8-bit images are read as
stored; 16-bit ones are rescaled per image by percentiles, or by the camera's bit depth when
declared (the ``bit_depth`` argument, or an optional ``bit_depth`` column holding one value; see
:mod:`cellbench.data.images`; ``intensity_scaling`` says which). Paths may not escape the
folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.data.dataset import ImageDataset, wells_from_table
from cellbench.data.images import DECODE_VERSION, decode, safe_join, scaling_policy
from cellbench.errors import InputError, NotFoundError
from cellbench.schema import WELL_COLUMNS

TABLE = "wells.csv"


class FolderDataset(ImageDataset):
    def __init__(
        self,
        root: str | os.PathLike,
        table: str | os.PathLike | None = None,
        name: str = "folder",
        bit_depth: int | None = None,
    ):
        root = Path(root)
        path = Path(table) if table else root / TABLE
        if not path.is_file():
            raise NotFoundError(
                f"no table at {path}; write one row per site with columns "
                f"{list(WELL_COLUMNS)}, site, file_<Channel>..."
            )
        try:
            meta = pl.read_csv(path, infer_schema_length=None)
        except Exception as exc:  # noqa: BLE001 - polars raises several kinds for a bad file
            raise InputError(
                f"{path}: cannot read the table as CSV ({type(exc).__name__}); write one row "
                f"per site with columns {list(WELL_COLUMNS)}, site, file_<Channel>..."
            ) from None
        missing = [c for c in (*WELL_COLUMNS, "site") if c not in meta.columns]
        file_cols = [c for c in meta.columns if c.startswith("file_")]
        if missing or not file_cols:
            raise InputError(
                f"{path}: missing column(s) {missing or ['file_<Channel>']}; needs "
                f"{list(WELL_COLUMNS)}, site and one file_<Channel> per channel"
            )
        if bit_depth is None and "bit_depth" in meta.columns:
            depths = meta["bit_depth"].drop_nulls().unique().to_list()
            if len(depths) != 1:
                raise InputError(
                    f"{path}: the bit_depth column holds {sorted(map(str, depths)) or 'no value'}; "
                    "give one bit depth for every image (e.g. 12), or drop the column"
                )
            bit_depth = depths[0]
        try:
            bit_depth = None if bit_depth is None else int(bit_depth)
        except (TypeError, ValueError):
            bit_depth = -1
        if bit_depth is not None and not 1 <= bit_depth <= 16:
            raise InputError(
                f"{path}: bit_depth must be a whole number in 1..16 (the camera's, e.g. 12)"
            )
        self.bit_depth = bit_depth
        self.intensity_scaling = scaling_policy(self.bit_depth)
        channels = tuple(c[len("file_") :] for c in file_cols)
        self.paths = [
            [safe_join(root, f) for f in meta[c].cast(pl.Utf8).to_list()] for c in file_cols
        ]
        wells = wells_from_table(
            meta.group_by("well_id", maintain_order=True).agg(
                [pl.col(c).first() for c in WELL_COLUMNS if c != "well_id"]
            )
        )
        sites = meta.select(
            (pl.col("well_id").cast(pl.Utf8) + "_s" + pl.col("site").cast(pl.Utf8)).alias(
                "site_id"
            ),
            pl.col("well_id").cast(pl.Utf8),
            pl.col("site").cast(pl.Int64),
        )
        super().__init__(name, root, channels, wells, sites)

    def cache_key(self) -> str:
        from cellbench.io import config_hash

        return config_hash(
            {
                "name": self.name,
                "channels": self.channels,
                "sites": self.sites["site_id"].to_list(),
                "decode": DECODE_VERSION,
                "bit_depth": self.bit_depth,
            }
        )

    def _read(self, indices: np.ndarray) -> np.ndarray:
        out = None
        for i, s in enumerate(indices):
            for c, paths in enumerate(self.paths):
                p = paths[int(s)]
                try:
                    data = p.read_bytes()
                except OSError as exc:
                    raise NotFoundError(
                        f"{p}: cannot read image ({exc}); fix the table's path"
                    ) from exc
                img = decode(data, str(p), self.bit_depth)
                if out is None:
                    out = np.empty((len(indices), len(self.paths), *img.shape), dtype=np.uint8)
                if img.shape != out.shape[2:]:
                    raise InputError(f"{p}: image shape {img.shape} differs from {out.shape[2:]}")
                out[i, c] = img
        return out if out is not None else np.empty((0, len(self.paths), 0, 0), np.uint8)
