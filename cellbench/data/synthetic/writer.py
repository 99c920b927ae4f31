"""Write a simulated screen in the file layout of the real dataset it imitates.

synthetic-rxrx3-core (as the Hugging Face release ``recursionpharma/rxrx3-core``):
``metadata_rxrx3_core.csv`` + ``data/train-XXXXX-of-YYYYY.parquet`` with columns
``__key__`` (``{experiment}/Plate{plate}/{address}_s{site}_{channel index 1..6}``) and
``jp2`` (struct ``{bytes, path}``; PNG bytes here, JPEG 2000 in the real release).

synthetic-bray (as CLOOME's preprocessed Bray et al. images): ``images/{plate}-{well}-{site}.npz``
with key ``sample`` = uint8 H x W x 5 in channel order Mito, ER, RNA, AGP, DNA, plus
``metadata_bray.csv`` (one row per site).

Both also get ``ground_truth.parquet`` (well_id + latent_* + nuisance_*) and, written LAST,
``manifest.json``: a directory without it is not a complete dataset.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cellbench.data.images import encode_png
from cellbench.data.synthetic.config import BRAY_NPZ_ORDER
from cellbench.data.synthetic.simulate import Screen
from cellbench.schema import RXRX3_METADATA_COLUMNS

RXRX3_METADATA = "metadata_rxrx3_core.csv"
BRAY_METADATA = "metadata_bray.csv"
GROUND_TRUTH = "ground_truth.parquet"
MANIFEST = "manifest.json"
SHARD_SITES = 2048


def rxrx3_metadata(screen: Screen) -> pl.DataFrame:
    lay = screen.layout
    gene = (
        pl.when(pl.col("kind") == "gene")
        .then(pl.col("gene"))
        .when(pl.col("kind") == "empty")
        .then(pl.col("treatment"))
        .when(pl.col("kind") == "crispr_control")
        .then(pl.col("treatment"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    conc = pl.when(pl.col("kind") == "compound").then(pl.col("concentration")).otherwise(None)
    return lay.select(
        pl.col("well_id"),
        pl.col("batch").alias("experiment_name"),
        pl.col("plate"),
        pl.col("address"),
        gene.alias("gene"),
        pl.col("treatment"),
        pl.lit(None, dtype=pl.Utf8).alias("SMILES"),
        conc.alias("concentration"),
        pl.col("ptype").alias("perturbation_type"),
        pl.lit("HUVEC").alias("cell_type"),
    ).select(list(RXRX3_METADATA_COLUMNS))


ROW_GROUP_SITES = 64  # small row groups: random access reads little


def _write_parquet_table(path: Path, table: pa.Table, row_group_rows: int | None = None) -> None:
    # image bytes are already compressed: no parquet compression (it would only cost CPU)
    pq.write_table(
        table,
        path,
        compression="none",
        use_dictionary=False,
        write_statistics=False,
        row_group_size=row_group_rows,
    )


def write_rxrx3(screen: Screen, root: Path) -> None:
    rxrx3_metadata(screen).write_csv(root / RXRX3_METADATA)
    lay = screen.layout
    prefix = [
        f"{b}/Plate{p}/{a}"
        for b, p, a in zip(
            lay["batch"].to_list(), lay["plate"].to_list(), lay["address"].to_list(), strict=True
        )
    ]
    n_ch = len(screen.config.channels)
    n_shards = max(1, -(-screen.n_sites // SHARD_SITES))
    (root / "data").mkdir()
    keys: list[str] = []
    blobs: list[bytes] = []
    k = 0

    def flush() -> None:
        jp2 = pa.StructArray.from_arrays(
            [pa.array(blobs, type=pa.binary()), pa.array([None] * len(blobs), type=pa.string())],
            names=["bytes", "path"],
        )
        table = pa.table({"__key__": pa.array(keys, type=pa.string()), "jp2": jp2})
        _write_parquet_table(
            root / "data" / f"train-{k:05d}-of-{n_shards:05d}.parquet",
            table,
            ROW_GROUP_SITES * n_ch,
        )
        keys.clear()
        blobs.clear()

    def encode(
        idx: np.ndarray, imgs: np.ndarray
    ) -> list[list[bytes]]:  # runs in the render threads
        return [[encode_png(imgs[j, c]) for c in range(n_ch)] for j in range(len(idx))]

    for idx, encoded in screen.iter_chunks(post=encode):
        for j, s in enumerate(idx):
            base = f"{prefix[screen.site_well[s]]}_s{screen.site_number[s]}"
            for c in range(n_ch):
                keys.append(f"{base}_{c + 1}")
                blobs.append(encoded[j][c])
            if len(keys) == SHARD_SITES * n_ch:
                flush()
                k += 1
    if keys:
        flush()


def _npz_bytes(arr: np.ndarray) -> bytes:
    """An ``np.load``-able .npz with key ``sample``; fixed zip timestamps (same seed, same bytes)."""
    npy = io.BytesIO()
    np.lib.format.write_array(npy, arr, allow_pickle=False)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("sample.npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, npy.getvalue())
    return out.getvalue()


def bray_metadata(screen: Screen) -> pl.DataFrame:
    lay = screen.layout
    w = screen.site_well
    sel = lambda c: np.asarray(lay[c].to_list(), dtype=object)[w]  # noqa: E731
    plate, well = sel("plate"), sel("address")
    keys = [f"{p}-{a}-{s}" for p, a, s in zip(plate, well, screen.site_number, strict=True)]
    return pl.DataFrame(
        {
            "SAMPLE_KEY": keys,
            "well_id": sel("well_id").tolist(),
            "batch": sel("batch").tolist(),
            "plate": plate.astype(np.int64),
            "well": well.tolist(),
            "site": screen.site_number.astype(np.int64),
            "compound": sel("treatment").tolist(),
            "SMILES": [None] * len(keys),
            "concentration": np.asarray(lay["concentration"].to_numpy(), dtype=np.float64)[w],
            "is_control": sel("kind") == "dmso",
            "file": [f"images/{k}.npz" for k in keys],
        },
        schema_overrides={"SMILES": pl.Utf8},
    )


def write_bray(screen: Screen, root: Path) -> None:
    meta = bray_metadata(screen)
    meta.write_csv(root / BRAY_METADATA)
    order = [screen.config.channels.index(c) for c in BRAY_NPZ_ORDER]
    (root / "images").mkdir()
    files = meta["file"].to_list()

    def encode(idx: np.ndarray, imgs: np.ndarray) -> list[bytes]:  # runs in the render threads
        hwc = np.ascontiguousarray(imgs[:, order].transpose(0, 2, 3, 1))
        return [_npz_bytes(hwc[j]) for j in range(len(idx))]

    for idx, blobs in screen.iter_chunks(post=encode):
        for j, s in enumerate(idx):
            (root / files[s]).write_bytes(blobs[j])
