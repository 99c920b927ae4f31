"""CropMAE, single-well and cross-well (Eymaël et al., "Efficient Image Pre-Training with
Siamese Cropped Masked Autoencoders", ECCV 2024, arXiv:2403.17823; the paper's Table 4 ablation).

A reference view (unmasked) and a second view masked at a very high ratio (0.985 by default)
go through the same (siamese) timm ViT encoder; a small decoder (width 256, 4 blocks, 8 heads:
``torch.nn.TransformerDecoderLayer``, self-attention over the second view's tokens then
cross-attention to the reference tokens) reconstructs the masked patches; the loss is the MSE
on masked patches of per-patch-normalised pixels (MAE's ``norm_pix_loss``).

* ``cropmae-single``: the second view is a random crop *inside* the reference crop, resized
  back to the crop size (CropMAE's cropping);
* ``cropmae-cross``: the second view is a crop of *another well of the same perturbation*.

Optimiser (applied by :func:`cellbench.train.methods.method_defaults`): AdamW (0.9, 0.95),
weight decay 0.05. Embedding: the encoder's mean patch token (MAE's linear-probe pooling).
:func:`create` / :func:`create_single` are the registry factories of the two models.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cellbench.train.backbone import build_backbone, num_patches, pool, random_keep, tokens
from cellbench.train.method import Method, StepInputs
from cellbench.train.presets import TrainConfig
from cellbench.train.views import random_crops, random_flips, standardize


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, patch * patch * C), patches in timm's row-major token order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def normalized_patches(images: torch.Tensor, patch: int, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch standardised pixels, the reconstruction target of MAE/CropMAE."""
    p = patchify(images, patch)
    mean = p.mean(dim=-1, keepdim=True)
    var = p.var(dim=-1, keepdim=True, unbiased=False)
    return (p - mean) / torch.sqrt(var + eps)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean over masked patches (``masked`` (B, N) bool) of the per-patch mean squared error."""
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    weights = masked.to(per_patch.dtype)
    return (per_patch * weights).sum() / weights.sum().clamp_min(1.0)


class CropMAE(Method):
    """Siamese cropped masked autoencoder on one well (single) or two wells (cross)."""

    def __init__(self, config: TrainConfig, in_chans: int, *, cross_well: bool = True) -> None:
        super().__init__(config)
        self.name = "cropmae-cross" if cross_well else "cropmae-single"
        self.cross_well = cross_well
        self.pooling = "mean"
        self.backbone = build_backbone(config, in_chans)
        width = int(self.backbone.embed_dim)
        self.patch = int(self.backbone.patch_embed.patch_size[0])
        n = num_patches(self.backbone, config.crop_size)
        dim = config.decoder_dim
        self.enc_to_dec = nn.Linear(width, dim)
        self.ref_to_dec = nn.Linear(width, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, 1 + n, dim))
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        layer = nn.TransformerDecoderLayer(
            dim,
            config.decoder_heads,
            dim_feedforward=4 * dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, config.decoder_depth, norm=nn.LayerNorm(dim))
        self.predict = nn.Linear(dim, self.patch * self.patch * in_chans)

    def no_weight_decay(self) -> set[str]:
        return {"mask_token", "decoder_pos"}

    def _second_view(self, ref: torch.Tensor, target: torch.Tensor, g: torch.Generator):
        size = self.config.crop_size
        if self.cross_well:
            return random_flips(random_crops(target, size, g), g)
        # a random crop inside the reference (side 1/2 to 1 of it), resized to the crop size
        side = int(torch.randint(max(size // 2, self.patch), size + 1, (1,), generator=g))
        inner = random_crops(ref, side, g)
        if side != size:
            inner = F.interpolate(inner, size=(size, size), mode="bilinear", align_corners=False)
        return random_flips(inner, g)

    def forward(self, inputs: StepInputs, generator: torch.Generator):
        cfg = self.config
        size = cfg.crop_size
        ref = random_flips(random_crops(standardize(inputs.anchor), size, generator), generator)
        view = self._second_view(ref, standardize(inputs.target), generator)
        b = ref.shape[0]
        n = num_patches(self.backbone, size)
        keep = random_keep(b, n, cfg.cropmae_mask_ratio, generator)
        if keep is None:
            keep = torch.arange(n).repeat(b, 1)
        keep = keep.to(ref.device)
        ref_tokens = tokens(self.backbone, ref)  # unmasked reference, CLS + N patches
        kept = tokens(self.backbone, view, keep)  # CLS + kept patches of the masked view

        dec = self.enc_to_dec(kept)
        full = self.mask_token.expand(b, n, -1).clone()
        full.scatter_(1, keep[:, :, None].expand(-1, -1, dec.shape[-1]), dec[:, 1:])
        seq = torch.cat([dec[:, :1], full], dim=1) + self.decoder_pos
        out = self.decoder(seq, self.ref_to_dec(ref_tokens))
        pred = self.predict(out[:, 1:])
        masked = torch.ones(b, n, dtype=torch.bool, device=ref.device)
        masked.scatter_(1, keep, False)
        loss = masked_mse(pred, normalized_patches(view, self.patch), masked)
        return loss, {"masked_patches": masked.sum(dim=1).float().mean()}

    def embed_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return pool(self.backbone, tokens(self.backbone, images), "mean")


def create(checkpoint: str | None = None, *, cross_well: bool = True, **kwargs: Any):
    """Registry factory of ``cropmae-cross`` (``cross_well=False``: ``cropmae-single``)."""
    from cellbench.train.export import create_encoder

    return create_encoder("cropmae-cross" if cross_well else "cropmae-single", checkpoint, **kwargs)


def create_single(checkpoint: str | None = None, **kwargs: Any):
    """Registry factory of ``cropmae-single``."""
    return create(checkpoint, cross_well=False, **kwargs)
