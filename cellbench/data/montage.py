"""A PNG montage of sites by perturbation (rows) and batch (columns), false-colour composite.

Channel colours are chosen by name (DNA blue, ER/RNA green, Actin/AGP/Golgi red-orange,
Mito magenta) and each channel is scaled by percentiles over the WHOLE montage, not per
image, so the batch effects (stain intensity, illumination, blur) stay visible.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from cellbench.data.channels import canonical_name
from cellbench.io import atomic_path

COLOURS = {
    "DNA": (0.1, 0.3, 1.0),
    "ER": (0.1, 0.9, 0.2),
    "RNA": (0.4, 0.8, 0.1),
    "Actin": (1.0, 0.35, 0.0),
    "AGP": (1.0, 0.45, 0.0),
    "Golgi": (0.9, 0.7, 0.0),
    "Mito": (0.9, 0.0, 0.7),
}


def composite(images: np.ndarray, channels, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, H, W, 3) float RGB in [0, 1]."""
    x = (images.astype(np.float32) - lo[None, :, None, None]) / (hi - lo + 1e-6)[
        None, :, None, None
    ]
    x = np.clip(x, 0, 1)
    col = np.array([COLOURS.get(canonical_name(c), (0.6, 0.6, 0.6)) for c in channels], np.float32)
    rgb = np.einsum("nchw,ck->nhwk", x, col) / np.maximum(col.sum(0), 1.0)
    return np.clip(rgb * 1.6, 0, 1)


def choose_grid(dataset, n_rows: int = 6, n_cols: int = 6, seed: int = 0, perturbations=None):
    """Rows: ``perturbations`` or a control + the perturbations present in most batches (genes
    and compounds alternating when both exist); columns: batches."""
    wells = dataset.wells.with_row_index("wi")
    sites = dataset.sites.with_row_index("si")
    batches = sorted(wells["batch"].unique().to_list())
    per = (
        wells.filter(pl.col("perturbation_type").is_not_null())
        .group_by("perturbation", "perturbation_type", "is_control")
        .agg(pl.col("batch").n_unique().alias("nb"), pl.len())
        .sort(["is_control", "nb", "len", "perturbation"], descending=[True, True, True, False])
    )
    if perturbations:
        known = set(per["perturbation"].to_list())
        missing = [p for p in perturbations if p not in known]
        if missing:
            from cellbench.errors import InputError

            raise InputError(
                f"perturbation(s) {missing} not in {dataset.name}; pick from e.g. "
                f"{per['perturbation'].head(5).to_list()}"
            )
        perts = list(perturbations)
    else:
        ctrl = per.filter(pl.col("is_control"))["perturbation"].head(1).to_list()
        rest = per.filter(~pl.col("is_control"))
        by_type = [
            rest.filter(pl.col("perturbation_type") == t)["perturbation"].to_list()
            for t in sorted(rest["perturbation_type"].unique().to_list())
        ]
        mixed = (
            [p for group in zip(*by_type, strict=False) for p in group]
            if len(by_type) > 1
            else (by_type[0] if by_type else [])
        )
        perts = (ctrl + mixed)[:n_rows]
    # columns: batches in which the chosen perturbations appear most
    cover = (
        wells.filter(pl.col("perturbation").is_in(perts))
        .group_by("batch")
        .len()
        .sort(["len", "batch"], descending=[True, False])
    )
    cols = sorted(cover["batch"].head(n_cols).to_list()) or batches[:n_cols]
    rng = np.random.default_rng(seed)
    grid = []
    for p in perts:
        row = []
        for b in cols:
            w = wells.filter((pl.col("perturbation") == p) & (pl.col("batch") == b))["wi"].to_list()
            cand = sites.filter(pl.col("well_index").is_in(w))["si"].to_list() if w else []
            row.append(int(cand[rng.integers(len(cand))]) if cand else -1)
        grid.append(row)
    return perts, cols, np.array(grid, dtype=np.int64)


def write_montage(
    dataset,
    out: str | os.PathLike,
    n_rows: int = 6,
    n_cols: int = 6,
    seed: int = 0,
    perturbations=None,
) -> str:
    from cellbench.errors import InputError
    from cellbench.io import check_writable

    if n_rows < 1 or n_cols < 1:
        raise InputError(
            f"a montage needs at least one row and one column (got --rows {n_rows} "
            f"--cols {n_cols}); pass e.g. --rows 6 --cols 6."
        )
    if Path(out).is_dir():
        raise InputError(f"--out {out} is a folder; pass the path of the PNG file to write.")
    check_writable(out)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    perts, cols, grid = choose_grid(dataset, n_rows, n_cols, seed, perturbations)
    used = grid[grid >= 0]
    imgs = dataset.read_sites(used)
    lo = np.percentile(imgs, 1, axis=(0, 2, 3))
    hi = np.percentile(imgs, 99.7, axis=(0, 2, 3))
    rgb = composite(imgs, dataset.channels, lo, hi)
    lookup = {int(s): rgb[i] for i, s in enumerate(used)}
    fig, axes = plt.subplots(
        len(perts),
        len(cols),
        figsize=(1.7 * len(cols) + 1.2, 1.7 * len(perts) + 0.6),
        squeeze=False,
    )
    for r, p in enumerate(perts):
        for c, b in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            s = int(grid[r, c])
            if s >= 0:
                ax.imshow(lookup[s], interpolation="nearest")
            else:
                ax.set_facecolor("0.85")
            if r == 0:
                ax.set_title(b, fontsize=8)
            if c == 0:
                ax.set_ylabel(p[:18], fontsize=7)
    names = ", ".join(f"{ch}" for ch in dataset.channels)
    fig.suptitle(
        f"{dataset.name}: sites by perturbation (rows) x batch (columns) — {names}", fontsize=8
    )
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return str(out)
