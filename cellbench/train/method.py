"""What the shared training loop needs from a training method (MSN, CropMAE, WSL, InfoNCE).

A method is an ``nn.Module`` whose ``forward`` takes one step's data and returns the loss and
its step statistics; the loop owns everything else (optimiser, schedules, EMA, checkpoints,
DDP). The statistics may stay tensors on the device: the loop turns them into logged numbers
with :meth:`Method.log_values` only on the steps it logs, so a GPU step needs no host sync.
Checks of a method's own failure modes (MSN's frozen loss) are its :meth:`Method.health_warnings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cellbench.train.presets import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from timm.models.vision_transformer import VisionTransformer


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
    #: logged values also copied into each health record (MSN: its prototype usage and loss terms)
    health_keys: tuple[str, ...] = ()
    #: the timm ViT it trains (set by each subclass)
    backbone: VisionTransformer

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def forward(  # pragma: no cover - abstract
        self, inputs: StepInputs, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss of one step and its statistics (floats or detached tensors)."""
        raise NotImplementedError

    def log_values(self, stats: Mapping[str, Any]) -> dict[str, float]:
        """The numbers logged for a step, from ``forward``'s statistics (this reads them back
        from the device: called on logged steps only). Default: each statistic as a float."""
        return {key: float(value) for key, value in stats.items()}

    def health_warnings(self, history: list[dict[str, Any]]) -> dict[str, str]:
        """Problems the logged ``history`` shows now, as {a phrase of the message: message};
        the loop records each phrase once. None by default."""
        return {}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(target, online) module pairs updated by EMA after each step (none by default)."""
        return []

    def embedding_backbone(self) -> VisionTransformer:
        """The timm ViT whose tokens are the embedding (MSN: the EMA target backbone)."""
        return self.backbone

    def no_weight_decay(self) -> set[str]:
        """Names of parameters exempt from weight decay besides biases and norms (1-D)."""
        return set()

    def no_grad_clip(self) -> set[str]:
        """Names of parameters left out of gradient-norm clipping (MSN: the prototypes)."""
        return set()
