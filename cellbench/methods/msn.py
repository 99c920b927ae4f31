"""Masked Siamese Networks, cross-well (CWA-MSN) and single-well (the paper's ablation).

MSN: Assran et al., "Masked Siamese Networks for Label-Efficient Learning", ECCV 2022
(arXiv:2204.07141). CWA-MSN: the cross-well alignment of Huang et al. (the CWA-MSN paper),
section 3 (docs/training.md). What this module implements:

* anchor encoder = timm ViT + projection head (hidden BN + GELU, none on the output; the paper's
  384 -> 2048 -> 2048 -> 256, widths taken from the preset; Linear layers trunc-normal std 0.02,
  biases 0), target encoder = its EMA;
* anchor views: ``n_random_views`` random crops + ``n_focal_views`` focal crops of the anchor
  image, crop + flip only; patch tokens of the random views dropped at ``mask_ratio`` (CLS
  kept), focal views unmasked unless ``mask_focal``; backbone and head run once per crop-size
  group (random, focal), so the head's BatchNorm statistics are per group;
  target view: one unmasked random crop of the target image - from *another well of the same
  perturbation* (cwa-msn) or from the same well (single-well-msn);
* probabilities ``softmax(cos(z, prototypes) / tau)`` against learnable prototypes (uniform
  +-1/sqrt(D) init for D = ``proj_out``, L2-normalised only inside the cosine, no weight decay,
  not gradient-clipped);
* targets: sharpened with temperature ``sharpen`` (p^(1/T), renormalised), then Sinkhorn-
  balanced (``sinkhorn_iters`` iterations, over the global batch under DDP), repeated for each
  anchor view;
* loss: ``ce_weight * CE(targets, anchor probs) + me_max_weight * (log K - H(mean anchor prob))``
  (the mean over the global batch under DDP);
* embedding: the EMA target backbone's CLS token (options: mean of patch tokens; before the
  final LayerNorm with ``pre_norm_embedding``, which is what the official evaluation reads).

Where the CWA-MSN paper is silent, the defaults follow the official MSN code
(facebookresearch/msn: ``src/msn_train.py``, ``src/deit.py``, ``src/losses.py``): focal views
unmasked, the head per crop-size group, clipping of the encoder only, its initialisations. The
official code also runs its lr, weight-decay and EMA schedules over 1.25x the training steps;
that is the ``schedule_horizon`` option (default 1.0: the paper ramps EMA to 1.0 by the end).

:func:`create` / :func:`create_single_well` are the registry factories of ``cwa-msn`` /
``single-well-msn`` (a trained checkpoint -> an encoder, :mod:`cellbench.train.export`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from cellbench.metrics.health import (
    frozen_loss_warning,
    prototype_usage,
    uniform_collapse_warning,
)
from cellbench.train.backbone import build_backbone, num_patches, pool, random_keep, tokens
from cellbench.train.distributed import all_reduce_sum_, group_world, mean_over_ranks
from cellbench.train.ema import make_target
from cellbench.train.method import Method, StepInputs
from cellbench.train.presets import TrainConfig
from cellbench.train.views import multi_crop, random_crops, random_flips, standardize

if TYPE_CHECKING:  # pragma: no cover
    from timm.models.vision_transformer import VisionTransformer


# --------------------------------------------------------------------------- the loss
def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p^(1/T) / sum p^(1/T)`` row-wise (MSN target sharpening, T = 0.25)."""
    sharp = probs ** (1.0 / temperature)
    return sharp / sharp.sum(dim=1, keepdim=True)


@torch.no_grad()
def sinkhorn(probs: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Sinkhorn-Knopp balancing of (B, K) assignment probabilities (SwAV/MSN).

    Alternately scales each prototype's total mass to 1/K and each sample's to 1/B (B = the
    global batch: sums are all-reduced under DDP); returns rows that sum to 1.
    """
    world = group_world()
    q = probs.t().to(torch.float64)  # (K, B_local)
    k, b = q.shape[0], q.shape[1] * world
    q = q / all_reduce_sum_(q.sum().reshape(1))
    for _ in range(iters):
        q = q / all_reduce_sum_(q.sum(dim=1, keepdim=True))
        q = q / k
        q = q / q.sum(dim=0, keepdim=True)
        q = q / b
    return (q * b).t().to(probs.dtype)


def prototype_logits(z: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(z, prototypes) / tau, (N, K)."""
    return F.normalize(z, dim=1) @ F.normalize(prototypes, dim=1).t() / temperature


def _global_mean(probs: torch.Tensor) -> torch.Tensor:
    """Mean over rows, over all processes under DDP (differentiable all-reduce)."""
    return mean_over_ranks(probs.mean(dim=0))


def msn_loss(
    anchor_z: torch.Tensor,
    target_z: torch.Tensor,
    prototypes: torch.Tensor,
    *,
    temperature: float = 0.1,
    sharpen_temperature: float = 0.25,
    sinkhorn_iters: int = 3,
    ce_weight: float = 1.0,
    me_max_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The MSN objective.

    ``anchor_z``: (V * B, D) projections of V anchor views, view-major (view v of sample i at
    row ``v * B + i``); ``target_z``: (B, D) projections of the target views (no gradient).
    Returns the loss and a dict of detached tensors: ``ce``, ``me_max`` (scalars; kept on the
    device, so a training step reads nothing back), ``anchor_probs`` and ``targets``.
    """
    batch = target_z.shape[0]
    if anchor_z.shape[0] % batch:
        raise ValueError("anchor rows must be a multiple of the target rows")
    n_views = anchor_z.shape[0] // batch
    probs = F.softmax(prototype_logits(anchor_z, prototypes, temperature), dim=1)
    with torch.no_grad():
        targets = F.softmax(prototype_logits(target_z, prototypes, temperature), dim=1)
        targets = sharpen(targets, sharpen_temperature)
        if sinkhorn_iters > 0:
            targets = sinkhorn(targets, sinkhorn_iters)
        targets_rep = targets.repeat(n_views, 1)
    ce = -(targets_rep * torch.log(probs.clamp_min(1e-30))).sum(dim=1).mean()
    mean_probs = _global_mean(probs)
    entropy = -(mean_probs * torch.log(mean_probs.clamp_min(1e-30))).sum()
    me_max = math.log(prototypes.shape[0]) - entropy
    loss = ce_weight * ce + me_max_weight * me_max
    return loss, {
        "ce": ce.detach(),
        "me_max": me_max.detach(),
        "anchor_probs": probs.detach(),
        "targets": targets.detach(),
    }


# --------------------------------------------------------------------------- the model
class ProjectionHead(nn.Sequential):
    """in -> hidden -> hidden -> out; BatchNorm + GELU after each hidden layer (MSN).

    Linear weights are drawn from a truncated normal with std 0.02 and biases start at 0, as in
    the official MSN code (``init_model`` in facebookresearch/msn ``src/msn_train.py``).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
            nn.Linear(hidden, out_dim),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)


def init_prototypes(num_prototypes: int, dim: int) -> torch.Tensor:
    """(K, D) prototypes drawn from U(-1/sqrt(D), 1/sqrt(D)) (the official MSN code)."""
    bound = 1.0 / math.sqrt(dim)
    return torch.empty(num_prototypes, dim).uniform_(-bound, bound)


class MSN(Method):
    """MSN training method; ``cross_well`` picks CWA-MSN (True) or Single-Well-MSN (False)."""

    health_keys = ("proto_used", "proto_entropy", "ce", "me_max")

    def __init__(self, config: TrainConfig, in_chans: int, *, cross_well: bool = True) -> None:
        super().__init__(config)
        self.name = "cwa-msn" if cross_well else "single-well-msn"
        self.cross_well = cross_well
        self.pooling = config.pooling
        self.backbone = build_backbone(config, in_chans)
        width = int(self.backbone.embed_dim)
        self.head = ProjectionHead(width, config.proj_hidden, config.proj_out)
        self.prototypes = nn.Parameter(init_prototypes(config.num_prototypes, config.proj_out))
        self.target_backbone = make_target(self.backbone)
        self.target_head = make_target(self.head)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.target_backbone, self.backbone), (self.target_head, self.head)]

    def embedding_backbone(self) -> VisionTransformer:
        return self.target_backbone

    def no_weight_decay(self) -> set[str]:
        return {"prototypes"}

    def no_grad_clip(self) -> set[str]:
        # the official code clips the encoder's gradient norm only, never the prototypes'
        return {"prototypes"}

    def _encode_masked(self, views: torch.Tensor, generator: torch.Generator, mask: bool):
        keep = None
        if mask:
            n = num_patches(self.backbone, views.shape[-1])
            keep = random_keep(views.shape[0], n, self.config.mask_ratio, generator)
        return tokens(self.backbone, views, keep)[:, 0]  # CLS

    def forward(self, inputs: StepInputs, generator: torch.Generator):
        cfg = self.config
        anchor = standardize(inputs.anchor)
        target = standardize(inputs.target)
        rand, focal = multi_crop(
            anchor,
            generator,
            crop_size=cfg.crop_size,
            focal_size=cfg.focal_size,
            n_random=cfg.n_random_views,
            n_focal=cfg.n_focal_views,
        )
        target_view = random_flips(random_crops(target, cfg.crop_size, generator), generator)
        # one pass of backbone + head per crop-size group, as the official code does, so the
        # head's BatchNorm normalises random and focal views with their own batch statistics
        z = [self.head(self._encode_masked(rand, generator, True))]
        if focal is not None:
            z.append(self.head(self._encode_masked(focal, generator, cfg.mask_focal)))
        anchor_z = torch.cat(z)
        with torch.no_grad():
            target_z = self.target_head(tokens(self.target_backbone, target_view)[:, 0])
        loss, out = msn_loss(
            anchor_z,
            target_z,
            self.prototypes,
            temperature=cfg.temperature,
            sharpen_temperature=cfg.sharpen,
            sinkhorn_iters=cfg.sinkhorn_iters,
            ce_weight=cfg.ce_weight,
            me_max_weight=cfg.me_max_weight,
        )
        return loss, out

    def log_values(self, stats: Mapping[str, Any]) -> dict[str, float]:
        """The loss terms, CE over log K (1.0 at the uniform fixed point), and prototype usage
        of the anchor predictions and of the targets."""
        ce = float(stats["ce"])
        usage = prototype_usage(stats["anchor_probs"])
        t_usage = prototype_usage(stats["targets"])
        return {
            "ce": ce,
            "me_max": float(stats["me_max"]),
            "ce_over_log_k": ce / math.log(self.config.num_prototypes),
            "proto_used": usage["fraction_used"],
            "proto_entropy": usage["usage_entropy"],
            "target_proto_used": t_usage["fraction_used"],
            "target_max_prob": float(stats["targets"].max(dim=1).values.mean()),
        }

    def health_warnings(self, history: list[dict[str, Any]]) -> dict[str, str]:
        """A frozen loss (CE and me-max constant) and predictions stuck near the uniform
        distribution: the two ways MSN fails to leave its fixed point (Assran et al. 2022)."""
        if not history or "ce" not in history[-1]:
            return {}
        checks = {
            "MSN loss frozen": frozen_loss_warning(
                {"ce": [h["ce"] for h in history], "me_max": [h["me_max"] for h in history]}
            ),
            "MSN near the uniform": uniform_collapse_warning(
                [h["ce_over_log_k"] for h in history if "ce_over_log_k" in h]
            ),
        }
        return {phrase: msg for phrase, msg in checks.items() if msg}

    def embed_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation embedding of standardised images with the target backbone."""
        toks = tokens(self.target_backbone, images, final_norm=not self.config.pre_norm_embedding)
        return pool(self.target_backbone, toks, self.pooling)


# --------------------------------------------------------------------------- the encoder
def create(checkpoint: str | None = None, *, cross_well: bool = True, **kwargs: Any):
    """The registry factory of ``cwa-msn`` (``cross_well=True``) and ``single-well-msn``.

    With a checkpoint written by ``cellbench train``, the trained EMA backbone; without one,
    an untrained model of ``preset`` (default ``quick``) for ``channels``.
    """
    from cellbench.train.export import create_encoder

    name = "cwa-msn" if cross_well else "single-well-msn"
    return create_encoder(name, checkpoint, **kwargs)


def create_single_well(checkpoint: str | None = None, **kwargs: Any):
    """The registry factory of ``single-well-msn``."""
    return create(checkpoint, cross_well=False, **kwargs)
