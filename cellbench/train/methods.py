"""Trainable models by name: which :class:`~cellbench.train.method.Method` trains which encoder.

A model is trainable when its card (``models/<name>.toml``, read through
:mod:`cellbench.registry`) names a ``trainer`` that :data:`TRAINERS` knows; its
``[recipe] sampling`` (``"cross-well"`` / ``"single-well"``) says how its pairs are drawn. The
methods live one layer up, in :mod:`cellbench.methods`; they are imported by the
``"module:Class"`` strings of :data:`TRAINERS` only when a model is built, so
:mod:`cellbench.train` imports nothing above it.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from cellbench import registry
from cellbench.errors import CellbenchError, NotFoundError
from cellbench.train.method import Method
from cellbench.train.presets import TrainConfig


@dataclass(frozen=True)
class Trainer:
    """A training method, as a card's ``trainer`` key names it."""

    target: str  #: the ``Method`` subclass, ``"module:Class"`` in :mod:`cellbench.methods`
    #: classifies the training perturbations: built with ``n_classes``, trained on pairs from
    #: one well and early-stopped on held-out wells (``holdout_fraction``); no ``cross_well``
    supervised: bool = False


#: a card's ``trainer`` -> the method that trains it
TRAINERS: dict[str, Trainer] = {
    "msn": Trainer("cellbench.methods.msn:MSN"),
    "cropmae": Trainer("cellbench.methods.cropmae:CropMAE"),
    "contrastive": Trainer("cellbench.methods.infonce:InfoNCE"),
    "wsl": Trainer("cellbench.methods.wsl:WSL", supervised=True),
}

#: a card's ``[recipe] sampling`` -> ``cross_well``
SAMPLING = {"cross-well": True, "single-well": False}


@dataclass(frozen=True)
class TrainSpec:
    """How a trainable model is built: its card's trainer and sampling."""

    name: str
    trainer: str
    target: str
    supervised: bool
    cross_well: bool

    def kwargs(self, n_perturbations: int) -> dict:
        """The keyword arguments of the method's constructor."""
        if self.supervised:
            return {"n_classes": n_perturbations}
        return {"cross_well": self.cross_well}


def trainable() -> dict[str, registry.ModelCard]:
    """The cards of the trainable models by name: those whose ``trainer`` is a known method."""
    return {name: card for name, card in registry.cards().items() if card.trainer in TRAINERS}


def train_spec(name: str) -> TrainSpec:
    """The :class:`TrainSpec` of ``name``, read from its card; an error names the fix."""
    check_trainable(name)
    card = trainable()[name]
    assert card.trainer is not None  # (trainable() keeps only cards with a known trainer)
    trainer = TRAINERS[card.trainer]
    sampling = card.recipe.get("sampling")
    if sampling not in SAMPLING and not (trainer.supervised and sampling is None):
        raise CellbenchError(
            f"model card {card.card_path}: [recipe] sampling must be one of "
            f"{', '.join(repr(s) for s in SAMPLING)}, got {sampling!r}; fix the card."
        )
    return TrainSpec(
        name=name,
        trainer=card.trainer,
        target=trainer.target,
        supervised=trainer.supervised,
        cross_well=bool(SAMPLING.get(sampling, False)),
    )


#: per-trainer adjustments applied to every preset before the user's overrides (docs/training.md)
METHOD_DEFAULTS: dict[str, dict] = {
    # CropMAE: AdamW (0.9, 0.95), constant weight decay 0.05 (Eymael et al. 2024)
    "cropmae": {"betas": (0.9, 0.95), "weight_decay": 0.05, "final_weight_decay": 0.05},
    # ViT-WSL memorises wells: early-stop on held-out wells (measured on the synthetic screen)
    "wsl": {"early_stop_patience": 3},
}


#: per-(preset, trainer) adjustments of the small CPU presets (never of ``paper``). Measured on
#: a planted screen (16 perturbations x 4 wells, 300 steps, batch 16, quick backbone): MSN's
#: replicate retrieval was 0.09 (chance) at lr 5e-4, 0.44 at 2e-3 and 0.92 at 4e-3 - at a small
#: batch MSN must leave its uniform fixed point fast - while cross-well InfoNCE reached 0.84 at
#: 5e-4 and 2e-3 but 0.56 at 4e-3.
CPU_PRESET_DEFAULTS: dict[str, dict[str, dict]] = {
    preset: {"msn": {"lr": 4e-3}} for preset in ("quick", "standard")
}


def method_defaults(name: str, preset: str | None = None) -> dict:
    """Adjustments applied to ``preset`` for model ``name`` (by its card's trainer) before the
    user's overrides; none for a model that is not trainable."""
    card = trainable().get(name)
    trainer = card.trainer if card is not None else None
    if trainer is None:
        return {}
    out = dict(METHOD_DEFAULTS.get(trainer, {}))
    if preset is not None:
        out.update(CPU_PRESET_DEFAULTS.get(preset, {}).get(trainer, {}))
    return out


def check_trainable(name: str) -> None:
    """Raise :class:`NotFoundError` (with close names) unless ``name`` is trainable."""
    names = list(trainable())
    if name in names:
        return
    card = registry.cards().get(name)
    if card is not None and card.trainer is not None:
        raise NotFoundError(
            f"model card {card.card_path} names trainer {card.trainer!r}, which cellbench does "
            f"not know; use one of {', '.join(TRAINERS)}."
        )
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise NotFoundError(
        f"model {name!r} cannot be trained by cellbench.{hint} "
        f"Trainable models: {', '.join(names)}."
    )


def build_method(name: str, config: TrainConfig, in_chans: int, n_perturbations: int = 0) -> Method:
    """The untrained method of model ``name``, its class imported from its trainer's string."""
    spec = train_spec(name)
    module_name, cls_name = spec.target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config, in_chans, **spec.kwargs(n_perturbations))
