"""CropMAE: patch targets, masking at 0.985, masked MSE, both variants learn a fixed batch."""

from __future__ import annotations

import pytest
import torch
from _train_fakes import FakeDataset, fixed_batch, overfit_losses  # noqa: I001

from cellbench.methods.cropmae import masked_mse, normalized_patches, patchify
from cellbench.train.backbone import random_keep
from cellbench.train.methods import build_method, method_defaults
from cellbench.train.presets import resolve


def test_patchify_follows_timm_token_order():
    x = torch.randn(2, 3, 16, 24)
    p = patchify(x, 8)
    assert p.shape == (2, 6, 8 * 8 * 3)
    for i in range(6):
        r, c = divmod(i, 3)
        expected = (
            x[:, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8].permute(0, 2, 3, 1).reshape(2, -1)
        )
        torch.testing.assert_close(p[:, i], expected)
    n = normalized_patches(x, 8)
    torch.testing.assert_close(n.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(n.var(-1, unbiased=False), torch.ones(2, 6), atol=1e-3, rtol=0)


def test_masked_mse_by_hand():
    pred = torch.zeros(1, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 0.0], [3.0, 3.0]]])
    masked = torch.tensor([[True, False, True]])
    # per-patch MSE: 1, 2, 9; masked mean over patches 0 and 2 = 5
    assert float(masked_mse(pred, target, masked)) == pytest.approx(5.0)


def test_mask_ratio_0985():
    g = torch.Generator().manual_seed(0)
    for n in (16, 196, 256):
        keep = random_keep(4, n, 0.985, g)
        assert keep.shape[1] == max(n - round(0.985 * n), 1)
    assert random_keep(4, 196, 0.985, g).shape[1] == 3  # ViT-S/16 at 224 px keeps 3 of 196


@pytest.mark.parametrize("name", ["cropmae-cross", "cropmae-single"])
def test_cropmae_learns_a_fixed_batch(name):
    ds = FakeDataset(n_pert=6, wells_per_pert=3)
    torch.manual_seed(0)
    config = resolve("tiny", {**method_defaults(name), "crop_size": 24})
    method = build_method(name, config, len(ds.channels))
    inputs = fixed_batch(ds, cross_well=name.endswith("cross"))
    losses = overfit_losses(method, inputs, steps=15, lr=2e-3)
    assert losses[-1] < 0.8 * losses[0]
    loss, stats = method(inputs, torch.Generator().manual_seed(1))
    assert method.log_values(stats)["masked_patches"] == 9 - 1  # 3x3 patches, one kept
    loss.backward()
    assert method.backbone.patch_embed.proj.weight.grad.abs().sum() > 0  # the encoder learns


def test_cropmae_optimiser_defaults():
    d = method_defaults("cropmae-cross")
    assert d["betas"] == (0.9, 0.95) and d["weight_decay"] == d["final_weight_decay"] == 0.05
