"""Baseline encoders that need no training: ``random``, ``vit-imagenet``, ``pixel-stats``.

They put the trained encoders' scores on a scale (docs/training.md, "Baselines"):

* ``random`` – a fixed, seeded, randomly initialised timm ViT-S/16 ("random ViT-S/16").
  Whatever a random network recovers is what the architecture and the aggregation give for
  free. It is not the paper's "Random" row: that row is chance (a random map, recall 0.10 at
  (0.05, 0.95) by construction), which the leaderboard shows as its own computed row.
* ``vit-imagenet`` – timm's ViT-S/16 with ImageNet weights (augreg in21k→in1k), the first
  layer adapted to the data's channels with timm's own ``adapt_input_conv`` (or, as an
  option, applied to each channel as a grey RGB image with the embeddings concatenated).
* ``pixel-stats`` – per-channel intensity statistics (mean, std, quantiles) and a simple
  texture measure: the "raw pixels" floor any learned encoder must beat.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cellbench.encoders.base import Encoder, TorchEncoder, build_vit
from cellbench.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from timm.models.vision_transformer import VisionTransformer

#: Channel names used when a baseline is created without a dataset (the Bray / JUMP set).
DEFAULT_CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")

IMAGENET_ARCH = "vit_small_patch16_224"
IMAGENET_HUB_ID = "timm/vit_small_patch16_224.augreg_in21k_ft_in1k"
IMAGENET_FILE = "model.safetensors"


def _channels(channels: Any) -> tuple[str, ...]:
    if channels is None:
        return DEFAULT_CHANNELS
    channels = tuple(str(c) for c in channels)
    if not channels:
        raise InputError("an encoder needs at least one input channel; pass channel names")
    return channels


# --- random ---------------------------------------------------------------------------------
def create_random(
    checkpoint: str | os.PathLike | None = None,
    *,
    channels: Any = None,
    input_size: int = 224,
    patch_size: int = 16,
    arch: str = IMAGENET_ARCH,
    seed: int = 0,
    pooling: str = "cls",
) -> Encoder:
    """A randomly initialised ViT, identical for the same seed, channels and sizes.

    The weights are drawn under a forked RNG so creating it never disturbs the caller's
    random state. ``dynamic_img_size`` lets it embed sites smaller than ``input_size``.
    """
    import torch

    if checkpoint is not None:
        raise InputError(
            "the random encoder has no checkpoint; drop --checkpoint (change --seed instead)"
        )
    channels = _channels(channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_vit(arch, len(channels), input_size, patch_size, dynamic_img_size=True)
    encoder = TorchEncoder(
        module,
        channels=channels,
        embed_dim=module.num_features,
        input_size=input_size,
        pooling=pooling,
    )
    encoder.metadata = {"seed": seed}
    return encoder


# --- vit-imagenet ---------------------------------------------------------------------------
def imagenet_weights_path(
    checkpoint: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """Local path of the ImageNet ViT-S/16 weights: ``checkpoint``, the HF cache, or the hub.

    Raises :class:`NotFoundError` with the exact command to fetch them when they are absent.
    """
    from cellbench.encoders.hub import hub_file

    fix = (
        f"download them once with `hf download {IMAGENET_HUB_ID} {IMAGENET_FILE}` on a machine "
        "with internet, or pass --checkpoint /path/to/model.safetensors"
    )
    return hub_file(
        IMAGENET_HUB_ID,
        IMAGENET_FILE,
        what="ImageNet ViT-S/16 weights",
        fix=fix,
        checkpoint=checkpoint,
        download=download,
    )


class PerChannelEncoder(Encoder):
    """Applies a 3-channel (RGB) network to each channel as a grey image; concatenates."""

    def __init__(
        self, module: VisionTransformer, channels: tuple[str, ...], input_size: int
    ) -> None:
        super().__init__()
        self._module = module.eval()
        self.channels = channels
        self.input_size = input_size
        self.embed_dim = module.num_features * len(channels)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        n, c, h, w = images.shape
        with torch.inference_mode():
            grey = (
                images.to(self.device, torch.float32).reshape(n * c, 1, h, w).expand(-1, 3, -1, -1)
            )
            feats = self._module.forward_features(grey)[:, 0]
            return feats.reshape(n, c * feats.shape[-1]).float()


def create_vit_imagenet(
    checkpoint: str | os.PathLike | None = None,
    *,
    channels: Any = None,
    mode: str = "adapt",
    input_size: int = 224,
    download: bool = True,
) -> Encoder:
    """timm ViT-S/16 with ImageNet weights; ``mode`` is ``"adapt"`` or ``"per-channel"``."""
    from cellbench.io import sha256_file

    if mode not in {"adapt", "per-channel"}:
        raise InputError(f"vit-imagenet mode must be 'adapt' or 'per-channel', not {mode!r}")
    channels = _channels(channels)
    path = imagenet_weights_path(checkpoint, download=download)
    in_chans = 3 if mode == "per-channel" else len(channels)
    try:
        module = build_vit(
            IMAGENET_ARCH,
            in_chans,
            input_size,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(path)},
            dynamic_img_size=True,
        )
    except Exception as exc:  # noqa: BLE001 - unpickling / shape errors: the file is not these weights
        raise InputError(
            f"{path} cannot be loaded as the {IMAGENET_ARCH} ImageNet weights ({type(exc).__name__}); "
            "pass the timm checkpoint of that model, or drop --checkpoint to download it."
        ) from None
    if mode == "per-channel":
        encoder: Encoder = PerChannelEncoder(module, channels, input_size)
    else:
        encoder = TorchEncoder(
            module, channels=channels, embed_dim=module.num_features, input_size=input_size
        )
    encoder.weights_sha256 = sha256_file(path)
    encoder.metadata = {"mode": mode}
    return encoder


# --- pixel-stats ----------------------------------------------------------------------------
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
STAT_NAMES: tuple[str, ...] = (
    "mean",
    "std",
    *(f"q{int(q * 100):02d}" for q in QUANTILES),
    "gradient",
    "laplacian_std",
)


class PixelStatsEncoder(Encoder):
    """Per-channel intensity statistics of each image (intensities scaled to [0, 1]).

    Features per channel: mean, std, 7 quantiles, mean absolute gradient (edge density) and
    the std of the discrete Laplacian (fine texture); ``len(STAT_NAMES) * C`` in total,
    ordered channel-major.
    """

    def __init__(self, channels: tuple[str, ...]) -> None:
        super().__init__()
        self.channels = channels
        self.embed_dim = len(STAT_NAMES) * len(channels)
        self.input_size = None

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        return images.to(torch.float32) / 255.0

    def feature_names(self) -> list[str]:
        return [f"{c}_{s}" for c in self.channels for s in STAT_NAMES]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        x = images.to(torch.float32)
        n, c, h, w = x.shape
        flat = x.reshape(n, c, h * w)
        q = torch.quantile(flat, torch.tensor(QUANTILES, dtype=torch.float32), dim=-1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(-2, -1))
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(-2, -1))
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        lap = F.conv2d(x.reshape(n * c, 1, h, w), kernel).reshape(n, c, -1)
        stats = torch.stack(
            [
                flat.mean(-1),
                flat.std(-1, unbiased=False),
                *q.unbind(0),
                (dx + dy) / 2,
                lap.std(-1, unbiased=False),
            ],
            dim=-1,
        )  # (n, c, n_stats)
        return stats.reshape(n, self.embed_dim)


def create_pixel_stats(
    checkpoint: str | os.PathLike | None = None, *, channels: Any = None
) -> Encoder:
    if checkpoint is not None:
        raise InputError("pixel-stats has no weights; drop --checkpoint")
    return PixelStatsEncoder(_channels(channels))
