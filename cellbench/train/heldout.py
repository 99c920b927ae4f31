"""Held-out wells: the validation set, early stopping on its loss, and the best weights.

A method that validates (ViT-WSL, which memorises wells) is scored at every health check on up
to 256 sites of the wells its sampler held out. With ``early_stop_patience`` the run stops once
the held-out loss has not improved for that many checks, and ``best_heldout.pt`` keeps the
weights of the best check so far; ``model.pt`` is written from it, so early stopping keeps the
best weights, not those ``patience`` checks later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellbench.data.sampling import perturbation_labels
from cellbench.io import load_torch_weights, torch_save_atomic

BEST = "best_heldout.pt"  # the weights at the best held-out loss so far (early stopping)


def heldout_set(
    dataset: Any, sampler: Any, seed: int, max_sites: int = 256
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(uint8 images, labels) of up to ``max_sites`` sites of the sampler's held-out wells whose
    perturbation is a training class; None when nothing is held out."""
    wells = getattr(sampler, "heldout_wells", None)
    names = getattr(sampler, "perturbation_names", None)
    if wells is None or names is None or len(wells) == 0:
        return None
    label_of = {n: i for i, n in enumerate(names)}
    well_label = perturbation_labels(dataset.wells)
    site_wells = dataset.sites["well_index"].to_numpy()
    rows, labels = [], []
    for row in np.flatnonzero(np.isin(site_wells, wells)):
        label = label_of.get(well_label[site_wells[row]])
        if label is not None:
            rows.append(row)
            labels.append(label)
    if not rows:
        return None
    rows_a, labels_a = np.asarray(rows), np.asarray(labels)
    if len(rows_a) > max_sites:
        pick = np.sort(
            np.random.default_rng([seed, 99]).choice(len(rows_a), max_sites, replace=False)
        )
        rows_a, labels_a = rows_a[pick], labels_a[pick]
    images = torch.as_tensor(np.asarray(dataset.read_sites(rows_a)))
    return images, torch.as_tensor(labels_a, dtype=torch.long)


def heldout_checks(health_log: list[dict]) -> tuple[list[dict], int | None]:
    """The health checks that carry a held-out loss, and the index of the best among them
    (the earliest on ties); None when there are none."""
    checks = [h for h in health_log if "val_loss" in h]
    return checks, (int(np.argmin([h["val_loss"] for h in checks])) if checks else None)


def early_stop(health_log: list[dict], patience: int | None) -> bool:
    """True when the held-out loss has not improved for ``patience`` health checks."""
    if not patience:
        return False
    checks, best = heldout_checks(health_log)
    return best is not None and len(checks) > patience and len(checks) - 1 - best >= patience


def save_best(path: Path, method: torch.nn.Module, health_log: list[dict]) -> None:
    """Write the weights (and step) to ``path`` when the latest health check is the best so far."""
    checks, best = heldout_checks(health_log)
    if best is not None and checks[best] is health_log[-1]:
        torch_save_atomic(
            path, {"step": int(health_log[-1]["step"]), "state_dict": method.state_dict()}
        )


def restore_best(
    path: Path, method: torch.nn.Module, health_log: list[dict], warnings: list[str]
) -> int | None:
    """Load the weights of the best held-out loss from ``path`` into ``method``; their step, or
    None (and the last weights are kept) when there is no such file or it is not this run's best."""
    if not path.exists():
        return None
    state = load_torch_weights(
        path, what="best-weights file", fix="Delete it: model.pt keeps the last weights."
    )
    checks, best = heldout_checks(health_log)
    best_step = int(checks[best]["step"]) if best is not None else None
    if int(state["step"]) != best_step:
        warnings.append(
            f"{path.name} is from step {state['step']}, not the best held-out step "
            f"{best_step}; model.pt keeps the last weights."
        )
        return None
    method.load_state_dict(state["state_dict"])
    return best_step
