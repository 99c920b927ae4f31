"""ViT-WSL: weakly supervised perturbation classification (Moshkov et al. 2024 setting).

The timm ViT classifies which perturbation a training image received (softmax cross-entropy
over the training perturbations, a linear classifier on the mean of the patch tokens).
Augmentations: random crop, flips, 90 degree rotations, per-channel brightness/contrast jitter
(docs/training.md, "ViT-WSL"). Embedding: the backbone's mean patch token, without the classifier.

Supervised WSL memorises the wells of each perturbation (measured on the synthetic screen: well
nearest-neighbour rate 0.73, recall falling with training), so a fraction of each perturbation's wells is held out
(``holdout_fraction``) and the held-out accuracy/loss is logged with the health metrics; with
``early_stop_patience`` set, training stops once the held-out loss has not improved for that
many health checks, and ``model.pt`` keeps the weights of the best held-out check
(:mod:`cellbench.train.heldout`). :func:`create` is the registry factory of ``vit-wsl``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cellbench.train.backbone import build_backbone, pool, tokens
from cellbench.train.method import Method, StepInputs
from cellbench.train.presets import TrainConfig
from cellbench.train.views import (
    center_crop,
    channel_jitter,
    random_crops,
    random_flips,
    random_rot90,
    standardize,
)


class WSL(Method):
    """Perturbation classification with a timm ViT."""

    name = "vit-wsl"

    def __init__(self, config: TrainConfig, in_chans: int, *, n_classes: int) -> None:
        super().__init__(config)
        if n_classes < 2:
            from cellbench.errors import CellbenchError

            raise CellbenchError(
                f"ViT-WSL needs at least two training perturbations, the sampler has {n_classes}; "
                "train it on a dataset with more perturbations."
            )
        self.pooling = "mean"
        self.backbone = build_backbone(config, in_chans)
        self.classifier = nn.Linear(int(self.backbone.embed_dim), n_classes)

    def logits(self, views: torch.Tensor) -> torch.Tensor:
        return self.classifier(pool(self.backbone, tokens(self.backbone, views), "mean"))

    def forward(self, inputs: StepInputs, generator: torch.Generator):
        x = random_crops(standardize(inputs.anchor), self.config.crop_size, generator)
        x = channel_jitter(random_rot90(random_flips(x, generator), generator), generator)
        logits = self.logits(x)
        loss = F.cross_entropy(logits, inputs.perturbation)
        accuracy = (logits.argmax(dim=1) == inputs.perturbation).float().mean()
        return loss, {"train_accuracy": accuracy}

    @torch.no_grad()
    def validate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Held-out loss and accuracy on centre crops of uint8 images (no augmentation)."""
        was = self.training
        self.eval()
        device = self.classifier.weight.device
        images, labels = images.to(device), labels.to(device)
        x = center_crop(standardize(images), self.config.crop_size)
        logits = self.logits(x)
        self.train(was)
        return {
            "val_loss": float(F.cross_entropy(logits, labels)),
            "val_accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
        }

    def embed_tokens(self, images: torch.Tensor) -> torch.Tensor:
        return pool(self.backbone, tokens(self.backbone, images), "mean")


def create(checkpoint: str | None = None, **kwargs: Any):
    """Registry factory of ``vit-wsl``: the backbone's mean patch token (no classifier)."""
    from cellbench.train.export import create_encoder

    return create_encoder("vit-wsl", checkpoint, **kwargs)
