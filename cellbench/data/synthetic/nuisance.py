"""Technical variation: nested batch -> plate -> well random effects (docs/synthetic-screen.md).

Affine effects (gain, offset) are erased by per-image standardisation, so most of the
signal that identifies a well is deliberately non-affine (per-image standardisation would erase the rest): an
illumination gradient with a per-well direction, plate vignetting, a plate fixed-pattern
background texture, per-channel gamma, focus blur, noise level and seeding density. Batches
also shift morphology itself (e.g. cell spreading), which is not in the clean latent.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cellbench.data.synthetic.biology import K, T

# traits a batch shifts (culture conditions: spreading, confluence, stain uptake)
BATCH_SHIFT_TRAITS = (
    "cell_area",
    "elongation",
    "dna_intensity",
    "actin_fibres",
    "cell_density",
    "mito_intensity",
)


def draw_nuisance(
    layout: pl.DataFrame, n_channels: int, rng: np.random.Generator, cell_scale: float
) -> dict[str, np.ndarray]:
    """Per-well nuisance parameters (arrays indexed by ``well_index``)."""
    batch_codes, batch_idx = np.unique(layout["batch"].to_numpy(), return_inverse=True)
    plate_key = (layout["batch"] + "/" + layout["plate"].cast(pl.Utf8)).to_numpy()
    plate_codes, plate_idx = np.unique(plate_key, return_inverse=True)
    nb, npl, nw, c = len(batch_codes), len(plate_codes), layout.height, n_channels

    b_gain = np.exp(0.25 * rng.standard_normal((nb, c)))
    b_offset = rng.uniform(0.02, 0.07, (nb, c))
    b_gamma = np.exp(0.12 * rng.standard_normal((nb, c)))
    b_vignette = rng.uniform(0.1, 0.4, nb)
    b_photons = np.exp(rng.uniform(np.log(80), np.log(400), nb))
    # spectral bleed-through of the (bright) DNA stain into the other channels, per batch
    b_bleed = rng.uniform(0.0, 0.08, (nb, c))
    b_shift = np.zeros((nb, K))
    for name in BATCH_SHIFT_TRAITS:
        b_shift[:, T[name]] = 0.35 * rng.standard_normal(nb)

    p_gain = np.exp(0.1 * rng.standard_normal((npl, c)))
    p_offset = rng.uniform(0.0, 0.02, (npl, c))
    p_blur = rng.uniform(0.25, 0.7, npl) * cell_scale  # focus after QC: mild, varies by plate
    p_density = np.exp(0.12 * rng.standard_normal(npl))
    p_pattern = rng.uniform(0.015, 0.04, npl)
    p_vignette = np.zeros(npl)
    for p in range(npl):
        b = batch_idx[np.flatnonzero(plate_idx == p)[0]]
        p_vignette[p] = b_vignette[b] + 0.05 * rng.standard_normal()

    edge = layout["is_edge"].to_numpy().astype(bool)
    w_gain = np.exp(0.035 * rng.standard_normal((nw, c))) * np.where(edge, 1.12, 1.0)[:, None]
    w_gamma = np.exp(0.03 * rng.standard_normal((nw, c)))
    # illumination: the microscope's flat-field gradient is a property of the plate's imaging
    # run (amplitude and direction per plate) plus a small per-well residual (a well signature
    # that per-image standardisation keeps)
    p_angle = rng.uniform(0, 2 * np.pi, npl)
    p_illum = rng.uniform(0.08, 0.3, npl)
    w_angle = rng.uniform(0, 2 * np.pi, nw)
    w_illum = rng.uniform(0.01, 0.03, nw)
    gx = p_illum[plate_idx] * np.cos(p_angle[plate_idx]) + w_illum * np.cos(w_angle)
    gy = p_illum[plate_idx] * np.sin(p_angle[plate_idx]) + w_illum * np.sin(w_angle)
    illum = np.hypot(gx, gy)
    angle = np.arctan2(gy, gx)
    blur = p_blur[plate_idx] * np.exp(0.1 * rng.standard_normal(nw))
    density = (
        p_density[plate_idx] * np.exp(0.07 * rng.standard_normal(nw)) * np.where(edge, 0.75, 1.0)
    )
    photons = b_photons[batch_idx] * np.exp(0.14 * rng.standard_normal(nw))
    read = rng.uniform(0.003, 0.012, nw)
    return {
        "batch_index": batch_idx,
        "plate_index": plate_idx,
        "gain": b_gain[batch_idx] * p_gain[plate_idx] * w_gain,
        "offset": b_offset[batch_idx] + p_offset[plate_idx],
        "gamma": b_gamma[batch_idx] * w_gamma,
        "illum_amp": illum,
        "illum_cos": np.cos(angle),
        "illum_sin": np.sin(angle),
        "vignette": p_vignette[plate_idx],
        "blur": blur,
        "density": density,
        "photons": photons,
        "read_noise": read,
        "edge": edge.astype(np.float64),
        "pattern_amp": p_pattern[plate_idx],
        "batch_shift": b_shift[batch_idx],
        "bleed": b_bleed[batch_idx],
    }


def nuisance_table(
    nuis: dict[str, np.ndarray], channels: tuple[str, ...], traits: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Flat ``nuisance_*`` columns for the ground-truth parquet."""
    cols: dict[str, np.ndarray] = {}
    for key in ("gain", "offset", "gamma", "bleed"):
        for j, ch in enumerate(channels):
            cols[f"nuisance_{key}_{ch}"] = nuis[key][:, j]
    for key in (
        "illum_amp",
        "illum_cos",
        "illum_sin",
        "vignette",
        "blur",
        "density",
        "photons",
        "read_noise",
        "edge",
        "pattern_amp",
    ):
        cols[f"nuisance_{key}"] = nuis[key]
    for name in BATCH_SHIFT_TRAITS:
        cols[f"nuisance_batch_shift_{name}"] = nuis["batch_shift"][:, traits.index(name)]
    return cols
