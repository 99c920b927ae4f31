"""Small in-test stand-ins honouring the data-layer contracts the trainers use.

``FakeDataset`` follows ``cellbench.data.dataset.ImageDataset`` (channels, wells, sites with
``well_index``, read_sites/load_all -> uint8 (N, C, H, W)) and is sampled by the real
``cellbench.data.sampling.PairSampler``; ``FakeSampler`` (a stand-in kept for DDP) follows ``cellbench.data.sampling.PairSampler``
(``batch_at(step)`` a pure function of (seed, step), ``n_perturbations``). Images carry a
perturbation pattern (learnable) plus a per-well offset pattern and noise.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl


class FakeDataset:
    def __init__(
        self, n_pert=6, wells_per_pert=3, sites=2, size=24, channels=("DNA", "ER", "RNA"), seed=0
    ):
        rng = np.random.default_rng(seed)
        self.channels = tuple(channels)
        c = len(channels)
        yy, xx = np.mgrid[0:size, 0:size] / size
        pert_pat = np.stack(
            [
                np.stack(
                    [
                        np.sin(
                            2 * np.pi * (rng.integers(1, 4) * xx + rng.integers(0, 3) * yy)
                            + rng.uniform(0, 6)
                        )
                        for _ in range(c)
                    ]
                )
                for _ in range(n_pert)
            ]
        )
        well_rows, site_rows, images = [], [], []
        for p in range(n_pert):
            for w in range(wells_per_pert):
                wid = f"b0_p{w}_{p:02d}"
                well_rows.append(
                    {
                        "well_id": wid,
                        "batch": "b0",
                        "plate": f"p{w}",
                        "well": f"A{p:02d}",
                        "perturbation": f"gene{p}",
                        "perturbation_type": "CRISPR",
                        "concentration": None,
                        "is_control": False,
                    }
                )
                offset = rng.normal(0, 0.3, (c, 1, 1))
                for s in range(sites):
                    site_rows.append({"site_id": f"{wid}_s{s}", "well_id": wid, "site": s})
                    img = 0.6 * pert_pat[p] + offset + rng.normal(0, 0.4, (c, size, size))
                    images.append(np.clip(128 + 50 * img, 0, 255).astype(np.uint8))
        self.name = "fake"
        self.wells = pl.DataFrame(well_rows, schema_overrides={"concentration": pl.Float64})
        self.sites = pl.DataFrame(site_rows).with_columns(
            (pl.int_range(pl.len()) // sites).cast(pl.Int64).alias("well_index")
        )
        self._images = np.stack(images)
        self.n_pert, self.wells_per_pert, self.sites_per_well = n_pert, wells_per_pert, sites

    def read_sites(self, indices):
        return self._images[np.asarray(indices)]

    def load_all(self):
        return self._images


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


def fixed_batch(dataset: FakeDataset, batch_size: int = 8, cross_well: bool = True, seed: int = 0):
    """One StepInputs from the real PairSampler (for overfitting tests)."""
    import torch

    from cellbench.data.sampling import PairSampler
    from cellbench.train.method import StepInputs

    b = PairSampler(dataset, cross_well=cross_well, batch_size=batch_size, seed=seed).batch_at(0)
    return StepInputs(
        anchor=torch.as_tensor(b.anchor),
        target=torch.as_tensor(b.target),
        perturbation=torch.as_tensor(b.perturbation_index),
        anchor_well=torch.as_tensor(b.anchor_well_index),
        target_well=torch.as_tensor(b.target_well_index),
    )


def overfit_losses(method, inputs, steps: int = 15, lr: float = 1e-3) -> list[float]:
    """Losses of ``steps`` AdamW steps on one fixed batch with fixed augmentations."""
    import torch

    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    for _ in range(steps):
        loss, _ = method(inputs, torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
