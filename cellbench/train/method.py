"""What the shared training loop needs from a training method (MSN, CropMAE, WSL, InfoNCE).

A method is an ``nn.Module`` whose ``forward`` takes one step's data and returns the loss and
scalars to log; the loop owns everything else (optimiser, schedules, EMA, checkpoints, DDP).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cellbench.train.presets import TrainConfig


@dataclass
class StepInputs:
    """One step's share of a :class:`cellbench.data.sampling.PairBatch`, as tensors."""

    anchor: torch.Tensor  # uint8 (B, C, H, W)
    target: torch.Tensor  # uint8 (B, C, H, W)
    perturbation: torch.Tensor  # int64 (B,)
    anchor_well: torch.Tensor  # int64 (B,)
    target_well: torch.Tensor  # int64 (B,)


@dataclass
class SamplerOptions:
    """How the method wants its pairs drawn (passed to ``PairSampler``)."""

    cross_well: bool
    include_controls: bool = False
    holdout_fraction: float = 0.0


class Method(nn.Module):
    """Base class. Subclasses implement ``forward``; how their pairs are drawn is
    :func:`cellbench.train.loop.build_method_options`."""

    #: the registry name of the encoder this method trains ("cwa-msn", ...)
    name: str = ""
    #: how the embedding is read: "cls" or "mean"
    pooling: str = "cls"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def forward(  # pragma: no cover - abstract
        self, inputs: StepInputs, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) module pairs updated by EMA after each step (none by default)."""
        return []

    def embedding_backbone(self) -> nn.Module:
        """The timm ViT whose tokens are the embedding (MSN: the EMA target backbone)."""
        return self.backbone  # type: ignore[attr-defined, return-value]

    def no_weight_decay(self) -> set[str]:
        """Names of parameters exempt from weight decay besides biases and norms (1-D)."""
        return set()

    def no_grad_clip(self) -> set[str]:
        """Names of parameters left out of gradient-norm clipping (MSN: the prototypes)."""
        return set()
