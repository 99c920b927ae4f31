"""ViT-WSL: perturbation classification, held-out wells, early stopping, its embedding."""

from __future__ import annotations

import json

import pytest
import torch
from _train_fakes import FakeDataset, fixed_batch, overfit_losses  # noqa: I001

from cellbench.train.checkpoint import LOG
from cellbench.train.heldout import BEST, early_stop, restore_best
from cellbench.train.loop import train
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
    _, stats = method(inputs, torch.Generator().manual_seed(0))
    assert method.log_values(stats)["train_accuracy"] == 1.0


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
    assert early_stop(logs, 2) and not early_stop(logs, 3) and not early_stop(logs, None)


def test_training_stops_early_when_heldout_loss_rises(dataset, tmp_path, monkeypatch):
    from cellbench.methods.wsl import WSL

    calls = iter(range(100))
    monkeypatch.setattr(WSL, "validate", lambda self, x, y: {"val_loss": float(next(calls))})
    config = resolve(
        "tiny",
        {
            **method_defaults("vit-wsl"),
            "max_steps": 50,
            "health_every": 2,
            "holdout_fraction": 0.34,
        },
    )
    result = train("vit-wsl", dataset, config, seed=0, out_dir=tmp_path, progress=False)
    # losses 0, 1, 2, 3 at steps 2, 4, 6, 8: no improvement for 3 checks -> stop at step 8
    assert result.stopped == "early_stop" and result.steps_done == 8
    assert result.model_path.exists() and result.log["restored_best_step"] == 2
    # resuming a run that stopped early must not train it further
    model = _state(result.model_path)
    again = train("vit-wsl", dataset, config, seed=0, out_dir=tmp_path, resume=True, progress=False)
    assert again.stopped == "early_stop" and again.steps_done == 8
    _assert_same(_state(again.model_path)["state_dict"], model["state_dict"])


def _wsl_config(**over):
    return resolve("tiny", {**method_defaults("vit-wsl"), "holdout_fraction": 0.34, **over})


def _state(path):
    return torch.load(path, weights_only=True)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_early_stop_keeps_the_weights_of_the_best_heldout_check(dataset, tmp_path, monkeypatch):
    from cellbench.methods.wsl import WSL

    losses, seen = iter([5.0, 4.0, 3.0, 4.0, 5.0, 6.0]), []  # best at the 3rd check (step 6)

    def validate(self, x, y):
        seen.append({k: v.clone() for k, v in self.state_dict().items()})
        return {"val_loss": next(losses)}

    monkeypatch.setattr(WSL, "validate", validate)
    result = train(
        "vit-wsl",
        dataset,
        _wsl_config(max_steps=50, health_every=2),
        seed=0,
        out_dir=tmp_path,
        progress=False,
    )
    assert result.stopped == "early_stop" and result.steps_done == 12
    model, ckpt = _state(result.model_path), _state(result.checkpoint_path)
    assert model["step"] == 6 and result.log["restored_best_step"] == 6
    assert json.loads((tmp_path / LOG).read_text())["restored_best_step"] == 6
    _assert_same(model["state_dict"], seen[2])
    _assert_same(model["state_dict"], _state(tmp_path / BEST)["state_dict"])
    # the checkpoint keeps the last weights, so --resume continues the same run
    assert ckpt["step"] == 12
    _assert_same(ckpt["state_dict"], seen[-1])
    assert any(not torch.equal(seen[2][k], seen[-1][k]) for k in seen[2])


def test_a_fresh_run_drops_the_best_weights_of_an_earlier_run(dataset, tmp_path):
    torch.save({"step": 0, "state_dict": {}}, tmp_path / BEST)
    result = train(
        "vit-wsl", dataset, _wsl_config(max_steps=0), seed=0, out_dir=tmp_path, progress=False
    )
    assert not (tmp_path / BEST).exists() and "restored_best_step" not in result.log
    assert not result.log["warnings"]


def test_a_best_file_that_is_not_the_logged_best_is_not_restored(dataset, tmp_path):
    method = build_method("vit-wsl", resolve("tiny"), len(dataset.channels), dataset.n_pert)
    torch.save({"step": 4, "state_dict": method.state_dict()}, tmp_path / BEST)
    warnings = []
    health = [{"step": 2, "val_loss": 1.0}, {"step": 4, "val_loss": 2.0}]
    assert restore_best(tmp_path / BEST, method, health, warnings) is None
    assert "not the best held-out step 2" in warnings[0]


@pytest.mark.parametrize("after_best", [False, True])
def test_resume_with_early_stopping_equals_uninterrupted_run(dataset, tmp_path, after_best):
    """Killed after a new best: the last checkpoint is before the best step (the best is found
    again on resume) or after it (the best exists only in best_heldout.pt, which survives)."""
    torch.set_num_threads(1)
    over = {"max_steps": 40, "health_every": 1}
    full = train(
        "vit-wsl", dataset, _wsl_config(**over), seed=0, out_dir=tmp_path / "full", progress=False
    )
    best = full.log["restored_best_step"]
    assert full.stopped == "early_stop" and full.steps_done == best + 3 and best >= 4
    # checkpoints at best + 1 (after the best) or at best - 1 (before it); killed one step later
    every = best + 1 if after_best else best - 1
    over.update(checkpoint_every=every)
    out = tmp_path / "resumed"
    killed = train(
        "vit-wsl",
        dataset,
        _wsl_config(**over),
        seed=0,
        out_dir=out,
        progress=False,
        stop_at=best + 2 if after_best else best + 1,
    )
    assert killed.model_path is None and _state(killed.checkpoint_path)["step"] == every
    assert _state(out / BEST)["step"] == best
    resumed = train(
        "vit-wsl", dataset, _wsl_config(**over), seed=0, out_dir=out, progress=False, resume=True
    )
    assert resumed.stopped == "early_stop" and resumed.log["restored_best_step"] == best
    assert resumed.steps_done == full.steps_done
    assert [h["val_loss"] for h in resumed.log["health"]] == [
        h["val_loss"] for h in full.log["health"]
    ]
    _assert_same(_state(full.model_path)["state_dict"], _state(resumed.model_path)["state_dict"])
    _assert_same(
        _state(full.checkpoint_path)["state_dict"], _state(resumed.checkpoint_path)["state_dict"]
    )


def test_embedding_is_mean_patch_token_without_classifier(dataset, tmp_path):
    from cellbench.methods.wsl import create
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
