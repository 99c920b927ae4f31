"""ViT-WSL: perturbation classification, held-out wells, early stopping, its embedding."""

from __future__ import annotations

import pytest
import torch
from _train_fakes import FakeDataset, fixed_batch, overfit_losses  # noqa: I001

from cellbench.train.loop import _early_stop, train
from cellbench.train.methods import build_method, method_defaults
from cellbench.train.presets import resolve
from cellbench.train.views import channel_jitter, random_rot90


@pytest.fixture(scope="module")
def dataset():
    return FakeDataset(n_pert=6, wells_per_pert=3)


def test_wsl_learns_the_labels_of_a_fixed_batch(dataset):
    torch.manual_seed(0)
    method = build_method("vit-wsl", resolve("tiny"), len(dataset.channels), dataset.n_pert)
    inputs = fixed_batch(dataset, cross_well=False)
    losses = overfit_losses(method, inputs, steps=20)
    assert losses[-1] < 0.5 * losses[0]
    _, logs = method(inputs, torch.Generator().manual_seed(0))
    assert logs["train_accuracy"] == 1.0


def test_heldout_wells_are_validated_and_never_trained_on(dataset, tmp_path):
    config = resolve("tiny", {"max_steps": 6, "health_every": 3, "holdout_fraction": 0.34})
    result = train("vit-wsl", dataset, config, seed=0, out_dir=tmp_path, progress=False)
    recs = result.log["health"]
    assert [r["step"] for r in recs] == [3, 6]
    assert all("val_loss" in r and 0 <= r["val_accuracy"] <= 1 for r in recs)
    from cellbench.data.sampling import PairSampler

    sampler = PairSampler(dataset, cross_well=False, batch_size=8, seed=0, holdout_fraction=0.34)
    assert len(sampler.heldout_wells) == dataset.n_pert  # one of three wells per perturbation
    for step in range(6):
        batch = sampler.batch_at(step)
        assert not set(batch.anchor_well_index.tolist()) & set(sampler.heldout_wells.tolist())


def test_early_stop_rule():
    logs = [{"val_loss": v} for v in (1.0, 0.8, 0.9, 0.95)]
    assert _early_stop(logs, 2) and not _early_stop(logs, 3) and not _early_stop(logs, None)


def test_training_stops_early_when_heldout_loss_rises(dataset, tmp_path, monkeypatch):
    from cellbench.encoders.wsl import WSL

    calls = iter(range(100))
    monkeypatch.setattr(WSL, "validate", lambda self, x, y: {"val_loss": float(next(calls))})
    config = resolve("tiny", {**method_defaults("vit-wsl"), "max_steps": 50, "health_every": 2,
                              "holdout_fraction": 0.34})
    result = train("vit-wsl", dataset, config, seed=0, out_dir=tmp_path, progress=False)
    # losses 0, 1, 2, 3 at steps 2, 4, 6, 8: no improvement for 3 checks -> stop at step 8
    assert result.stopped == "early_stop" and result.steps_done == 8
    assert result.model_path.exists()


def test_embedding_is_mean_patch_token_without_classifier(dataset, tmp_path):
    from cellbench.encoders.wsl import create
    from cellbench.train.export import load_method

    config = resolve("tiny", {"max_steps": 2})
    result = train("vit-wsl", dataset, config, seed=0, out_dir=tmp_path, progress=False)
    enc = create(checkpoint=str(result.model_path))
    method, _ = load_method(result.model_path)
    x = torch.randn(2, len(dataset.channels), 24, 24)
    assert enc.embed_dim == config.embed_dim != dataset.n_pert
    toks = method.backbone.forward_features(x)
    torch.testing.assert_close(enc.embed(x), toks[:, 1:].mean(dim=1))


def test_wsl_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 5, 5)
    rot = random_rot90(x, g)
    for a, b in zip(rot, x, strict=True):
        assert any(torch.equal(a, b.rot90(k, (-2, -1))) for k in range(4))
    jit = channel_jitter(x, g, brightness=0.2, contrast=0.2)
    # per image and channel an affine map: jit = s * x + t with s in [0.8, 1.2], t in [-0.2, 0.2]
    s = (jit[..., 0, 1] - jit[..., 0, 0]) / (x[..., 0, 1] - x[..., 0, 0])
    t = jit[..., 0, 0] - s * x[..., 0, 0]
    torch.testing.assert_close(jit, s[..., None, None] * x + t[..., None, None])
    assert s.min() >= 0.8 - 1e-5 and s.max() <= 1.2 + 1e-5 and t.abs().max() <= 0.2 + 1e-5
