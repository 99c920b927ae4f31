"""OpenPhenom: the release's checkpoint format, key mapping, forward pass and safe loading.

The tests write a tiny checkpoint exactly as the release does (``torch.save({"state_dict":
MAE.state_dict()})`` named ``model.safetensors``, encoder tensors under
``encoder.vit_backbone.``, decoder tensors beside them) and compare the embedding with an
independent re-implementation of the release's forward pass written here from its
description (per-channel projection stacked channel-major, CLS + positions, blocks, mean).
"""

from __future__ import annotations

import json

import pytest
import torch

from cellbench import registry
from cellbench.encoders import openphenom as op
from cellbench.errors import CellbenchError, NotFoundError

TINY = dict(embed_dim=32, depth=2, num_heads=2, patch_size=8, img_size=32, max_in_chans=11)


def _release_state(seed=0):
    torch.manual_seed(seed)
    vit = op.build_backbone(**TINY)
    with torch.no_grad():  # non-trivial layer-scale and norms so a wrong mapping shows
        for name, p in vit.named_parameters():
            if name.endswith(("ls.gamma", "q_norm.weight", "k_norm.weight")):
                p.uniform_(0.5, 1.5)
    state = {f"encoder.vit_backbone.{k}": v.clone() for k, v in vit.state_dict().items()}
    state.update(  # the MAE decoder etc. ride along in the release file
        {
            "decoder.mask_token": torch.zeros(1, 1, 16),
            "decoder.pos_embeddings": torch.zeros(1, 1 + 11 * 16, 16),
            "encoder_decoder_proj.weight": torch.randn(16, 32),
            "decoder_pred.weight": torch.randn(64, 16),
        }
    )
    return vit, state


def _write_release(directory, state, safetensors=False):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.safetensors"
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state}, path)
    (directory / "config.json").write_text(
        json.dumps({"encoder": {"max_in_chans": 11, "channel_agnostic": True}})
    )
    return directory


def _reference_embedding(state, images_uint8):
    """The release's predict(), written independently: norm → tokens → blocks → mean."""
    sd = {
        k[len("encoder.vit_backbone.") :]: v
        for k, v in state.items()
        if k.startswith("encoder.vit_backbone.")
    }
    x = images_uint8.float() / 255.0
    x = torch.nn.functional.instance_norm(x, eps=1e-5)
    w, b = sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"]
    per_channel = [
        torch.nn.functional.conv2d(x[:, i : i + 1], w, b, stride=8) for i in range(x.shape[1])
    ]
    tokens = torch.stack(per_channel, dim=2).flatten(2).transpose(1, 2)  # B (C h w) D
    tokens = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), tokens], dim=1)
    tokens = tokens + sd["pos_embed"][:, : tokens.shape[1]]
    blocks = op.build_backbone(**TINY).blocks  # timm's ParallelScalingBlock, loaded by name
    blocks.load_state_dict(
        {k[len("blocks.") :]: v for k, v in sd.items() if k.startswith("blocks.")}
    )
    with torch.no_grad():
        out = blocks.eval()(tokens)
    return out[:, 1:].mean(dim=1)


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (3, 6, 32, 32), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("safetensors", [False, True])
def test_release_checkpoint_loads_and_embeds_like_the_release(tmp_path, images, safetensors):
    _, state = _release_state()
    folder = _write_release(tmp_path / "OpenPhenom", state, safetensors=safetensors)
    enc = registry.create(
        "openphenom", checkpoint=folder, channels=("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")
    )
    assert enc.embed_dim == 32 and enc.input_size == 32
    assert enc.metadata["weights_license"].lower().startswith("non-commercial")
    got = enc.embed(enc.preprocess(images))
    want = _reference_embedding(state, images)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert len(enc.weights_sha256) == 64


def test_architecture_is_read_from_the_tensors(tmp_path):
    _, state = _release_state()
    arch = op.infer_architecture(op.backbone_state(state))
    assert arch == {**TINY, "mlp_ratio": 4.0, "init_values": 1e-4, "qkv_bias": False}


def test_release_sizes_match_the_paper():
    vit = op.build_backbone()  # the release's defaults: ViT-S/16 at 256, 11 channel slots
    encoder_params = sum(p.numel() for p in vit.parameters() if p.requires_grad)
    assert 21_000_000 < encoder_params < 22_500_000
    assert vit.pos_embed.shape == (1, 1 + 11 * 256, 384) and not vit.pos_embed.requires_grad
    tokens = op.channel_agnostic_tokens(vit, torch.zeros(1, 6, 256, 256))
    assert tokens.shape == (1, 1 + 6 * 256, 384)  # 256 tokens per channel


def test_positions_are_the_release_sincos_table():
    table = op.sincos_positions(8, 2, 3)[0]
    assert torch.equal(table[0], torch.zeros(8))  # CLS slot
    assert torch.equal(table[1:5], table[5:9])  # repeated per channel slot
    # patch (row 1, col 0): [sin(h*w_k), cos(h*w_k), sin(w*w_k), cos(w*w_k)], w_k = 1e4^(-k/2)
    omega = 1.0 / (10000.0 ** (torch.arange(2) / 2))
    expected = torch.cat([torch.sin(omega), torch.cos(omega), torch.zeros(2), torch.ones(2)])
    torch.testing.assert_close(table[1 + 2], expected)


def test_channel_agnostic_and_channelwise(tmp_path, images):
    _, state = _release_state()
    folder = _write_release(tmp_path / "w", state)
    three = registry.create("openphenom", checkpoint=folder, channels=("DNA", "RNA", "Mito"))
    assert three.embed(three.preprocess(images[:, :3])).shape == (3, 32)
    wise = registry.create(
        "openphenom", checkpoint=folder, channels=("DNA", "RNA"), channelwise=True
    )
    out = wise.embed(wise.preprocess(images[:, :2]))
    assert out.shape == (3, 64) and wise.embed_dim == 64
    with pytest.raises(CellbenchError, match="11 channels"):
        three.embed(torch.zeros(1, 12, 32, 32))


def test_preprocessing_is_instance_norm_of_unit_range(images):
    vit = op.build_backbone(**TINY)
    enc = op.OpenPhenomEncoder(vit)
    want = torch.nn.InstanceNorm2d(6, affine=False)(images.float() / 255.0)
    torch.testing.assert_close(enc.preprocess(images), want, rtol=1e-5, atol=1e-5)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "model.safetensors"
    torch.save({"state_dict": {"x": Evil()}}, path)
    with pytest.raises(CellbenchError, match="pickled Python objects"):
        op.read_state_dict(path)


def test_not_a_release_is_a_clear_error(tmp_path):
    path = tmp_path / "bad" / "model.safetensors"
    path.parent.mkdir()
    torch.save({"state_dict": {"foo.weight": torch.zeros(2)}}, path)
    with pytest.raises(CellbenchError, match="not an OpenPhenom"):
        registry.create("openphenom", checkpoint=path.parent)
    path.write_bytes(b"garbage")
    with pytest.raises(CellbenchError, match="corrupt"):
        registry.create("openphenom", checkpoint=path.parent)


def test_absent_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(NotFoundError) as info:
        registry.create("openphenom")
    message = str(info.value)
    assert "hf download recursionpharma/OpenPhenom" in message
    assert "--checkpoint" in message and "NON-COMMERCIAL" in message
    with pytest.raises(NotFoundError, match="do not exist"):
        registry.create("openphenom", checkpoint=tmp_path / "nowhere")
