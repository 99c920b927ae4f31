"""Streaming embedding: images → tiles → sites → WELL means, written to parquet.

``embed_dataset(encoder, dataset, out)`` reads the dataset's sites in batches, cuts each site
into the encoder's tiles (non-overlapping, centred), embeds them, averages tiles into a site
vector and sites into running per-well sums. Memory therefore grows with the number of wells,
never with the number of sites (checked by ``benchmarks/bench_embed.py``), and the output is the contract of
docs/architecture.md: ``well_id`` + ``feature_0..feature_{D-1}`` (float32), one row per well,
with parquet key-value metadata naming the model, the weights' SHA-256, the channel order and
the data hash.

Robustness: the wells are cut into shards; each finished shard is written
atomically and a killed run resumes without redoing them; under ``torchrun`` rank r embeds
shards r, r + W, ... and rank 0 merges them (de-duplicating wells by id). The final file is
cached by model + weights + data + settings: a second call returns it at once. Shards live in
a folder named by that cache key and the shard size, and a shard is reused only when its
key and wells match, so a killed run of another model never lends its rows. One process at a
time embeds a target (a lock file beside it): a second one waits, then reuses the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from cellbench.device import dist_info
from cellbench.errors import CellbenchError, InputError
from cellbench.io import atomic_path, config_hash
from cellbench.progress import ProgressBar
from cellbench.schema import EMBEDDING_ID_COLUMN, feature_columns

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    import torch

    from cellbench.encoders.base import Encoder

#: Bump when the embedding procedure changes so old caches are not reused.
EMBED_FORMAT = 2  # 2: sites are standardised before tiling (1: each tile on its own)
META_PREFIX = "cellbench."
#: Wells per shard: the unit of resumption and of work split across ranks.
DEFAULT_SHARD_WELLS = 256


# --- channels -----------------------------------------------------------------------------
def channel_plan(
    dataset_channels: Sequence[str], encoder_channels: Sequence[str]
) -> list[tuple[int, ...]]:
    """For each channel the encoder expects, the dataset channels that make it, BY NAME.

    Uses :func:`cellbench.data.channels.channel_plan` (stain aliases such as Hoechst → DNA,
    and the explicit AGP ↔ Actin/Golgi rule). A channel-agnostic encoder (no channel names)
    takes all the dataset's channels in order.
    """
    if not encoder_channels:
        return [(i,) for i in range(len(dataset_channels))]
    from cellbench.data.channels import channel_plan as _plan

    return _plan(list(dataset_channels), list(encoder_channels))


def _plan_names(dataset_channels: Sequence[str], plan: list[tuple[int, ...]]) -> list[str]:
    names = []
    for idx in plan:
        parts = [str(dataset_channels[i]) for i in idx]
        names.append(parts[0] if len(parts) == 1 else f"mean({','.join(parts)})")
    return names


def apply_plan(images: np.ndarray, plan: list[tuple[int, ...]]) -> np.ndarray:
    """(N, C, H, W) uint8 → the encoder's channels: picked, or the rounded mean of several."""
    if all(len(idx) == 1 for idx in plan):
        return np.ascontiguousarray(images[:, [idx[0] for idx in plan]])
    out = []
    for idx in plan:
        if len(idx) == 1:
            out.append(images[:, idx[0]])
        else:
            out.append(
                np.rint(images[:, list(idx)].astype(np.float32).mean(axis=1)).astype(np.uint8)
            )
    return np.stack(out, axis=1)


# --- hashing / cache key ------------------------------------------------------------------
def data_hash(dataset: Any) -> str:
    """A stable hash of the dataset's identity: its own ``data_hash`` if it has one, else its
    name, channels, location, loader cache key (files and sizes) and the site → well table."""
    own = getattr(dataset, "data_hash", None)
    if isinstance(own, str) and own:
        return own
    h = hashlib.sha256()
    h.update(repr((getattr(dataset, "name", ""), tuple(dataset.channels))).encode())
    root = getattr(dataset, "root", None)
    if root is not None:  # two screens (e.g. two seeds) may share file names and site ids
        h.update(str(Path(root).resolve()).encode())
    if callable(getattr(dataset, "cache_key", None)):  # cellbench.data.dataset.ImageDataset
        h.update(str(dataset.cache_key()).encode())
    sites = dataset.sites
    for column in ("site_id", "well_id"):
        h.update("\n".join(sites[column].cast(str).to_list()).encode())
    return h.hexdigest()


def _meta(key: str) -> bytes:
    return (META_PREFIX + key).encode()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``cellbench.*`` key-value metadata of an embedding parquet (prefix stripped)."""
    import pyarrow.parquet as pq

    raw = pq.read_schema(path).metadata or {}
    out = {}
    for k, v in raw.items():
        key = k.decode()
        if key.startswith(META_PREFIX):
            out[key[len(META_PREFIX) :]] = v.decode()
    return out


def _write_parquet(
    path: Path,
    well_ids: Sequence[str],
    values: np.ndarray,
    metadata: Mapping[str, object],
    extra: dict | None = None,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = np.ascontiguousarray(values, dtype=np.float32)
    columns = {EMBEDDING_ID_COLUMN: pa.array(list(well_ids), pa.string())}
    for i, name in enumerate(feature_columns(values.shape[1])):
        columns[name] = pa.array(values[:, i], pa.float32())
    for name, col in (extra or {}).items():
        columns[name] = pa.array(col)
    table = pa.table(columns)
    table = table.replace_schema_metadata({_meta(k): str(v).encode() for k, v in metadata.items()})
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


# --- tiling -------------------------------------------------------------------------------
def tile(
    images: torch.Tensor, size: int | None, max_tiles: int | None = None
) -> tuple[torch.Tensor, int]:
    """(N, C, H, W) sites → (N * T, C, s, s) non-overlapping centred tiles, and T.

    ``size`` None, or a site no larger than ``size``: the whole site is one tile.
    """
    n, c, h, w = images.shape
    if size is None or (h <= size and w <= size):
        return images, 1
    if h < size or w < size:  # one side smaller: a centred crop of the other
        size = min(h, w)
    ny, nx = h // size, w // size
    y0, x0 = (h - ny * size) // 2, (w - nx * size) // 2
    grid = images[:, :, y0 : y0 + ny * size, x0 : x0 + nx * size]
    tiles = grid.reshape(n, c, ny, size, nx, size).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n, ny * nx, c, size, size)
    if max_tiles is not None and ny * nx > max_tiles:
        tiles = tiles[:, :max_tiles]
    t = tiles.shape[1]
    return tiles.reshape(n * t, c, size, size), t


def _fit_input(encoder: Encoder, tiles: torch.Tensor) -> torch.Tensor:
    """Resize tiles smaller than a fixed-size encoder's input (e.g. OpenPhenom's 256)."""
    size = encoder.input_size
    if (
        size is None
        or not getattr(encoder, "fixed_size", False)
        or tiles.shape[-1] == size == tiles.shape[-2]
    ):
        return tiles
    import torch.nn.functional as F

    return F.interpolate(tiles.float(), size=(size, size), mode="bilinear", align_corners=False)


# --- sharding -----------------------------------------------------------------------------
def _wells_and_sites(dataset: Any) -> tuple[list[str], list[np.ndarray]]:
    """Wells (dataset well order) and, per well, the indices of its sites in read order."""
    import polars as pl

    sites = dataset.sites.with_row_index("_row")
    order = dataset.wells.select(EMBEDDING_ID_COLUMN).with_row_index("_well_order")
    grouped = (
        sites.join(order, on=EMBEDDING_ID_COLUMN, how="left")
        .group_by(EMBEDDING_ID_COLUMN, maintain_order=True)
        .agg(pl.col("_row"), pl.col("_well_order").first())
        .sort("_well_order", nulls_last=True, maintain_order=True)
    )
    wells = grouped[EMBEDDING_ID_COLUMN].cast(pl.Utf8).to_list()
    rows = [np.asarray(r, dtype=np.int64) for r in grouped["_row"].to_list()]
    return wells, rows


class _TileBatches:
    """Item i = chunk i of sites read, channel-mapped, tiled and preprocessed: (i, tiles, T).

    A map-style dataset, so a ``torch.utils.data.DataLoader`` worker process can decode the
    next chunk while the model embeds this one (no GIL shared with the forward pass).
    """

    def __init__(
        self, dataset: Any, chunks: list[np.ndarray], plan, encoder: Encoder, max_tiles
    ) -> None:
        self.dataset, self.chunks, self.plan = dataset, chunks, plan
        self.encoder, self.max_tiles = encoder, max_tiles

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int):
        import torch

        chunk = self.chunks[i]
        images = np.asarray(self.dataset.read_sites(chunk))
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != len(chunk):
            raise CellbenchError(
                f"read_sites returned {images.dtype} {images.shape} for {len(chunk)} sites; "
                "a dataset must return uint8 (N, C, H, W): fix the loader"
            )
        x = torch.from_numpy(apply_plan(images, self.plan))
        if self.encoder.preprocess_whole_sites:  # standardise the site, then tile (as training)
            tiles, t = tile(self.encoder.preprocess(x), self.encoder.input_size, self.max_tiles)
        else:  # the model normalises each input crop itself
            tiles, t = tile(x, self.encoder.input_size, self.max_tiles)
            tiles = self.encoder.preprocess(tiles)
        tiles = _fit_input(self.encoder, tiles)
        return i, tiles.contiguous(), t


def _thread_prefetch(items: _TileBatches) -> Iterator:
    """Prepare the next chunk in a background thread while the model runs on this one."""
    if not len(items):
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(items.__getitem__, 0)
        for i in range(len(items)):
            item = future.result()
            if i + 1 < len(items):
                future = pool.submit(items.__getitem__, i + 1)
            yield item


def _batches(items: _TileBatches, num_workers: int) -> Iterator:
    if num_workers <= 0 or len(items) < 2:
        yield from _thread_prefetch(items)
        return
    from torch.utils.data import DataLoader, Dataset

    loader: DataLoader[Any] = DataLoader(
        cast("Dataset[Any]", items),  # (map-style: __len__ and __getitem__)
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        prefetch_factor=4,
    )
    yield from loader


def _default_workers(dataset: Any) -> int:
    """One decoding worker process when there is a spare core and images are on disk."""
    in_memory = getattr(dataset, "_all", None) is not None
    return 0 if in_memory or (os.cpu_count() or 1) < 2 else 1


class _ShardSums:
    """Running per-well, per-feature sums and finite counts of one shard."""

    def __init__(self, rows: list[np.ndarray], dim: int) -> None:
        self.site_well = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        self.n_sites = np.array([len(r) for r in rows], np.int64)
        self.sums = np.zeros((len(rows), dim), np.float64)
        self.counts = np.zeros((len(rows), dim), np.int64)
        self.start = 0

    def add(self, site_vectors: np.ndarray, finite: np.ndarray) -> None:
        owner = self.site_well[self.start : self.start + len(site_vectors)]
        np.add.at(self.sums, owner, np.where(finite, site_vectors, 0.0))
        np.add.at(self.counts, owner, finite)
        self.start += len(site_vectors)

    def means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan).astype(
                np.float32
            )


def _embed_shards(
    encoder: Encoder,
    dataset: Any,
    shards: list[tuple[int, list[str], list[np.ndarray]]],
    plan: list[tuple[int, ...]],
    batch_size: int,
    max_tiles: int | None,
    tiles_per_site: int,
    num_workers: int,
    advance,
    write_shard,
) -> None:
    """Stream the sites of ``shards`` (id, wells, site rows per well) through the encoder;
    ``write_shard(id, wells, means, n_sites)`` is called as soon as a shard is complete."""
    import torch

    sites_per_chunk = max(1, batch_size // tiles_per_site)
    chunks: list[np.ndarray] = []
    owner: list[int] = []  # chunk -> position in `shards`
    for pos, (_, _, rows) in enumerate(shards):
        site_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        for b in range(0, len(site_rows), sites_per_chunk):
            chunks.append(site_rows[b : b + sites_per_chunk])
            owner.append(pos)
    last_chunk = {pos: i for i, pos in enumerate(owner)}
    # per well and feature: sum and number of finite site values (NaN-tolerant encoders,
    # e.g. CellProfiler features missing in an image, average over the sites that have them)
    allows_nan = bool(getattr(encoder, "allows_nan", False))
    sums: dict[int, _ShardSums] = {}
    items = _TileBatches(dataset, chunks, plan, encoder, max_tiles)
    for i, tiles, t in _batches(items, num_workers):
        chunk, pos = chunks[i], owner[i]
        shard_id, wells, rows = shards[pos]
        acc = sums.setdefault(pos, _ShardSums(rows, encoder.embed_dim))
        feats = encoder.embed(tiles).detach().to("cpu", torch.float64)
        site_vectors = feats.reshape(len(chunk), int(t), -1).mean(dim=1).numpy()
        finite = np.isfinite(site_vectors)
        if not allows_nan and not finite.all():
            bad = dataset.sites["site_id"].gather(chunk[~finite.all(1)]).to_list()
            raise InputError(
                f"the model produced NaN/inf for site(s) {bad[:5]}; the images may be corrupt "
                "(check them with `cellbench data check`) or the weights broken"
            )
        acc.add(site_vectors, finite)
        advance(len(chunk))
        if last_chunk[pos] == i:
            write_shard(shard_id, wells, acc.means(), acc.n_sites)
            del sums[pos]


def check_out(out: Path) -> None:
    """Before any work: ``out`` is a folder (or a place for one) or a ``.parquet`` path that is
    new or an earlier cellbench embedding, somewhere writable."""
    from cellbench.io import check_writable

    if out.suffix == ".parquet":
        if out.is_dir():
            raise InputError(
                f"--out {out} is a folder; pass a new .parquet path, or the folder without .parquet."
            )
        if out.exists():
            try:
                ours = "cache_key" in read_metadata(out)
            except Exception:  # noqa: BLE001 - not a parquet file at all
                ours = False
            if not ours:
                raise InputError(
                    f"--out {out} exists and is not a cellbench embeddings file; "
                    "pass another path, or delete it first."
                )
    elif out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder, or a path ending in .parquet.")
    check_writable(out if out.suffix == ".parquet" else out / "embeddings.parquet")


def output_path(out: str | os.PathLike, model: str, key: str) -> Path:
    """``out`` itself when it ends in ``.parquet``, else ``out/{model}-{key}.parquet``."""
    out = Path(out)
    return out if out.suffix == ".parquet" else out / f"{model}-{key}.parquet"


def embed_dataset(
    encoder: Encoder,
    dataset: Any,
    out_path: str | os.PathLike,
    *,
    batch_size: int = 64,
    progress: bool = True,
    shard_wells: int = DEFAULT_SHARD_WELLS,
    max_tiles: int | None = None,
    device: str | None = None,
    merge_timeout_s: float = 3600.0,
    rank: int | None = None,
    world_size: int | None = None,
    num_workers: int | None = None,
) -> Path:
    """Embed every well of ``dataset`` with ``encoder``; return the parquet path.

    ``out_path`` is a ``.parquet`` file or a directory (the file is then named after the model
    and the cache key). A complete file with the same cache key is returned without work.
    ``rank``/``world_size`` default to torch.distributed's (or ``RANK``/``WORLD_SIZE``): rank r
    embeds shards r, r + W, ...; rank 0 waits for all shards and writes the merged file.
    ``num_workers`` decoding processes (``torch.utils.data.DataLoader``) prepare the next batch
    while the model runs; default: 1 when a second core exists and the images are on disk,
    0 = a background thread.
    """
    import torch

    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}; pass a positive number")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and "LOCAL_RANK" in os.environ:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    from cellbench.device import check_device

    check_device(device)
    check_out(Path(out_path))
    encoder.to(device).eval()

    plan = channel_plan(dataset.channels, () if encoder.embeds_wells else encoder.channels)
    channel_names = _plan_names(dataset.channels, plan)
    dhash = data_hash(dataset)
    settings = {
        "format": EMBED_FORMAT,
        "model": encoder.name,
        "weights_sha256": encoder.weights_sha256 or "none",
        "model_config": {k: v for k, v in encoder.metadata.items() if k in ("seed", "mode")},
        "channels": channel_names,
        "data_hash": dhash,
        "tile": encoder.input_size,
        "max_tiles": max_tiles,
        "preprocess_whole_sites": bool(encoder.preprocess_whole_sites),
        "embed_dim": encoder.embed_dim,
    }
    key = config_hash(settings, length=16)
    target = output_path(out_path, encoder.name or "model", key)
    metadata = {
        "model": encoder.name,
        "weights_sha256": settings["weights_sha256"],
        "channels": json.dumps(channel_names),
        "data_hash": dhash,
        "cache_key": key,
        "tile_size": str(encoder.input_size),
        "format": str(EMBED_FORMAT),
    }
    if target.is_file():
        with contextlib.suppress(Exception):
            if read_metadata(target).get("cache_key") == key:
                return target

    env_rank, env_world, _ = dist_info()
    rank = env_rank if rank is None else rank
    world = env_world if world_size is None else world_size
    if encoder.embeds_wells:  # reference encoders: wells from the ground truth, no pixels
        if rank == 0:
            ids, values = encoder.embed_wells(dataset)
            metadata["embed_dim"] = str(values.shape[1])
            _write_parquet(target, ids, values, metadata)
        return target

    # one process per target at a time: a second waits, then takes the finished file (it
    # would otherwise race the first for the shard folder the first removes when done)
    with _target_lock(target, world, merge_timeout_s):
        if world == 1 and _is_done(target, key):
            return target
        wells, rows = _wells_and_sites(dataset)
        if not wells:
            raise InputError(
                "the dataset has no sites to embed; check its site table and --data-dir"
            )
        shard_wells = max(1, int(shard_wells))
        shards = [(s, min(s + shard_wells, len(wells))) for s in range(0, len(wells), shard_wells)]
        # the shard folder is named by everything that decides a shard's rows: the cache key
        # (model, weights, data, format, settings) and the cut; a killed run of another model or
        # another cut into the same target never lends its shards to this one
        shard_dir = _shard_dir(target, key, shard_wells)
        shard_dir.mkdir(parents=True, exist_ok=True)

        def shard_path(i: int) -> Path:
            return shard_dir / f"shard-{i:05d}.parquet"

        def finished(i: int) -> bool:
            return _valid_shard(shard_path(i), key, wells[shards[i][0] : shards[i][1]])

        mine = [i for i in range(len(shards)) if i % world == rank and not finished(i)]
        total_sites = sum(len(rows[j]) for i in mine for j in range(*shards[i]))
        if mine:  # one site tells how many tiles a site gives, hence sites per batch
            probe = np.asarray(dataset.read_sites(rows[shards[mine[0]][0]][:1]))
            _, tiles_per_site = tile(
                torch.from_numpy(apply_plan(probe, plan)), encoder.input_size, max_tiles
            )

        def write_shard(
            i: int, shard_wells_: list[str], means: np.ndarray, n_sites: np.ndarray
        ) -> None:
            _write_parquet(
                shard_path(i),
                shard_wells_,
                means,
                {**metadata, "shard": str(i)},
                {"n_sites": n_sites},
            )

        todo = [
            (i, wells[shards[i][0] : shards[i][1]], rows[shards[i][0] : shards[i][1]]) for i in mine
        ]
        workers = _default_workers(dataset) if num_workers is None else int(num_workers)
        with ProgressBar(
            f"embed {encoder.name}", total_sites, enabled=progress and total_sites > 0, unit="sites"
        ) as bar:
            if todo:
                _embed_shards(
                    encoder,
                    dataset,
                    todo,
                    plan,
                    batch_size,
                    max_tiles,
                    tiles_per_site,
                    workers,
                    bar.advance,
                    write_shard,
                )

        shard_paths = [shard_path(i) for i in range(len(shards))]
        if world > 1:
            _wait_for_shards(shard_paths, target, key, merge_timeout_s, rank)
            if rank != 0:
                return target
        _merge(target, shard_paths, wells, metadata, getattr(encoder, "finalize_wells", None))
        for stale in _shard_dirs(target):  # ours, and those of killed runs now superseded
            shutil.rmtree(stale, ignore_errors=True)
        if world > 1 and dist_info()[2]:
            import torch.distributed as dist

            dist.barrier()  # the others return only once the merged file exists
        return target


@contextlib.contextmanager
def _target_lock(target: Path, world: int, timeout_s: float):
    """Hold ``target``'s lock file while it is embedded (single process; the ranks of one
    ``torchrun`` share the work instead)."""
    if world > 1:
        yield
        return
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(target.parent / f".{target.name}.lock")
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise CellbenchError(
            f"another process has been embedding {target} for over {timeout_s:.0f} s; wait for it to "
            f"finish, or stop it and run again (finished shards are kept)"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _shard_dir(target: Path, key: str, shard_wells: int) -> Path:
    return target.parent / f".{target.stem}.{key}-w{shard_wells}.shards"


def _shard_dirs(target: Path) -> list[Path]:
    """Every shard folder of ``target``, whatever its key (also the unkeyed ones of old runs)."""
    import re

    own = re.compile(re.escape(f".{target.stem}.") + r"([0-9a-f]{16}-w[0-9]+\.)?shards")
    return [
        p
        for p in target.parent.glob(f".{target.stem}.*shards")
        if own.fullmatch(p.name) and p.is_dir()
    ]


def _valid_shard(path: Path, key: str, wells: Sequence[str]) -> bool:
    """True when ``path`` is a finished shard of this cache key holding exactly ``wells``;
    a shard that is not (unreadable, another key, other wells) is removed."""
    if not path.is_file():
        return False
    try:
        import pyarrow.parquet as pq

        ok = read_metadata(path).get("cache_key") == key
        ok = ok and pq.read_table(path, columns=[EMBEDDING_ID_COLUMN]).column(
            0
        ).to_pylist() == list(wells)
    except Exception:  # noqa: BLE001 - a damaged shard is redone, not trusted
        ok = False
    if not ok:
        path.unlink(missing_ok=True)
    return ok


def _is_done(target: Path, key: str) -> bool:
    try:
        return target.is_file() and read_metadata(target).get("cache_key") == key
    except Exception:  # a file being replaced: not done yet
        return False


def _wait_for_shards(
    paths: list[Path], target: Path, key: str, timeout_s: float, rank: int
) -> None:
    """Rank 0: until every shard exists. Other ranks: until rank 0 wrote the merged file."""
    if dist_info()[2]:
        import torch.distributed as dist

        dist.barrier()  # every rank has written its shards
        if rank != 0:
            dist.barrier()  # rank 0 has merged
        return
    deadline = time.monotonic() + timeout_s
    while not (_is_done(target, key) if rank != 0 else all(p.is_file() for p in paths)):
        if time.monotonic() > deadline:
            missing = [p.name for p in paths if not p.is_file()]
            raise CellbenchError(
                f"timed out waiting for embedding shards {missing[:5]} (or the merged file "
                f"{target.name}) of other ranks; rerun the same command: finished shards are kept"
            )
        time.sleep(0.2)


def _merge(
    target: Path,
    paths: list[Path],
    wells: list[str],
    metadata: Mapping[str, object],
    finalize=None,
) -> None:
    """Concatenate shards, keep the first row of each well id, order as the dataset's wells
    (``metadata``'s values are written as strings).

    ``finalize(values) -> (values, kept_columns)`` lets an encoder clean the well matrix
    (CellProfiler: drop all-NaN features, impute the rest); otherwise NaN is an error.
    """
    import polars as pl

    frames = [pl.read_parquet(p) for p in paths]
    table = pl.concat(frames, how="vertical").unique(
        EMBEDDING_ID_COLUMN, keep="first", maintain_order=True
    )
    order = pl.DataFrame({EMBEDDING_ID_COLUMN: wells}).with_row_index("_o")
    table = table.join(order, on=EMBEDDING_ID_COLUMN, how="left").sort("_o").drop("_o")
    features = [c for c in table.columns if c.startswith("feature_")]
    values = table.select(features).to_numpy().astype(np.float32)
    if finalize is not None:
        values, kept = finalize(values)
        metadata = {**metadata, "kept_features": json.dumps([int(k) for k in kept])}
    if not np.isfinite(values).all():
        raise InputError(
            "the embedding has NaN/inf for some wells (no usable site); check the images "
            "of those wells or drop them from the dataset"
        )
    n_sites = int(table["n_sites"].sum()) if "n_sites" in table.columns else 0
    metadata = {
        **metadata,
        "embed_dim": str(values.shape[1]),
        "n_wells": str(table.height),
        "n_sites": str(n_sites),
    }
    _write_parquet(target, table[EMBEDDING_ID_COLUMN].to_list(), values, metadata)


def create_for_dataset(
    name: str, dataset: Any, checkpoint: str | os.PathLike | None = None, **kwargs: Any
):
    """``registry.create`` with the dataset's channels passed to models that adapt to them.

    Channel-agnostic models (card ``input_channels = "any"``) and untrained trainable models
    take the dataset's channels; trained checkpoints and fixed-channel models keep their own
    (the pipeline then maps the data's channels to them by name).
    """
    from cellbench import registry

    record = registry.metadata(name)
    adapts = record.get("input_channels") == "any" or (record.get("trainer") and checkpoint is None)
    if adapts and "channels" not in kwargs:
        kwargs["channels"] = tuple(dataset.channels)
    return registry.create(name, checkpoint=checkpoint, **kwargs)


def read_embeddings(path: str | os.PathLike) -> pl.DataFrame:
    """Read an embedding parquet (well_id + features) as a polars table."""
    import polars as pl

    return pl.read_parquet(os.fspath(path))
