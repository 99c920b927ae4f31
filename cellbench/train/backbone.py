"""The timm ViT backbone of every trainer, and token-level access for patch dropping.

The backbone is always timm's ``VisionTransformer`` (built by
:func:`cellbench.encoders.base.build_vit`) with ``dynamic_img_size=True``, so a model trained
on crops embeds tiles of another size (its position embedding is interpolated).
``arch == "custom"`` builds ``vit_small_patch16_224``'s design with the preset's width, depth,
heads and patch size (the small CPU presets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cellbench.train.presets import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from timm.models.vision_transformer import VisionTransformer


def build_backbone(config: TrainConfig, in_chans: int) -> VisionTransformer:
    from cellbench.encoders.base import build_vit

    kwargs: dict = {"dynamic_img_size": True}
    arch = config.arch
    if arch == "custom":
        arch = "vit_small_patch16_224"
        kwargs.update(embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads)
    return build_vit(arch, in_chans, config.crop_size, config.patch_size, **kwargs)


def embed_dim(backbone: VisionTransformer) -> int:
    return int(backbone.embed_dim)


def random_keep(
    n_images: int, n_patches: int, ratio: float, generator: torch.Generator
) -> torch.Tensor | None:
    """Indices (n_images, n_keep) of the patch tokens kept when dropping ``ratio`` of them.

    One independent random subset per image, sorted; ``None`` when nothing is dropped.
    ``n_keep = n_patches - round(ratio * n_patches)`` (at least one token is kept).
    """
    n_drop = int(round(ratio * n_patches))
    if n_drop <= 0:
        return None
    n_keep = max(n_patches - n_drop, 1)
    order = torch.rand(n_images, n_patches, generator=generator).argsort(dim=1)
    return order[:, :n_keep].sort(dim=1).values


def tokens(
    vit: VisionTransformer,
    images: torch.Tensor,
    keep: torch.Tensor | None = None,
    final_norm: bool = True,
) -> torch.Tensor:
    """Output tokens (B, prefix + patches kept, D) of a timm ViT, dropping patch tokens.

    ``keep`` (B, n_keep) indexes the patch tokens that enter the transformer (after the
    position embedding is added, as in MSN/MAE); the prefix (CLS) tokens are always kept.
    """
    x = vit.patch_embed(images)
    x = vit._pos_embed(x)
    if keep is not None:
        n_prefix = vit.num_prefix_tokens
        prefix, patches = x[:, :n_prefix], x[:, n_prefix:]
        index = keep.to(x.device)[:, :, None].expand(-1, -1, patches.shape[-1])
        x = torch.cat([prefix, patches.gather(1, index)], dim=1)
    x = vit.norm_pre(x)
    x = vit.blocks(x)
    return vit.norm(x) if final_norm else x


def num_patches(vit: VisionTransformer, size: int) -> int:
    patch = vit.patch_embed.patch_size
    return (size // patch[0]) * (size // patch[1])


def pool(vit: VisionTransformer, toks: torch.Tensor, pooling: str) -> torch.Tensor:
    """``cls``: the first token; ``mean``: the mean of the patch tokens (prefix excluded)."""
    if pooling == "cls":
        return toks[:, 0]
    if pooling == "mean":
        return toks[:, vit.num_prefix_tokens :].mean(dim=1)
    raise ValueError(f"pooling must be 'cls' or 'mean', not {pooling!r}")
