"""Recall on a small held-out screen, measured while a model trains.

The well-shortcut rate and effective rank (:class:`cellbench.train.health.HealthProbe`) say
whether a representation collapses or memorises wells; they do not say whether it learns
biology. :class:`RecallProbe` does: every health check it embeds a small synthetic
RxRx3-core screen (the ``probe`` size: a dense CORUM subset of genes on one plate, never the
evaluation screen itself) exactly as the embedding pipeline would - channels mapped by name,
each site standardised and then cut into the training crop size, tiles averaged - and scores
CORUM recall at (0.05, 0.95) on its map (centre-scale alignment, gene-pair null: see
``PROBE_ALIGN``). A run whose probe recall stays at the untrained
network's level is visible while it runs, not after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

PROBE_SIZE = "probe"
PROBE_SOURCE = "CORUM"
# The probe's batches hold 24 control wells each: too few for a PCA of 128+ features fitted on
# controls (the per-batch scaling of components the batch barely spans blows up), so the probe
# centre-scales each feature on its batch's controls, and draws its null from gene pairs only
# (its few compound rows would otherwise fill the tails). Probe numbers track a run's progress;
# they are not leaderboard numbers.
PROBE_ALIGN = "centerscale"


class RecallProbe:
    """CORUM recall of a method's embedding backbone on ``dataset`` (a small labelled screen)."""

    def __init__(
        self, dataset: Any, channels: tuple[str, ...], crop: int, batch_size: int = 256
    ) -> None:
        self.dataset = dataset
        self.channels = tuple(channels)
        self.crop = int(crop)
        self.batch_size = int(batch_size)
        self._tiles: torch.Tensor | None = None
        self._tiles_per_site = 1

    def _prepare(self) -> torch.Tensor:
        from cellbench.embed import apply_plan, channel_plan, tile
        from cellbench.encoders.base import standardize

        if self._tiles is None:
            images = apply_plan(
                np.asarray(self.dataset.load_all()),
                channel_plan(self.dataset.channels, self.channels),
            )
            sites = standardize(
                torch.from_numpy(images)
            )  # the whole site, then tiles (as training)
            self._tiles, self._tiles_per_site = tile(sites, self.crop)
        return self._tiles

    @torch.no_grad()
    def well_embeddings(self, method: Any) -> tuple[list[str], np.ndarray]:
        """(well ids, well-mean embeddings) of the probe screen under ``method``'s backbone."""
        from cellbench.train.backbone import pool, tokens

        tiles = self._prepare()
        backbone = method.embedding_backbone()
        was_training = backbone.training
        backbone.eval()
        device = next(backbone.parameters()).device
        feats = []
        for start in range(0, len(tiles), self.batch_size):
            x = tiles[start : start + self.batch_size].to(device)
            feats.append(pool(backbone, tokens(backbone, x), method.pooling).float().cpu())
        backbone.train(was_training)
        per_tile = torch.cat(feats).double().numpy()
        per_site = per_tile.reshape(-1, self._tiles_per_site, per_tile.shape[-1]).mean(axis=1)
        site_well = self.dataset.sites["well_index"].to_numpy()
        n_wells = self.dataset.wells.height
        sums = np.zeros((n_wells, per_site.shape[1]))
        np.add.at(sums, site_well, per_site)
        counts = np.bincount(site_well, minlength=n_wells)
        keep = counts > 0
        wells = self.dataset.wells["well_id"].to_numpy()[keep].tolist()
        return wells, (sums[keep] / counts[keep, None]).astype(np.float32)

    def __call__(self, method: Any) -> dict[str, float]:
        import warnings

        from cellbench.evaluate import evaluate_arrays

        wells, feats = self.well_embeddings(method)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a collapsed embedding may warn in the alignment
            out = evaluate_arrays(
                wells,
                feats,
                self.dataset.wells,
                seeds=1,
                tasks=("gene_gene",),
                sources=(PROBE_SOURCE,),
                align=PROBE_ALIGN,
                null="genes",
            )
        recall = out["scores"]["gene_gene"][PROBE_SOURCE]["recall_0.05_0.95"]
        return {"probe_recall": float(recall)}


def synthetic_probe(channels: tuple[str, ...], crop: int, seed: int = 0) -> RecallProbe:
    """The probe on the synthetic RxRx3-core ``probe`` screen (generated once, then cached)."""
    from cellbench.data import load_dataset

    return RecallProbe(
        load_dataset("synthetic-rxrx3-core", size=PROBE_SIZE, seed=seed), channels, crop
    )
