"""Small in-test stand-ins honouring the data-layer contracts the trainers use.

``FakeDataset`` follows ``cellbench.data.dataset.ImageDataset`` (channels, wells, sites,
read_sites -> uint8 (N, C, H, W)); ``FakeSampler`` follows ``cellbench.data.sampling.PairSampler``
(``batch_at(step)`` a pure function of (seed, step), ``n_perturbations``). Images carry a
perturbation pattern (learnable) plus a per-well offset pattern and noise.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl


class FakeDataset:
    def __init__(self, n_pert=6, wells_per_pert=3, sites=2, size=24, channels=("DNA", "ER", "RNA"), seed=0):
        rng = np.random.default_rng(seed)
        self.channels = tuple(channels)
        c = len(channels)
        yy, xx = np.mgrid[0:size, 0:size] / size
        pert_pat = np.stack([
            np.stack([np.sin(2 * np.pi * (rng.integers(1, 4) * xx + rng.integers(0, 3) * yy) + rng.uniform(0, 6))
                      for _ in range(c)]) for _ in range(n_pert)
        ])
        well_rows, site_rows, images = [], [], []
        for p in range(n_pert):
            for w in range(wells_per_pert):
                wid = f"b0_p{w}_{p:02d}"
                well_rows.append({"well_id": wid, "batch": "b0", "plate": f"p{w}", "well": f"A{p:02d}",
                                  "perturbation": f"gene{p}", "perturbation_type": "CRISPR",
                                  "concentration": None, "is_control": False})
                offset = rng.normal(0, 0.3, (c, 1, 1))
                for s in range(sites):
                    site_rows.append({"site_id": f"{wid}_s{s}", "well_id": wid, "site": s})
                    img = 0.6 * pert_pat[p] + offset + rng.normal(0, 0.4, (c, size, size))
                    images.append(np.clip(128 + 50 * img, 0, 255).astype(np.uint8))
        self.wells = pl.DataFrame(well_rows)
        self.sites = pl.DataFrame(site_rows)
        self._images = np.stack(images)
        self.n_pert, self.wells_per_pert, self.sites_per_well = n_pert, wells_per_pert, sites

    def read_sites(self, indices):
        return self._images[np.asarray(indices)]


class FakeSampler:
    def __init__(self, dataset: FakeDataset, *, cross_well: bool, batch_size: int, seed: int, **_):
        self.ds, self.cross, self.batch_size, self.seed = dataset, cross_well, batch_size, seed
        self.n_perturbations = dataset.n_pert

    def batch_at(self, step: int):
        ds = self.ds
        rng = np.random.default_rng([self.seed, step])
        pert = rng.integers(0, ds.n_pert, self.batch_size)
        wa = rng.integers(0, ds.wells_per_pert, self.batch_size)
        shift = rng.integers(1, ds.wells_per_pert, self.batch_size) if self.cross else 0
        wt = (wa + shift) % ds.wells_per_pert
        sa = rng.integers(0, ds.sites_per_well, self.batch_size)
        st = rng.integers(0, ds.sites_per_well, self.batch_size)
        wa_idx = pert * ds.wells_per_pert + wa
        wt_idx = pert * ds.wells_per_pert + wt
        return SimpleNamespace(
            anchor=ds.read_sites(wa_idx * ds.sites_per_well + sa),
            target=ds.read_sites(wt_idx * ds.sites_per_well + st),
            perturbation_index=pert.astype(np.int64),
            anchor_well_index=wa_idx.astype(np.int64),
            target_well_index=wt_idx.astype(np.int64),
        )
