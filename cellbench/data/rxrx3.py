"""RxRx3-core loader: the Hugging Face release layout (and the synthetic screen that copies it).

Layout: ``metadata_rxrx3_core.csv`` (well_id, experiment_name, plate, address, gene, treatment,
SMILES, concentration, perturbation_type, cell_type) and parquet shards (``data/*.parquet``)
with ``__key__`` = ``{experiment}/Plate{plate}/{address}_s{site}_{channel}`` and ``jp2``
(struct of encoded bytes; JPEG 2000 in the release). Channel indices 1..6 are Hoechst/DNA,
ConA/ER, Phalloidin/Actin, Syto14/RNA, MitoTracker/Mito, WGA/Golgi.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from cellbench.data.channels import canonical_name
from cellbench.data.dataset import ImageDataset
from cellbench.data.images import decode, scaling_policy
from cellbench.errors import CellbenchError, InputError, NotFoundError

METADATA = "metadata_rxrx3_core.csv"
CHANNELS: tuple[str, ...] = ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")
HF_REPO = "recursionpharma/rxrx3-core"
KEY_RE = re.compile(
    r"^(?P<exp>[^/]+)/Plate(?P<plate>[^/]+)/(?P<address>[A-Za-z]+\d+)_s(?P<site>\d+)_(?P<ch>[^_/]+)$"
)


def _metadata_wells(meta: pl.DataFrame) -> pl.DataFrame:
    from cellbench.maps.labels import wells_from_rxrx3

    wells = wells_from_rxrx3(meta)
    extra = [
        c
        for c in ("gene", "treatment", "cell_type")
        if c in meta.columns and c not in wells.columns
    ]
    if extra:
        wells = wells.join(
            meta.select("well_id", *extra).with_columns(pl.col("well_id").cast(pl.Utf8)),
            on="well_id",
            how="left",
        )
    return wells


def _shards(root: Path) -> list[Path]:
    shards = sorted((root / "data").glob("*.parquet")) if (root / "data").is_dir() else []
    if not shards:
        shards = sorted(p for p in root.glob("*.parquet") if "embedding" not in p.name.lower())
    return shards


class RxRx3Dataset(ImageDataset):
    """Images of an RxRx3-core-layout directory; reads shards lazily, decodes per image."""

    intensity_scaling = scaling_policy()

    def __init__(self, root: str | os.PathLike, name: str = "rxrx3-core"):
        root = Path(root)
        meta_path = root / METADATA
        if not meta_path.is_file():
            raise NotFoundError(
                f"{root} has no {METADATA}; point --data-dir at the RxRx3-core download "
                f"(`hf download {HF_REPO} --repo-type dataset --local-dir {root}`)"
            )
        try:
            meta = pl.read_csv(
                meta_path,
                infer_schema_length=None,
                schema_overrides={"SMILES": pl.Utf8, "gene": pl.Utf8},
            )
        except Exception as exc:
            raise InputError(
                f"{meta_path}: cannot read the metadata CSV ({exc}); re-download it"
            ) from exc
        wells = _metadata_wells(meta)
        shards = _shards(root)
        if not shards:
            raise NotFoundError(
                f"{root} has no image shards (data/*.parquet); download them with "
                f"`hf download {HF_REPO} --repo-type dataset --local-dir {root}`"
            )
        self.shards = shards
        rows = []
        for k, path in enumerate(shards):
            try:
                keys = pq.read_table(path, columns=["__key__"])["__key__"].to_pylist()
            except Exception as exc:
                raise InputError(
                    f"{path}: cannot read this parquet shard ({exc}); it is corrupt or "
                    "truncated — delete it and download/generate it again"
                ) from exc
            rows.append(
                pl.DataFrame(
                    {
                        "key": keys,
                        "shard": np.full(len(keys), k, np.int32),
                        "row": np.arange(len(keys), dtype=np.int64),
                    }
                )
            )
        index = pl.concat(rows)
        parts = index["key"].str.extract_groups(KEY_RE.pattern).struct.unnest()
        bad = parts["exp"].is_null()
        if bad.any():
            ex = index.filter(bad)["key"].head(2).to_list()
            raise InputError(
                f"{root}: image keys not in the RxRx3-core form "
                f"'{{experiment}}/Plate{{plate}}/{{address}}_s{{site}}_{{channel}}' (e.g. {ex})"
            )
        index = pl.concat([index, parts], how="horizontal").with_columns(
            (pl.col("exp") + "_" + pl.col("plate") + "_" + pl.col("address")).alias("well_id"),
            pl.col("site").cast(pl.Int64),
            pl.col("ch")
            .map_elements(self._channel_position, return_dtype=pl.Int64)
            .alias("channel"),
        )
        known = set(wells["well_id"].to_list())
        index = index.filter(pl.col("well_id").is_in(known))
        # sites follow the storage order of the shards (the first image of each site), so
        # reading sites in order streams through consecutive row groups
        sites = (
            index.with_columns(
                (pl.col("shard").cast(pl.Int64) * (1 << 40) + pl.col("row")).alias("_pos")
            )
            .group_by(["well_id", "site"])
            .agg(pl.col("_pos").min())
            .sort(["_pos", "well_id", "site"])
            .drop("_pos")
        )
        sites = sites.with_columns(
            (pl.col("well_id") + "_s" + pl.col("site").cast(pl.Utf8)).alias("site_id")
        )
        super().__init__(name, root, CHANNELS, wells, sites)
        site_pos = {s: i for i, s in enumerate(self.sites["site_id"].to_list())}
        index = index.with_columns(
            (pl.col("well_id") + "_s" + pl.col("site").cast(pl.Utf8))
            .replace_strict(site_pos, return_dtype=pl.Int64)
            .alias("site_index")
        )
        c = len(CHANNELS)
        self._loc_shard = np.full((len(self), c), -1, dtype=np.int64)
        self._loc_row = np.full((len(self), c), -1, dtype=np.int64)
        si, ch = index["site_index"].to_numpy(), index["channel"].to_numpy()
        self._loc_shard[si, ch] = index["shard"].to_numpy()
        self._loc_row[si, ch] = index["row"].to_numpy()
        missing = np.argwhere(self._loc_shard < 0)
        if missing.size:
            s, cc = missing[0]
            raise InputError(
                f"{root}: site {self.sites['site_id'][int(s)]} has no image for channel "
                f"{CHANNELS[int(cc)]} ({len(missing)} images missing in all); the shards are "
                "incomplete — download/generate the dataset again"
            )

    @staticmethod
    def _channel_position(token: str) -> int:
        if token.isdigit() and 1 <= int(token) <= len(CHANNELS):
            return int(token) - 1
        name = canonical_name(token)
        if name in CHANNELS:
            return CHANNELS.index(name)
        return -1

    def cache_key(self) -> str:
        from cellbench.io import config_hash

        files = [(p.name, p.stat().st_size) for p in self.shards]
        return config_hash({"name": self.name, "files": files, "n": len(self)})

    def _read(self, indices: np.ndarray) -> np.ndarray:
        shards = self._loc_shard[indices]
        rows = self._loc_row[indices]
        out: np.ndarray | None = None
        for k in np.unique(shards):
            path = self.shards[int(k)]
            sel = shards == k
            wanted = np.unique(rows[sel])
            try:  # read only the row groups that hold the wanted rows
                pf = pq.ParquetFile(path)
                sizes = [
                    pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)
                ]
                starts = np.concatenate([[0], np.cumsum(sizes)])
                groups = np.unique(np.searchsorted(starts, wanted, side="right") - 1)
                col = pf.read_row_groups(groups.tolist(), columns=["jp2"])["jp2"].combine_chunks()
                blobs = col.field("bytes") if hasattr(col, "field") else col
            except Exception as exc:
                raise InputError(
                    f"{path}: cannot read images from this shard ({exc}); it is "
                    "corrupt — delete it and download/generate it again"
                ) from exc
            # position of each original row inside the concatenation of the groups read
            base = np.concatenate([[0], np.cumsum([sizes[g] for g in groups])])
            for i, c in zip(*np.nonzero(sel), strict=True):
                r = int(rows[i, c])
                g = int(np.searchsorted(starts, r, side="right") - 1)
                pos = int(base[np.searchsorted(groups, g)] + r - starts[g])
                img = decode(
                    blobs[pos].as_py(),
                    f"{path.name} row {r} ({self.sites['site_id'][int(indices[i])]})",
                )
                if out is None:
                    out = np.empty((len(indices), len(CHANNELS), *img.shape), dtype=np.uint8)
                if img.shape != out.shape[2:]:
                    raise InputError(
                        f"{path.name} row {r}: image shape {img.shape} differs from "
                        f"{out.shape[2:]}; mixed image sizes are not supported"
                    )
                out[i, c] = img
        if out is None:
            return np.empty((0, len(CHANNELS), 0, 0), dtype=np.uint8)
        return out


def download_rxrx3_core(data_dir: str | os.PathLike) -> Path:
    """Fetch the release with huggingface_hub (17 GB) unless offline; a clear message otherwise."""
    data_dir = Path(data_dir)
    cmd = f"hf download {HF_REPO} --repo-type dataset --local-dir {data_dir}"
    from huggingface_hub import constants  # huggingface_hub's own offline setting

    if constants.HF_HUB_OFFLINE:
        raise NotFoundError(
            f"RxRx3-core is not at {data_dir} and HF_HUB_OFFLINE is set; on a machine with network "
            f"run `{cmd}` and pass --data-dir {data_dir}"
        )
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=HF_REPO, repo_type="dataset", local_dir=str(data_dir))
    except Exception as exc:
        raise CellbenchError(
            f"could not download RxRx3-core ({type(exc).__name__}: {exc}); with network run "
            f"`{cmd}` (about 17 GB) and pass --data-dir {data_dir}"
        ) from exc
    return data_dir


def load_rxrx3(data_dir: str | os.PathLike | None = None, download: bool = True) -> RxRx3Dataset:
    from cellbench.paths import data_dir as cache

    root = Path(data_dir) if data_dir is not None else cache() / "rxrx3-core"
    if not (root / METADATA).is_file():
        if not download:
            raise NotFoundError(
                f"RxRx3-core not found at {root}; run `hf download {HF_REPO} "
                f"--repo-type dataset --local-dir {root}` and pass --data-dir {root}"
            )
        download_rxrx3_core(root)
    return RxRx3Dataset(root)
