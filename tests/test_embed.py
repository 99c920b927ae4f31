"""The embedding pipeline: tiles → sites → well means, parquet contract, cache, resume,
sharding across ranks, channel mapping by name."""

from __future__ import annotations

import json
import threading

import numpy as np
import polars as pl
import pytest
import torch
from fakes_imaging import FakeDataset

from cellbench import registry
from cellbench.embed import channel_plan, embed_dataset, read_metadata, tile
from cellbench.errors import InputError


def _expected_well_means(encoder, data, channel_idx, tile_size=None):
    """Hand computation: embed each site (mean over its tiles), then mean over sites."""
    out = {}
    for well in data.wells["well_id"]:
        idx = [i for i, w in enumerate(data.sites["well_id"]) if w == well]
        site_vecs = []
        for i in idx:
            img = torch.from_numpy(data.site_image(i)[channel_idx])[None]
            whole = encoder.preprocess_whole_sites  # standardise the site, then cut tiles
            if whole:
                img = encoder.preprocess(img)
            if tile_size is None:
                tiles = img
            else:
                s = tile_size
                tiles = torch.cat(
                    [
                        img[..., y : y + s, x : x + s]
                        for y in range(0, img.shape[-2] - s + 1, s)
                        for x in range(0, img.shape[-1] - s + 1, s)
                    ]
                )
            if not whole:
                tiles = encoder.preprocess(tiles)
            site_vecs.append(encoder.embed(tiles).double().mean(0))
        out[well] = torch.stack(site_vecs).mean(0).numpy()
    return out


def test_pixel_stats_well_means_match_hand_computation(tmp_path):
    data = FakeDataset(n_wells=5, sites_per_well=3, size=24)
    enc = registry.create("pixel-stats", channels=data.channels)
    path = embed_dataset(enc, data, tmp_path, batch_size=4, progress=False, shard_wells=2)
    table = pl.read_parquet(path)
    d = enc.embed_dim
    assert table.columns == ["well_id"] + [f"feature_{i}" for i in range(d)]
    assert all(table[c].dtype == pl.Float32 for c in table.columns[1:])
    assert table["well_id"].to_list() == data.wells["well_id"].to_list()
    expected = _expected_well_means(enc, data, list(range(5)))
    for row in table.iter_rows():
        np.testing.assert_allclose(np.array(row[1:]), expected[row[0]], rtol=1e-5, atol=1e-6)
    meta = read_metadata(path)
    assert meta["model"] == "pixel-stats"
    assert json.loads(meta["channels"]) == list(data.channels)
    assert meta["weights_sha256"] == "none" and len(meta["data_hash"]) == 64
    assert meta["n_wells"] == "5" and meta["n_sites"] == "15"
    assert not list(tmp_path.glob(".*shards"))  # shard files cleaned after the merge


def test_tiles_are_embedded_and_averaged(tmp_path):
    data = FakeDataset(n_wells=3, sites_per_well=2, size=32)
    enc = registry.create("random", channels=data.channels, input_size=16, patch_size=8)
    path = embed_dataset(enc, data, tmp_path / "r.parquet", batch_size=3, progress=False)
    table = pl.read_parquet(path)
    expected = _expected_well_means(enc, data, list(range(5)), tile_size=16)
    for row in table.iter_rows():
        np.testing.assert_allclose(np.array(row[1:]), expected[row[0]], rtol=1e-4, atol=1e-4)


def test_sites_are_standardised_before_tiling_as_in_training(tmp_path):
    """A site whose halves differ in brightness: standardising the whole site (as the trainer
    does before cropping) keeps the halves apart; standardising each tile would erase it."""
    gen = torch.Generator().manual_seed(0)
    img = 40 + 10 * torch.rand(5, 32, 32, generator=gen)
    img[:, :, :16] += 100  # left half brighter
    enc = registry.create(
        "random", channels=("DNA", "ER", "RNA", "AGP", "Mito"), input_size=16, patch_size=8
    )
    assert enc.preprocess_whole_sites
    x = enc.preprocess(img[None])
    tiles, t = tile(x, 16)
    per_tile = enc.preprocess(tile(img[None], 16)[0])
    assert t == 4
    # whole-site standardisation: tiles keep their own means; per-tile: every tile has mean 0
    assert per_tile.mean(dim=(-2, -1)).abs().max() < 1e-5
    means = tiles.mean(dim=(-2, -1))  # tiles in row-major order: 0, 2 left; 1, 3 right
    assert (means[[0, 2]] > 0.5).all() and (means[[1, 3]] < -0.5).all()


def test_tile_shapes():
    x = torch.arange(2 * 1 * 5 * 7, dtype=torch.float32).reshape(2, 1, 5, 7)
    tiles, t = tile(x, 2)
    assert t == 6 and tiles.shape == (12, 1, 2, 2)  # 2x3 grid, centred: rows 0..3, cols 0..5
    torch.testing.assert_close(tiles[0], x[0, :, 0:2, 0:2])
    torch.testing.assert_close(tiles[5], x[0, :, 2:4, 4:6])
    whole, t1 = tile(x, None)
    assert t1 == 1 and whole is x


def test_channels_are_mapped_by_name(tmp_path):
    data = FakeDataset(n_wells=3, sites_per_well=1, size=16, channels=("DNA", "ER", "RNA"))
    enc = registry.create("pixel-stats", channels=("RNA", "dna"))
    assert channel_plan(data.channels, enc.channels) == [(2,), (0,)]
    table = pl.read_parquet(embed_dataset(enc, data, tmp_path, progress=False))
    expected = _expected_well_means(enc, data, [2, 0])
    for row in table.iter_rows():
        np.testing.assert_allclose(np.array(row[1:]), expected[row[0]], rtol=1e-5, atol=1e-6)

    needs_mito = registry.create("pixel-stats", channels=("DNA", "Mito"))
    with pytest.raises(InputError, match="Mito"):
        embed_dataset(needs_mito, data, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").glob("*.parquet"))


def test_derived_channel_is_the_mean_of_its_sources(tmp_path):
    # RxRx3-style data (Actin, Golgi separate) for a Bray-channel model that wants AGP
    data = FakeDataset(n_wells=2, sites_per_well=1, size=16, channels=("Hoechst", "Actin", "Golgi"))
    enc = registry.create("pixel-stats", channels=("DNA", "AGP"))
    assert channel_plan(data.channels, enc.channels) == [(0,), (1, 2)]
    path = embed_dataset(enc, data, tmp_path, progress=False)
    assert json.loads(read_metadata(path)["channels"]) == ["Hoechst", "mean(Actin,Golgi)"]
    img = data.site_image(0).astype(np.float32)
    agp = np.rint((img[1] + img[2]) / 2).astype(np.uint8)
    x = torch.from_numpy(np.stack([img[0].astype(np.uint8), agp])[None])
    expected = enc.embed(enc.preprocess(x))[0].numpy()
    np.testing.assert_allclose(pl.read_parquet(path).row(0)[1:], expected, rtol=1e-5, atol=1e-6)


def test_cached_by_model_and_data_hash(tmp_path):
    data = FakeDataset(n_wells=4, sites_per_well=2, size=16)
    enc = registry.create("pixel-stats", channels=data.channels)
    first = embed_dataset(enc, data, tmp_path, progress=False, num_workers=0)
    reads = data.reads
    again = embed_dataset(enc, data, tmp_path, progress=False, num_workers=0)
    assert again == first and data.reads == reads  # nothing re-read
    other = FakeDataset(n_wells=4, sites_per_well=3, size=16)
    assert embed_dataset(enc, other, tmp_path, progress=False) != first  # other data, other key


class _Dies(FakeDataset):
    """Raises after a number of site reads: a run killed mid-way."""

    def __init__(self, die_after: int, **kw) -> None:
        super().__init__(**kw)
        self.die_after = die_after

    def read_sites(self, indices):
        if self.reads + len(indices) > self.die_after:
            raise KeyboardInterrupt("killed")
        return super().read_sites(indices)


def test_resume_skips_finished_shards_and_matches_uninterrupted(tmp_path):
    kw = dict(n_wells=6, sites_per_well=2, size=16)
    enc = registry.create("pixel-stats", channels=FakeDataset(**kw).channels)
    full = pl.read_parquet(
        embed_dataset(enc, FakeDataset(**kw), tmp_path / "full", progress=False, shard_wells=2)
    )

    dying = _Dies(die_after=9, **kw)
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(
            enc, dying, tmp_path / "run", batch_size=2, progress=False, shard_wells=2, num_workers=0
        )
    assert not list((tmp_path / "run").glob("*.parquet"))  # no final file from a killed run
    done = sorted(p.name for p in (tmp_path / "run").glob(".*shards/shard-*.parquet"))
    assert done == ["shard-00000.parquet", "shard-00001.parquet"]

    healthy = FakeDataset(**kw)
    path = embed_dataset(
        enc, healthy, tmp_path / "run", batch_size=2, progress=False, shard_wells=2, num_workers=0
    )
    assert healthy.reads == 1 + 4  # a 1-site probe + only the last shard's 4 sites
    assert pl.read_parquet(path).equals(full)


def test_shards_split_across_ranks_and_merge(tmp_path):
    kw = dict(n_wells=5, sites_per_well=2, size=16)
    enc = registry.create("pixel-stats", channels=FakeDataset(**kw).channels)
    single = pl.read_parquet(
        embed_dataset(enc, FakeDataset(**kw), tmp_path / "one", progress=False, shard_wells=1)
    )

    ranks = [FakeDataset(**kw), FakeDataset(**kw)]
    results = {}

    def run(rank):
        results[rank] = embed_dataset(
            enc,
            ranks[rank],
            tmp_path / "two",
            progress=False,
            shard_wells=1,
            rank=rank,
            world_size=2,
            merge_timeout_s=60,
            num_workers=0,
        )

    threads = [threading.Thread(target=run, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1]
    assert ranks[0].reads == 1 + 3 * 2 and ranks[1].reads == 1 + 2 * 2  # shards 0,2,4 vs 1,3
    assert pl.read_parquet(results[0]).equals(single)


def test_merge_deduplicates_well_ids(tmp_path):
    from cellbench.embed import _merge, _write_parquet

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _write_parquet(a, ["w1", "w2"], np.array([[1.0], [2.0]]), {}, {"n_sites": [1, 1]})
    _write_parquet(b, ["w2", "w3"], np.array([[9.0], [3.0]]), {}, {"n_sites": [1, 1]})
    _merge(tmp_path / "m.parquet", [a, b], ["w3", "w2", "w1"], {"model": "x"})
    merged = pl.read_parquet(tmp_path / "m.parquet")
    assert merged["well_id"].to_list() == ["w3", "w2", "w1"]
    assert merged["feature_0"].to_list() == [3.0, 2.0, 1.0]


def test_reference_encoders_write_ground_truth(tmp_path):
    data = FakeDataset(n_wells=4)
    path = embed_dataset(registry.create("oracle"), data, tmp_path, progress=False)
    table = pl.read_parquet(path)
    assert table["well_id"].to_list() == data.ground_truth["well_id"].to_list()
    np.testing.assert_allclose(
        table.select("feature_0", "feature_1", "feature_2").to_numpy(),
        data.ground_truth.select("latent_0", "latent_1", "latent_2").to_numpy(),
        rtol=1e-6,
    )
    assert data.reads == 0
    nuis = pl.read_parquet(
        embed_dataset(registry.create("nuisance-only"), data, tmp_path, progress=False)
    )
    assert nuis.width == 1 + 2


def test_embedding_is_deterministic_bytes(tmp_path):
    data = FakeDataset(n_wells=3, sites_per_well=2, size=16)
    enc = registry.create("random", channels=data.channels, input_size=16, patch_size=8)
    a = embed_dataset(enc, data, tmp_path / "a", progress=False)
    b = embed_dataset(
        registry.create("random", channels=data.channels, input_size=16, patch_size=8),
        FakeDataset(n_wells=3, sites_per_well=2, size=16),
        tmp_path / "b",
        progress=False,
    )
    assert a.read_bytes() == b.read_bytes()


def test_cli_embed_on_the_tiny_synthetic_screen(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cellbench.cli import app

    monkeypatch.setenv("CELLBENCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "emb"
    args = [
        "embed",
        "--model",
        "pixel-stats",
        "--data",
        "synthetic",
        "--size",
        "tiny",
        "--out",
        str(out),
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    path = next(out.glob("pixel-stats-*.parquet"))
    table = pl.read_parquet(path)
    meta = read_metadata(path)
    channels = json.loads(meta["channels"])
    assert len(channels) == 6 and channels[0] == "DNA"
    assert table.width == 1 + 11 * 6 and table["well_id"].n_unique() == table.height
    assert np.isfinite(table.drop("well_id").to_numpy()).all()

    typo = CliRunner().invoke(
        app,
        [
            "embed",
            "--model",
            "pixel-stat",
            "--data",
            "synthetic",
            "--size",
            "tiny",
            "--out",
            str(out),
        ],
    )
    assert typo.exit_code == 2 and "pixel-stats" in typo.output


def test_worker_processes_give_the_same_bytes(tmp_path):
    kw = dict(n_wells=5, sites_per_well=3, size=16)
    enc = registry.create("pixel-stats", channels=FakeDataset(**kw).channels)
    a = embed_dataset(
        enc,
        FakeDataset(**kw),
        tmp_path / "thread",
        batch_size=4,
        progress=False,
        num_workers=0,
        shard_wells=2,
    )
    b = embed_dataset(
        enc,
        FakeDataset(**kw),
        tmp_path / "proc",
        batch_size=4,
        progress=False,
        num_workers=1,
        shard_wells=2,
    )
    assert a.read_bytes() == b.read_bytes()


TORCHRUN_WORKER = """
import json, os, sys
sys.path.insert(0, {tests!r})
import torch
import torch.distributed as dist
torch.set_num_threads(1)
from fakes_imaging import FakeDataset
from cellbench import registry
from cellbench.embed import embed_dataset

if sys.argv[2] == "gloo":
    dist.init_process_group("gloo")
data = FakeDataset(n_wells=5, sites_per_well=2, size=16)
enc = registry.create("pixel-stats", channels=data.channels)
path = embed_dataset(enc, data, sys.argv[1], progress=False, shard_wells=1, num_workers=0)
with open(os.path.join(sys.argv[1], f"rank{{os.environ['RANK']}}.json"), "w") as f:
    json.dump({{"path": str(path), "reads": data.reads, "exists": path.is_file()}}, f)
if dist.is_initialized():
    dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["gloo"])  # env-only ranks: test_shards_split_across_ranks
def test_torchrun_two_ranks_split_and_merge(tmp_path, backend):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "worker.py"
    script.write_text(TORCHRUN_WORKER.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "emb"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(out),
        backend,
    ]
    proc = subprocess.run(
        cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["path"] == r1["path"] and r0["exists"] and r1["exists"]
    assert r0["reads"] == 1 + 3 * 2 and r1["reads"] == 1 + 2 * 2  # shards 0, 2, 4 | 1, 3
    data = FakeDataset(n_wells=5, sites_per_well=2, size=16)
    single = embed_dataset(
        registry.create("pixel-stats", channels=data.channels),
        data,
        tmp_path / "one",
        progress=False,
    )
    assert pl.read_parquet(r0["path"]).equals(pl.read_parquet(single))


def test_two_screens_with_the_same_site_ids_get_different_keys(tmp_path):
    from cellbench.embed import data_hash

    a, b = FakeDataset(seed=0), FakeDataset(seed=1)  # same ids, other pixels
    a.root, b.root = tmp_path / "seed0", tmp_path / "seed1"
    assert data_hash(a) != data_hash(b)
    b.root = a.root
    assert data_hash(a) == data_hash(b)
    a.data_hash = "given"
    assert data_hash(a) == "given"


def test_shards_of_another_model_are_not_merged_in(tmp_path):
    """A killed embed leaves shards; embedding another model to the same file must not reuse
    them (its rows would carry the first model's numbers under the second model's hash)."""
    kw = dict(n_wells=6, sites_per_well=2, size=16)
    channels = FakeDataset(**kw).channels
    first = registry.create("random", channels=channels, input_size=16, patch_size=8, seed=0)
    second = registry.create("random", channels=channels, input_size=16, patch_size=8, seed=1)
    target = tmp_path / "E" / "x.parquet"
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(
            first,
            _Dies(die_after=9, **kw),
            target,
            batch_size=2,
            progress=False,
            shard_wells=2,
            num_workers=0,
        )
    assert list(target.parent.glob(".*shards/shard-*.parquet"))  # the killed run's shards
    got = pl.read_parquet(
        embed_dataset(
            second,
            FakeDataset(**kw),
            target,
            batch_size=2,
            progress=False,
            shard_wells=2,
            num_workers=0,
        )
    )
    fresh = pl.read_parquet(
        embed_dataset(
            second,
            FakeDataset(**kw),
            tmp_path / "fresh.parquet",
            batch_size=2,
            progress=False,
            shard_wells=2,
            num_workers=0,
        )
    )
    assert got.equals(fresh)
    assert not list(target.parent.glob(".*shards"))  # the stale shards are gone too


def test_shards_cut_with_another_shard_size_are_not_reused(tmp_path):
    kw = dict(n_wells=6, sites_per_well=2, size=16)
    enc = registry.create("pixel-stats", channels=FakeDataset(**kw).channels)
    full = pl.read_parquet(
        embed_dataset(enc, FakeDataset(**kw), tmp_path / "full.parquet", progress=False)
    )
    with pytest.raises(KeyboardInterrupt):
        embed_dataset(
            enc,
            _Dies(die_after=9, **kw),
            tmp_path / "x.parquet",
            batch_size=2,
            progress=False,
            shard_wells=2,
            num_workers=0,
        )
    path = embed_dataset(
        enc,
        FakeDataset(**kw),
        tmp_path / "x.parquet",
        batch_size=2,
        progress=False,
        shard_wells=3,
        num_workers=0,
    )
    assert pl.read_parquet(path).equals(full)


CONCURRENT_WORKER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from fakes_imaging import FakeDataset
from cellbench import registry
from cellbench.embed import embed_dataset

class Slow(FakeDataset):
    def read_sites(self, indices):
        while not Path(sys.argv[3]).exists():  # the other process is about to embed too
            time.sleep(0.05)
        time.sleep(0.3)
        return super().read_sites(indices)

data = Slow(n_wells=6, sites_per_well=2, size=16)
enc = registry.create("pixel-stats", channels=data.channels)
if sys.argv[4] == "second":
    Path(sys.argv[3]).touch()
path = embed_dataset(enc, data, sys.argv[1], batch_size=2, shard_wells=2, progress=False, num_workers=0)
Path(sys.argv[2]).write_text(json.dumps({{"path": str(path), "reads": data.reads}}))
"""


@pytest.mark.slow
def test_two_processes_embedding_one_target_share_the_work(tmp_path):
    """The second waits for the first (a lock per target) and reuses its file, instead of
    racing it for the shard folder the first removes when it finishes."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "worker.py"
    script.write_text(CONCURRENT_WORKER.format(tests=str(Path(__file__).parent)))
    target = tmp_path / "E" / "x.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(k: int, role: str) -> subprocess.Popen:
        args = [
            sys.executable,
            str(script),
            str(target),
            str(tmp_path / f"r{k}.json"),
            str(tmp_path / "ready"),
            role,
        ]
        return subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = start(0, "first")  # starts embedding, then waits until the second is ready
    time.sleep(1.0)
    second = start(1, "second")
    for proc in (first, second):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
    r0, r1 = (json.loads((tmp_path / f"r{k}.json").read_text()) for k in (0, 1))
    assert r0["path"] == r1["path"] == str(target)
    assert r1["reads"] == 0  # waited, then reused the finished file
    data = FakeDataset(n_wells=6, sites_per_well=2, size=16)
    alone = embed_dataset(
        registry.create("pixel-stats", channels=data.channels),
        data,
        tmp_path / "one.parquet",
        progress=False,
    )
    assert pl.read_parquet(target).equals(pl.read_parquet(alone))
    assert not list(target.parent.glob(".*shards"))
