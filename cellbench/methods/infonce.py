"""InfoNCE on cross-well pairs: a positive control for MSN (and an extra ablation row).

The same pairs CWA-MSN sees - a view of one well and a view of *another* well of the same
perturbation - trained with the symmetric InfoNCE / NT-Xent objective of CLIP and SimCLR
(Oord et al. 2018, arXiv:1807.03748; Chen et al. 2020, arXiv:2002.05709; Radford et al. 2021):
``(CE(a @ t.T / tau, diag) + CE(t @ a.T / tau, diag)) / 2`` on L2-normalised projections.
Other pairs of the same perturbation in the batch are not used as negatives (masked out).
Under DDP the projections of all ranks are gathered, so negatives span the global batch.

If this objective learns biology on a CPU budget where MSN does not, the failure is MSN's, not
the data's or the pipeline's (on an earlier synthetic screen, cross-well InfoNCE learned
in minutes). Embedding: the backbone's CLS token (preset ``pooling``). :func:`create` /
:func:`create_single` are the registry factories of ``infonce-cross`` / ``infonce-single``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cellbench.train.backbone import build_backbone, pool, tokens
from cellbench.train.distributed import gather_rows
from cellbench.train.method import Method, StepInputs
from cellbench.train.presets import TrainConfig
from cellbench.train.views import random_crops, random_flips, standardize


def info_nce(
    a: torch.Tensor, t: torch.Tensor, temperature: float, labels: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of paired rows of ``a`` and ``t`` (B, D); returns (loss, accuracy),
    the accuracy a detached scalar tensor (read back only when it is logged).

    ``labels`` (B,): rows with equal labels other than the pair itself are masked out of the
    negatives (they are positives of another pair, not negatives).
    """
    a = F.normalize(a, dim=1)
    t = F.normalize(t, dim=1)
    logits = a @ t.t() / temperature
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    if labels is not None:
        same = labels[:, None] == labels[None, :]
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    accuracy = (logits.argmax(dim=1) == target).float().mean().detach()
    return loss, accuracy


class InfoNCE(Method):
    """Contrastive training on (anchor well, target well) pairs of one perturbation."""

    def __init__(self, config: TrainConfig, in_chans: int, *, cross_well: bool = True) -> None:
        super().__init__(config)
        self.name = "infonce-cross" if cross_well else "infonce-single"
        self.cross_well = cross_well
        self.pooling = config.pooling
        self.backbone = build_backbone(config, in_chans)
        width = int(self.backbone.embed_dim)
        self.head = nn.Sequential(
            nn.Linear(width, config.proj_hidden),
            nn.GELU(),
            nn.Linear(config.proj_hidden, config.proj_out),
        )

    def _project(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(pool(self.backbone, tokens(self.backbone, views), self.pooling))

    def forward(self, inputs: StepInputs, generator: torch.Generator):
        size = self.config.crop_size
        a = random_flips(random_crops(standardize(inputs.anchor), size, generator), generator)
        t = random_flips(random_crops(standardize(inputs.target), size, generator), generator)
        za, zt = self._project(a), self._project(t)
        labels = gather_rows(inputs.perturbation)
        loss, acc = info_nce(
            gather_rows(za), gather_rows(zt), self.config.infonce_temperature, labels
        )
        return loss, {"pair_accuracy": acc}

    def embed_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return pool(self.backbone, tokens(self.backbone, images), self.pooling)


def create(checkpoint: str | None = None, *, cross_well: bool = True, **kwargs: Any):
    """Registry factory of ``infonce-cross`` (``cross_well=False``: ``infonce-single``)."""
    from cellbench.train.export import create_encoder

    return create_encoder("infonce-cross" if cross_well else "infonce-single", checkpoint, **kwargs)


def create_single(checkpoint: str | None = None, **kwargs: Any):
    """Registry factory of ``infonce-single`` (single-well pairs, the shortcut-prone ablation)."""
    return create(checkpoint, cross_well=False, **kwargs)
