"""The health probe: a fixed set of sites embedded every ``health_every`` steps.

Its embedding is scored for the well-shortcut rate and the effective rank
(:mod:`cellbench.metrics.health`): a rising shortcut rate says the network memorises wells, a
falling rank that it collapses. Method-specific checks of the logged losses (MSN's frozen
loss) are the method's own :meth:`cellbench.train.method.Method.health_warnings`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import torch

from cellbench.metrics.health import effective_rank, well_shortcut_rate
from cellbench.train.backbone import pool, tokens
from cellbench.train.method import Method
from cellbench.train.views import center_crop, standardize


class HealthProbe:
    """A fixed set of sites (two or more per well) embedded every ``health_every`` steps."""

    def __init__(self, dataset: Any, seed: int, n_sites: int = 192, crop: int = 32) -> None:
        sites = dataset.sites.with_row_index("_row")
        counts = sites.group_by("well_id").len()
        multi = counts.filter(pl.col("len") >= 2)["well_id"].sort()
        rng = np.random.default_rng([seed, 7])
        wells = multi.to_numpy()
        rng.shuffle(wells)
        chosen = sites.filter(pl.col("well_id").is_in(list(wells[: max(n_sites // 2, 1)])))
        chosen = chosen.sort("_row").head(n_sites)
        self.indices = chosen["_row"].to_numpy()
        self.well_ids = chosen["well_id"].to_numpy()
        self.crop = crop
        self._images: torch.Tensor | None = None
        self.dataset = dataset

    def images(self) -> torch.Tensor:
        if self._images is None:
            raw = torch.as_tensor(np.asarray(self.dataset.read_sites(self.indices)))
            x = standardize(raw)
            size = min(self.crop, *x.shape[-2:])
            self._images = center_crop(x, size)
        return self._images

    @torch.no_grad()
    def __call__(self, method: Method) -> dict[str, float]:
        if len(self.indices) < 4:
            return {}
        backbone = method.embedding_backbone()
        was_training = backbone.training
        backbone.eval()
        x = self.images().to(next(backbone.parameters()).device)
        emb = pool(backbone, tokens(backbone, x), method.pooling).float().cpu().numpy()
        backbone.train(was_training)
        return {
            "well_shortcut_rate": well_shortcut_rate(emb, self.well_ids),
            "effective_rank": effective_rank(emb),
        }
