"""Pair sampling for cross-well (CWA-MSN) and single-well training (the CWA-MSN paper, section
3.2; docs/training.md).

Cross-well: draw B perturbations, then two DIFFERENT wells of each (any plate or batch) and
one site of each well. Single-well: two sites (or the same site if the well has one) of ONE
well of each perturbation. ``batch_at(step)`` is a pure function of ``(seed, step)`` (its
generator is seeded with both), so a resumed run draws exactly the batches it would have
drawn. Sampling is index arithmetic on CSR-style arrays plus one fancy-index of the
in-memory uint8 array (``dataset.load_all()``), so it never bounds a training step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from cellbench.errors import InputError


@dataclass
class PairBatch:
    anchor: np.ndarray  # uint8 (B, C, H, W)
    target: np.ndarray  # uint8 (B, C, H, W)
    perturbation_index: np.ndarray  # int64 (B,)
    anchor_well_index: np.ndarray  # int64 (B,) rows of dataset.wells
    target_well_index: np.ndarray  # int64 (B,)


def perturbation_labels(wells: pl.DataFrame) -> list[str]:
    """Training label of each well: genes pool guides; compounds are per concentration."""
    pert = wells["perturbation"].cast(pl.Utf8).to_list()
    ptype = wells["perturbation_type"].cast(pl.Utf8).to_list()
    conc = wells["concentration"].to_list()
    out = []
    for p, t, c in zip(pert, ptype, conc, strict=True):
        out.append(f"{p}@{c:g}" if (t == "COMPOUND" and c is not None and c == c) else str(p))
    return out


def _csr(groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(groups, kind="stable")
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


class PairSampler:
    """Deterministic pair batches; see the module docstring."""

    def __init__(
        self,
        dataset,
        *,
        cross_well: bool,
        batch_size: int,
        seed: int,
        include_controls: bool = False,
        holdout_fraction: float = 0.0,
        images: np.ndarray | None = None,
    ):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1 (got {batch_size})")
        if not 0.0 <= holdout_fraction < 1.0:
            raise InputError(f"holdout_fraction must be in [0, 1) (got {holdout_fraction})")
        self.dataset = dataset
        self.cross_well = bool(cross_well)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.images = images if images is not None else dataset.load_all()
        wells = dataset.wells
        nw = wells.height
        site_well = dataset.sites["well_index"].to_numpy().astype(np.int64)
        self._site_order, self._site_start, self._site_count = _csr(site_well, nw)

        labels = np.asarray(perturbation_labels(wells), dtype=object)
        use = self._site_count > 0
        if not include_controls:
            use &= ~wells["is_control"].fill_null(False).to_numpy().astype(bool)
        names, codes = np.unique(labels[use], return_inverse=True)
        well_ids = np.flatnonzero(use)
        order, starts, counts = _csr(codes, len(names))
        # hold out wells per perturbation (for early stopping), keeping enough to train on
        rng = np.random.default_rng([self.seed, 4242])
        need = 2 if self.cross_well else 1
        keep_mask = np.ones(len(well_ids), dtype=bool)
        for p in range(len(names)):
            members = order[starts[p] : starts[p] + counts[p]]
            n_hold = min(int(np.floor(holdout_fraction * counts[p])), max(counts[p] - need, 0))
            if n_hold:
                keep_mask[rng.choice(members, size=n_hold, replace=False)] = False
        self.heldout_wells = np.sort(well_ids[~keep_mask])
        train_wells, train_codes = well_ids[keep_mask], codes[keep_mask]
        order, starts, counts = _csr(train_codes, len(names))
        ok = counts >= need
        if not ok.any():
            raise InputError(
                f"{getattr(dataset, 'name', 'dataset')}: no perturbation has {need} training wells "
                f"for {'cross' if self.cross_well else 'single'}-well pairs; lower holdout_fraction "
                "or use data with replicate wells"
            )
        self.perturbation_names: list[str] = [str(n) for n in names[ok]]
        self._pert_wells = train_wells[order]
        self._pert_start = starts[ok]
        self._pert_count = counts[ok]
        self.train_wells = np.sort(train_wells)

    @property
    def n_perturbations(self) -> int:
        return len(self.perturbation_names)

    def _site_of(self, wells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = (rng.random(len(wells)) * self._site_count[wells]).astype(np.int64)
        return self._site_order[self._site_start[wells] + k]

    def indices_at(self, step: int) -> tuple[np.ndarray, ...]:
        """(perturbation, anchor well, target well, anchor site, target site) of ``step``."""
        rng = np.random.default_rng([self.seed, int(step)])
        n_p, b = self.n_perturbations, self.batch_size
        pert = rng.permutation(n_p)[:b] if b <= n_p else rng.integers(0, n_p, b)
        start, count = self._pert_start[pert], self._pert_count[pert]
        i = (rng.random(b) * count).astype(np.int64)
        anchor_well = self._pert_wells[start + i]
        if self.cross_well:
            j = (i + 1 + (rng.random(b) * (count - 1)).astype(np.int64)) % count
            target_well = self._pert_wells[start + j]
            a_site, t_site = self._site_of(anchor_well, rng), self._site_of(target_well, rng)
        else:
            target_well = anchor_well
            n_s = self._site_count[anchor_well]
            si = (rng.random(b) * n_s).astype(np.int64)
            sj = np.where(
                n_s > 1,
                (si + 1 + (rng.random(b) * np.maximum(n_s - 1, 1)).astype(np.int64)) % n_s,
                si,
            )
            base = self._site_start[anchor_well]
            a_site, t_site = self._site_order[base + si], self._site_order[base + sj]
        return pert.astype(np.int64), anchor_well, target_well, a_site, t_site

    def batch_at(self, step: int) -> PairBatch:
        pert, aw, tw, a_site, t_site = self.indices_at(step)
        return PairBatch(
            anchor=self.images[a_site],
            target=self.images[t_site],
            perturbation_index=pert,
            anchor_well_index=aw.astype(np.int64),
            target_well_index=tw.astype(np.int64),
        )
