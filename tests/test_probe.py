"""Recall on a held-out probe screen during training: the probe embeds exactly as the
embedding pipeline does, and its recall is logged at step 0 and at every health check."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from cellbench.data import load_dataset
from cellbench.embed import embed_dataset
from cellbench.train.export import create_encoder
from cellbench.train.methods import build_method
from cellbench.train.presets import resolve
from cellbench.train.probe import RecallProbe

BRAY = ("DNA", "ER", "RNA", "AGP", "Mito")


@pytest.fixture(scope="module")
def screen():
    return load_dataset("synthetic-rxrx3-core", size="tiny", seed=0)


def test_probe_embeds_like_the_pipeline(screen, tmp_path):
    torch.manual_seed(0)
    config = resolve("tiny", {})
    method = build_method("cwa-msn", config, len(BRAY)).eval()
    probe = RecallProbe(screen, BRAY, crop=config.crop_size)
    wells, feats = probe.well_embeddings(method)
    # the same weights through the embedding pipeline (channels mapped by name, site
    # standardised then tiled, tiles and sites averaged)
    path = tmp_path / "model.pt"
    torch.save(
        {
            "model": "cwa-msn",
            "config": config.to_dict(),
            "channels": list(BRAY),
            "state_dict": method.state_dict(),
            "step": 0,
        },
        path,
    )
    encoder = create_encoder("cwa-msn", path)
    table = pl.read_parquet(embed_dataset(encoder, screen, tmp_path / "emb", progress=False))
    ref = dict(
        zip(table["well_id"].to_list(), table.select(pl.exclude("well_id")).to_numpy(), strict=True)
    )
    assert len(wells) == len(ref)
    np.testing.assert_allclose(feats, np.stack([ref[w] for w in wells]), rtol=1e-4, atol=1e-5)
    recall = probe(method)["probe_recall"]
    assert 0.0 <= recall <= 1.0


def test_probe_screen_scores_an_untrained_network_near_chance():
    """On the real probe screen an untrained network's map is random-like (recall about 0.1);
    an exact 0 would mean a degenerate map (e.g. an alignment blown up by too few controls)."""
    from cellbench.train.probe import synthetic_probe

    probe = synthetic_probe(BRAY, crop=32)
    recalls = []
    for seed in range(2):
        torch.manual_seed(seed)
        method = build_method("cwa-msn", resolve("quick", {}), len(BRAY)).eval()
        recalls.append(probe(method)["probe_recall"])
    assert all(0.04 < r < 0.2 for r in recalls), recalls


def test_probe_recall_is_logged_during_training(screen, tmp_path):
    from _train_fakes import FakeDataset

    from cellbench.train.loop import train

    torch.set_num_threads(1)
    config = resolve("tiny", {"max_steps": 6, "health_every": 3})
    data = FakeDataset()
    probe = RecallProbe(screen, tuple(data.channels), crop=config.crop_size)
    result = train(
        "cwa-msn", data, config, seed=0, out_dir=tmp_path, progress=False, recall_probe=probe
    )
    steps = [h["step"] for h in result.log["health"] if "probe_recall" in h]
    assert steps == [0, 3, 6]
    # the probe does not change training: same weights as a run without it
    plain = train("cwa-msn", data, config, seed=0, out_dir=tmp_path / "plain", progress=False)
    for key, value in result.method.state_dict().items():
        assert torch.equal(value, plain.method.state_dict()[key]), key
