"""Trained checkpoints -> registry encoders.

``model.pt`` (written by :func:`cellbench.train.loop.train`) holds only tensors and plain
values, loaded with ``torch.load(weights_only=True)`` (loading never runs code): the model name, the
resolved config, the channel names, the method's state dict and the step count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellbench.errors import CellbenchError, NotFoundError

DEFAULT_CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")  # Bray / the synthetic-bray screen


def load_model_file(path: str | Path) -> dict[str, Any]:
    from cellbench.io import load_torch_weights

    path = Path(path)
    if not path.exists():
        raise NotFoundError(
            f"checkpoint {path} does not exist; train one with `cellbench train --model NAME` "
            "or pass the path of its model.pt."
        )
    fix = (
        "Pass the model.pt that `cellbench train` wrote"
        + (f" ({path / 'model.pt'})" if (path / "model.pt").is_file() else "")
        + ", or train again."
    )
    data = load_torch_weights(path, what="checkpoint", fix=fix)
    if not isinstance(data, dict) or "state_dict" not in data or "model" not in data:
        raise CellbenchError(
            f"{path} is not a cellbench model file (no 'model'/'state_dict'); pass the model.pt "
            "that `cellbench train` wrote."
        )
    return data


def load_method(path: str | Path):
    """(method, file contents) of a model.pt, weights loaded, in eval mode."""
    from cellbench.train.methods import build_method
    from cellbench.train.presets import from_dict

    data = load_model_file(path)
    config = from_dict(data["config"])
    method = build_method(
        data["model"], config, len(data["channels"]), int(data.get("n_perturbations", 0))
    )
    method.load_state_dict(data["state_dict"])
    return method.eval(), data


def create_encoder(
    name: str,
    checkpoint: str | Path | None = None,
    *,
    preset: str = "quick",
    channels: tuple[str, ...] | None = None,
    pooling: str | None = None,
    pre_norm: bool | None = None,
    **overrides: Any,
):
    """A :class:`cellbench.encoders.base.TorchEncoder` for a trainable model ``name``."""
    import copy

    from torch import nn

    from cellbench.encoders.base import TorchEncoder
    from cellbench.io import sha256_file
    from cellbench.train.methods import build_method
    from cellbench.train.presets import resolve

    if checkpoint is not None:
        method, data = load_method(checkpoint)
        if data["model"] != name:
            raise CellbenchError(
                f"checkpoint {checkpoint} holds a {data['model']!r} model, not {name!r}; "
                f"load it as --model {data['model']}."
            )
        chans = tuple(data["channels"])
        sha = sha256_file(checkpoint)
    else:
        chans = tuple(channels or DEFAULT_CHANNELS)
        method = build_method(name, resolve(preset, overrides), len(chans), 2).eval()
        sha = None
    cfg = method.config
    pooling = pooling or method.pooling
    backbone = copy.deepcopy(method.embedding_backbone())
    if pre_norm if pre_norm is not None else cfg.pre_norm_embedding:
        backbone.norm = nn.Identity()
    encoder = TorchEncoder(
        backbone,
        channels=chans,
        embed_dim=int(backbone.embed_dim),
        input_size=cfg.crop_size,
        pooling=pooling,
        weights_sha256=sha,
    )
    encoder.name = name
    encoder.train_config = cfg.to_dict()
    return encoder
