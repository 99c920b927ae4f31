"""One conformance test over every registered encoder, as timm tests every model.

For each name in the registry: the encoder builds (skipped, with the reason, only when its
optional dependency or weights are absent), its metadata record is complete, it is in eval
mode, handles the channels it is given, and maps (N, C, H, W) to finite float32 (N, D) with
D == ``embed_dim``, deterministically. Reference encoders embed wells from the ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes_imaging import FakeDataset

from cellbench import registry
from cellbench.errors import CellbenchError, NotFoundError

# Small inputs keep the whole parametrisation to a few seconds on 2 CPU cores.
SMALL = {
    "random": {"input_size": 32, "patch_size": 8},
    "vit-imagenet": {"download": False, "input_size": 32},  # HF cache only: no network
    "openphenom": {"download": False},
    "cellprofiler": {"measurements": ("intensity", "sizeshape")},  # granularity/texture: slow
}
_STAND_INS: dict[str, str] = {}


def _stand_in_weights(name: str, directory) -> str | None:
    """Weights in the real file format, randomly drawn, for released models whose real weights
    are absent (no network here): the code path is exercised, the numbers are meaningless."""
    if name in _STAND_INS:
        return _STAND_INS[name]
    if name == "openphenom":
        from cellbench.encoders import openphenom as op

        torch.manual_seed(0)
        vit = op.build_backbone(embed_dim=32, depth=2, num_heads=2, patch_size=8, img_size=32)
        state = {f"encoder.vit_backbone.{k}": v for k, v in vit.state_dict().items()}
        path = directory / "openphenom"
        path.mkdir()
        torch.save({"state_dict": state}, path / "model.safetensors")
    elif name == "vit-imagenet":
        import timm
        from safetensors.torch import save_file

        torch.manual_seed(0)
        model = timm.create_model("vit_small_patch16_224", pretrained=False)
        path = directory / "vit_small.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        return None
    _STAND_INS[name] = str(path)
    return _STAND_INS[name]


CHANNELS = ("DNA", "RNA", "AGP")


def _build(name: str, directory=None, **extra):
    """Create ``name``; stand-in weights for released models, skip only what cannot be built."""
    record = registry.metadata(name)
    kwargs = dict(SMALL.get(name, {}))
    if record["input_channels"] == "any":
        kwargs["channels"] = extra.pop("channels", CHANNELS)
    if record.get("trainer"):  # untrained model of the smallest training preset
        kwargs["preset"] = "tiny"
    kwargs.update(extra)
    try:
        try:
            return _create(name, kwargs)
        except NotFoundError:
            stand_in = _STAND_INS.get(name) or (directory and _stand_in_weights(name, directory))
            if not stand_in:
                raise
            return _create(name, {**kwargs, "checkpoint": stand_in})
    except NotFoundError as exc:  # optional dependency or weights absent
        pytest.skip(f"{name}: {exc}")
    except CellbenchError as exc:  # e.g. a trained model created without a checkpoint
        if "checkpoint" in str(exc).lower():
            pytest.skip(f"{name}: needs trained weights ({exc})")
        raise


def _create(name, kwargs):
    torch.manual_seed(123)  # untrained models draw their weights from the global RNG
    return registry.create(name, **kwargs)


def _images(encoder, n=3, channels=None, seed=0):
    size = encoder.input_size or 40
    c = len(channels or encoder.channels)
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)
    return encoder.preprocess(raw)


@pytest.mark.parametrize("name", registry.list_models())
def test_encoder_conformance(name, tmp_path_factory):
    encoder = _build(name, tmp_path_factory.mktemp(name))
    record = encoder.metadata

    # metadata complete, and consistent with the encoder
    missing = [k for k in registry.REQUIRED_METADATA if record.get(k) in (None, "")]
    assert not missing, f"{name}: metadata lacks {missing}"
    assert encoder.name == name
    assert isinstance(encoder.channels, tuple)
    assert all(isinstance(c, str) for c in encoder.channels)
    fixed_arch = not record.get("trainer")  # trainable: the width depends on the preset
    if fixed_arch and isinstance(record["embed_dim"], int) and record["input_channels"] != "any":
        assert encoder.embed_dim == record["embed_dim"]
    if encoder.module is not None:
        assert not encoder.module.training, "create() must return the encoder in eval mode"

    if encoder.embeds_wells:  # oracle / nuisance-only: wells from the ground truth
        data = FakeDataset(n_wells=5)
        ids, values = encoder.embed_wells(data)
        assert ids == data.ground_truth["well_id"].to_list()
        assert values.dtype == np.float32 and values.shape == (5, encoder.embed_dim)
        assert np.isfinite(values).all()
        ids2, values2 = encoder.embed_wells(data)
        np.testing.assert_array_equal(values, values2)
        with pytest.raises(CellbenchError):
            encoder.embed(torch.zeros(1, 1, 8, 8))
        return

    # channel handling: an "any"-channel model takes the channels it was given
    if record["input_channels"] == "any":
        assert encoder.channels == CHANNELS
    else:
        assert len(encoder.channels) == len(record["input_channels"])

    x = _images(encoder)
    out = encoder.embed(x)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert tuple(out.shape) == (3, encoder.embed_dim)
    assert torch.isfinite(out).all()
    # deterministic in eval mode, batch-independent, and the same for a second instance
    torch.testing.assert_close(encoder.embed(x), out)
    torch.testing.assert_close(encoder.embed(x[:1]), out[:1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(_build(name).embed(x), out)
    # different images give different embeddings (not a constant function)
    assert not torch.allclose(encoder.embed(_images(encoder, seed=1)), out)

    if record["input_channels"] == "any":
        five = _build(name, channels=("DNA", "ER", "RNA", "AGP", "Mito"))
        y = five.embed(_images(five, n=2))
        assert y.shape[0] == 2 and torch.isfinite(y).all()
