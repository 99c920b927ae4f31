"""A tiny in-memory image dataset honouring the ImageDataset contract (docs/architecture.md).

Used by the encoder and embedding tests so they do not depend on the simulator: each well
has a fixed per-channel brightness pattern (its "biology"), each site adds noise, so a test
can check that site → well aggregation and channel mapping are right by hand.
"""

from __future__ import annotations

import numpy as np
import polars as pl


class FakeDataset:
    def __init__(
        self,
        n_wells: int = 6,
        sites_per_well: int = 2,
        size: int = 32,
        channels: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito"),
        seed: int = 0,
        name: str = "fake",
    ) -> None:
        self.name = name
        self.channels = tuple(channels)
        self.size = size
        self.seed = seed
        self.reads = 0  # number of site images handed out (to check streaming)
        well_ids = [f"b{w % 2}_p1_W{w:02d}" for w in range(n_wells)]
        self.wells = pl.DataFrame(
            {
                "well_id": well_ids,
                "batch": [f"b{w % 2}" for w in range(n_wells)],
                "plate": ["p1"] * n_wells,
                "well": [f"W{w:02d}" for w in range(n_wells)],
                "perturbation": [f"g{w // 2}" for w in range(n_wells)],
                "perturbation_type": ["CRISPR"] * n_wells,
                "concentration": pl.Series([None] * n_wells, dtype=pl.Float64),
                "is_control": [w == 0 for w in range(n_wells)],
            }
        )
        rows = [(f"{wid}_s{s}", wid, s) for wid in well_ids for s in range(sites_per_well)]
        self.sites = pl.DataFrame(
            {
                "site_id": [r[0] for r in rows],
                "well_id": [r[1] for r in rows],
                "site": [r[2] for r in rows],
            },
            schema={"site_id": pl.Utf8, "well_id": pl.Utf8, "site": pl.Int64},
        )
        rng = np.random.default_rng(seed)
        self.well_level = rng.uniform(30, 200, size=(n_wells, len(self.channels)))
        self.ground_truth = pl.DataFrame(
            {
                "well_id": well_ids,
                "latent_0": rng.normal(size=n_wells),
                "latent_1": rng.normal(size=n_wells),
                "latent_2": rng.normal(size=n_wells),
                "nuisance_batch": [float(w % 2) for w in range(n_wells)],
                "nuisance_plate": rng.normal(size=n_wells),
            }
        )

    def __len__(self) -> int:
        return self.sites.height

    def site_image(self, index: int) -> np.ndarray:
        n_sites = self.sites.height
        if not 0 <= index < n_sites:
            raise IndexError(index)
        well = self.wells["well_id"].to_list().index(self.sites["well_id"][index])
        rng = np.random.default_rng([self.seed, index])
        base = self.well_level[well][:, None, None]
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        pattern = 20 * np.sin((xx + 3 * well) / 3.0) * np.cos(yy / (2.0 + well))
        noise = rng.normal(0, 8, size=(len(self.channels), self.size, self.size))
        return np.clip(base + pattern[None] + noise, 0, 255).astype(np.uint8)

    def read_sites(self, indices) -> np.ndarray:
        indices = [int(i) for i in indices]
        self.reads += len(indices)
        if not indices:
            return np.zeros((0, len(self.channels), self.size, self.size), np.uint8)
        return np.stack([self.site_image(i) for i in indices])
