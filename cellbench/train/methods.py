"""Trainable models by name: which :class:`~cellbench.train.method.Method` trains which encoder.

The methods live one layer up, in :mod:`cellbench.methods`; they are imported by the strings of
:data:`TRAINABLE` only when a model is built, so :mod:`cellbench.train` imports nothing above it.
"""

from __future__ import annotations

import difflib

from cellbench.errors import NotFoundError
from cellbench.train.method import Method
from cellbench.train.presets import TrainConfig

#: model name -> (module, class, keyword arguments)
TRAINABLE: dict[str, tuple[str, str, dict]] = {
    "cwa-msn": ("cellbench.methods.msn", "MSN", {"cross_well": True}),
    "single-well-msn": ("cellbench.methods.msn", "MSN", {"cross_well": False}),
    "cropmae-cross": ("cellbench.methods.cropmae", "CropMAE", {"cross_well": True}),
    "cropmae-single": ("cellbench.methods.cropmae", "CropMAE", {"cross_well": False}),
    "vit-wsl": ("cellbench.methods.wsl", "WSL", {}),
    "infonce-cross": ("cellbench.methods.infonce", "InfoNCE", {"cross_well": True}),
    "infonce-single": ("cellbench.methods.infonce", "InfoNCE", {"cross_well": False}),
}


#: per-method adjustments applied to every preset before the user's overrides (docs/training.md)
METHOD_DEFAULTS: dict[str, dict] = {
    # CropMAE: AdamW (0.9, 0.95), constant weight decay 0.05 (Eymael et al. 2024)
    "cropmae-cross": {"betas": (0.9, 0.95), "weight_decay": 0.05, "final_weight_decay": 0.05},
    "cropmae-single": {"betas": (0.9, 0.95), "weight_decay": 0.05, "final_weight_decay": 0.05},
    # ViT-WSL memorises wells: early-stop on held-out wells (measured on the synthetic screen)
    "vit-wsl": {"early_stop_patience": 3},
}


#: per-(preset, method) adjustments of the small CPU presets (never of ``paper``). Measured on a
#: planted screen (16 perturbations x 4 wells, 300 steps, batch 16, quick backbone): MSN's
#: replicate retrieval was 0.09 (chance) at lr 5e-4, 0.44 at 2e-3 and 0.92 at 4e-3 - at a small
#: batch MSN must leave its uniform fixed point fast - while cross-well InfoNCE reached 0.84 at
#: 5e-4 and 2e-3 but 0.56 at 4e-3.
CPU_PRESET_DEFAULTS: dict[str, dict[str, dict]] = {
    preset: {"cwa-msn": {"lr": 4e-3}, "single-well-msn": {"lr": 4e-3}}
    for preset in ("quick", "standard")
}


def method_defaults(name: str, preset: str | None = None) -> dict:
    """Adjustments applied to ``preset`` for method ``name`` before the user's overrides."""
    out = dict(METHOD_DEFAULTS.get(name, {}))
    if preset is not None:
        out.update(CPU_PRESET_DEFAULTS.get(preset, {}).get(name, {}))
    return out


def check_trainable(name: str) -> None:
    if name not in TRAINABLE:
        close = difflib.get_close_matches(name, list(TRAINABLE), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise NotFoundError(
            f"model {name!r} cannot be trained by cellbench.{hint} "
            f"Trainable models: {', '.join(TRAINABLE)}."
        )


def build_method(name: str, config: TrainConfig, in_chans: int, n_perturbations: int = 0) -> Method:
    import importlib

    check_trainable(name)
    module_name, cls_name, kwargs = TRAINABLE[name]
    cls = getattr(importlib.import_module(module_name), cls_name)
    kwargs = dict(kwargs)
    if name == "vit-wsl":
        kwargs["n_classes"] = n_perturbations
    return cls(config, in_chans, **kwargs)
