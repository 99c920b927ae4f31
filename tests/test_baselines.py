"""Baselines: pixel statistics against numpy, the seeded random ViT, ViT-ImageNet's two modes
(with stand-in weights in timm's file format: no network here), reference encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes_imaging import FakeDataset

from cellbench import registry
from cellbench.encoders import baselines
from cellbench.errors import InputError


def test_pixel_stats_match_numpy():
    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (2, 3, 12, 10), generator=g, dtype=torch.uint8)
    enc = registry.create("pixel-stats", channels=("DNA", "RNA", "Mito"))
    out = enc.embed(enc.preprocess(raw)).numpy().reshape(2, 3, -1)
    x = raw.numpy().astype(np.float64) / 255.0
    names = list(baselines.STAT_NAMES)
    for i in range(2):
        for c in range(3):
            img = x[i, c]
            np.testing.assert_allclose(out[i, c, names.index("mean")], img.mean(), rtol=1e-5)
            np.testing.assert_allclose(out[i, c, names.index("std")], img.std(), rtol=1e-4)
            for q in baselines.QUANTILES:
                k = names.index(f"q{int(q * 100):02d}")
                np.testing.assert_allclose(out[i, c, k], np.quantile(img, q), rtol=1e-4, atol=1e-6)
            grad = (np.abs(np.diff(img, axis=1)).mean() + np.abs(np.diff(img, axis=0)).mean()) / 2
            np.testing.assert_allclose(out[i, c, names.index("gradient")], grad, rtol=1e-4)
            lap = (
                img[:-2, 1:-1]
                + img[2:, 1:-1]
                + img[1:-1, :-2]
                + img[1:-1, 2:]
                - 4 * img[1:-1, 1:-1]
            )
            np.testing.assert_allclose(
                out[i, c, names.index("laplacian_std")], lap.std(), rtol=1e-4
            )
    assert enc.feature_names()[:2] == ["DNA_mean", "DNA_std"]


def test_random_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = registry.create(
        "random",
        channels=("DNA",),
        input_size=16,
        patch_size=8,
        seed=3,
        arch="vit_tiny_patch16_224",
    )
    assert torch.equal(torch.random.get_rng_state(), state)
    b = registry.create(
        "random",
        channels=("DNA",),
        input_size=16,
        patch_size=8,
        seed=3,
        arch="vit_tiny_patch16_224",
    )
    c = registry.create(
        "random",
        channels=("DNA",),
        input_size=16,
        patch_size=8,
        seed=4,
        arch="vit_tiny_patch16_224",
    )
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(a.embed(x), b.embed(x))
    assert not torch.allclose(a.embed(x), c.embed(x))
    with pytest.raises(InputError, match="checkpoint"):
        registry.create("random", checkpoint="w.pt")


@pytest.fixture(scope="module")
def stand_in_imagenet(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False)
    path = tmp_path_factory.mktemp("imagenet") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.state_dict()["patch_embed.proj.weight"]


def test_vit_imagenet_adapts_the_first_layer_with_timm(stand_in_imagenet):
    path, rgb = stand_in_imagenet
    enc = registry.create(
        "vit-imagenet", checkpoint=path, channels=("DNA", "ER", "RNA", "AGP", "Mito"), input_size=32
    )
    w = enc.module.patch_embed.proj.weight
    assert w.shape == (384, 5, 16, 16)
    # timm's adapt_input_conv: the RGB kernels repeated over the channels, scaled by 3 / C
    expected = rgb.repeat(1, 2, 1, 1)[:, :5] * (3 / 5)
    torch.testing.assert_close(w, expected)
    assert enc.weights_sha256 and enc.metadata["mode"] == "adapt"


def test_vit_imagenet_per_channel_concatenates_grey_embeddings(stand_in_imagenet):
    path, _ = stand_in_imagenet
    enc = registry.create(
        "vit-imagenet", checkpoint=path, channels=("DNA", "RNA"), mode="per-channel", input_size=32
    )
    assert enc.embed_dim == 768
    x = torch.randn(2, 2, 32, 32)
    out = enc.embed(x)
    grey = x[:, 1:2].expand(-1, 3, -1, -1)
    with torch.no_grad():
        rna = enc.module.forward_features(grey)[:, 0]
    torch.testing.assert_close(out[:, 384:], rna)
    with pytest.raises(InputError, match="mode"):
        registry.create("vit-imagenet", checkpoint=path, mode="mean")


def test_reference_encoders_need_ground_truth():
    data = FakeDataset(n_wells=3)
    data.ground_truth = None
    with pytest.raises(InputError, match="synthetic"):
        registry.create("oracle").embed_wells(data)
    ids, values = registry.create("nuisance-only").embed_wells(FakeDataset(n_wells=3))
    assert values.shape == (3, 2) and ids[0].startswith("b0")
