"""Presets and sizes of the synthetic screens (what to simulate, not how).

A :class:`ScreenConfig` is plain data: it is hashed to name the on-disk cache, so every
field that changes the output bytes lives here. Sizes follow simulator.md: ``tiny`` for
unit tests (seconds), ``quick`` for the default run (<= 60 s on 2 cores), ``full`` closer to
the real screens.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cellbench.errors import NotFoundError

SIMULATOR_VERSION = "cellbench-sim-1.0"

# Channel names as the real datasets name them (methods.md): RxRx3 order is the order of
# the channel index in its image keys (1..6); Bray's CLOOME npz order is Mito, ER, RNA, AGP, DNA.
RXRX3_CHANNELS: tuple[str, ...] = ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")
BRAY_CHANNELS: tuple[str, ...] = ("DNA", "ER", "RNA", "AGP", "Mito")
BRAY_NPZ_ORDER: tuple[str, ...] = ("Mito", "ER", "RNA", "AGP", "DNA")

PRESETS: tuple[str, ...] = ("synthetic-rxrx3-core", "synthetic-bray")
SIZES: tuple[str, ...] = ("tiny", "quick", "full")


@dataclass(frozen=True)
class ScreenConfig:
    """Everything that determines a generated screen (hashed for the cache key)."""

    name: str
    size: str
    seed: int
    kind: str  # "rxrx3" | "bray"
    channels: tuple[str, ...]
    image_size: int
    sites_per_well: int
    plate_rows: int
    plate_cols: int
    plates_per_batch: int
    controls_per_plate: int  # EMPTY_control (rxrx3) or DMSO (bray)
    crispr_controls_per_plate: int = 0
    n_genes: int | None = None  # None: all 735 RxRx3-core genes
    guides_per_gene: int = 0
    wells_per_guide: int = 1
    n_compounds: int | None = None  # None: all compounds of the truth table
    wells_per_compound_dose: int = 1
    n_batches: int = 0  # bray: number of batches (plates split evenly)
    cell_scale: float = 1.0  # cell size in pixels relative to a 64 px field
    bray_concentration_um: float = 5.0
    version: str = SIMULATOR_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_RXRX3 = {
    "tiny": dict(n_genes=60, guides_per_gene=2, n_compounds=12, image_size=32, sites_per_well=1,
                 plate_rows=8, plate_cols=12, plates_per_batch=1, controls_per_plate=8,
                 crispr_controls_per_plate=4, cell_scale=0.75),
    "quick": dict(n_genes=None, guides_per_gene=3, n_compounds=None, image_size=64,
                  sites_per_well=1, plate_rows=16, plate_cols=24, plates_per_batch=3,
                  controls_per_plate=24, crispr_controls_per_plate=8, cell_scale=1.0),
    "full": dict(n_genes=None, guides_per_gene=6, n_compounds=None, image_size=128,
                 sites_per_well=1, plate_rows=16, plate_cols=24, plates_per_batch=4,
                 controls_per_plate=32, crispr_controls_per_plate=8, cell_scale=1.5),
}
_BRAY = {
    "tiny": dict(n_compounds=16, wells_per_compound_dose=3, image_size=32, sites_per_well=2,
                 plate_rows=4, plate_cols=6, plates_per_batch=2, n_batches=2,
                 controls_per_plate=4, cell_scale=0.75),
    "quick": dict(n_compounds=300, wells_per_compound_dose=4, image_size=64, sites_per_well=3,
                  plate_rows=8, plate_cols=12, plates_per_batch=4, n_batches=4,
                  controls_per_plate=12, cell_scale=1.0),
    "full": dict(n_compounds=1500, wells_per_compound_dose=4, image_size=128, sites_per_well=4,
                 plate_rows=16, plate_cols=24, plates_per_batch=4, n_batches=5,
                 controls_per_plate=24, cell_scale=1.5),
}


def make_config(name: str, size: str = "quick", seed: int = 0) -> ScreenConfig:
    """The configuration of preset ``name`` at ``size``; clear error for unknown names."""
    if name not in PRESETS:
        raise NotFoundError(
            f"unknown synthetic screen {name!r}; choose one of {', '.join(PRESETS)}"
        )
    if size not in SIZES:
        raise NotFoundError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if name == "synthetic-rxrx3-core":
        return ScreenConfig(name=name, size=size, seed=int(seed), kind="rxrx3",
                            channels=RXRX3_CHANNELS, **_RXRX3[size])
    return ScreenConfig(name=name, size=size, seed=int(seed), kind="bray",
                        channels=BRAY_CHANNELS, **_BRAY[size])
