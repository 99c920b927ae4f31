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


# ------------------------------------------------------------------ removing technical terms
#: the per-well terms, each removable on its own
PER_WELL_TERMS = ("illumination", "gamma", "blur", "density", "photons")
#: what :func:`remove_terms` can remove: one term or group, or (``as simulated``) nothing
REMOVABLE = (
    "as simulated",
    *PER_WELL_TERMS,
    "all per-well terms",
    "vignette+pattern+bleed",
    "batch morphology shift",
    "gain (all levels)",
    "gamma (all levels)",
    "plate density",
    "batch- and plate-level terms",
    "none",
)


def _group_mean(values: np.ndarray, groups: np.ndarray, log: bool = False) -> np.ndarray:
    """Each row replaced by the (geometric, with ``log``) mean of its group."""
    v = np.log(values) if log else values
    out = np.empty_like(v)
    for g in np.unique(groups):
        out[groups == g] = v[groups == g].mean(axis=0)
    return np.exp(out) if log else out


def remove_terms(nuis: dict[str, np.ndarray], variant: str) -> dict[str, np.ndarray]:
    """A copy of the per-well nuisance arrays of :func:`draw_nuisance` with ``variant``'s
    technical terms removed (one of :data:`REMOVABLE`).

    A term is removed by replacing its per-well draw with the mean of its plate (blur, density)
    or batch (gamma, photons, read noise), or by zeroing it (illumination gradient, vignetting,
    fixed pattern, bleed-through, batch morphology shift). ``all per-well terms`` keeps only
    batch- and plate-level variation; ``batch- and plate-level terms`` keeps only the per-well
    draws; ``none`` removes every term (what ``ScreenConfig(technical_variation=False)`` draws).
    """
    if variant not in REMOVABLE:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(REMOVABLE)}")
    n = {k: np.array(v, copy=True) for k, v in nuis.items()}
    plate, batch = n["plate_index"], n["batch_index"]
    terms = {
        "illumination": lambda: n.update(illum_amp=np.zeros_like(n["illum_amp"])),
        "gamma": lambda: n.update(gamma=_group_mean(n["gamma"], batch, log=True)),
        "blur": lambda: n.update(blur=_group_mean(n["blur"], plate, log=True)),
        "density": lambda: n.update(density=_group_mean(n["density"], plate, log=True)),
        "photons": lambda: n.update(
            photons=_group_mean(n["photons"], batch, log=True),
            read_noise=_group_mean(n["read_noise"], batch),
        ),
        "vignette+pattern+bleed": lambda: n.update(
            vignette=np.zeros_like(n["vignette"]),
            pattern_amp=np.zeros_like(n["pattern_amp"]),
            bleed=np.zeros_like(n["bleed"]),
        ),
        "batch morphology shift": lambda: n.update(batch_shift=np.zeros_like(n["batch_shift"])),
        "gain (all levels)": lambda: n.update(gain=np.ones_like(n["gain"])),
        "gamma (all levels)": lambda: n.update(gamma=np.ones_like(n["gamma"])),
        "plate density": lambda: n.update(
            density=n["density"] / _group_mean(n["density"], plate, log=True)
        ),
    }
    if variant == "as simulated":
        return n
    if variant == "all per-well terms":
        for term in PER_WELL_TERMS:
            terms[term]()
        return n
    if variant == "batch- and plate-level terms":  # keep only the per-well draws
        for term in ("vignette+pattern+bleed", "batch morphology shift", "plate density"):
            terms[term]()
        gain_well = n["gain"] / _group_mean(n["gain"], plate, log=True)
        gamma_well = n["gamma"] / _group_mean(n["gamma"], batch, log=True)
        n.update(
            gain=gain_well,
            gamma=gamma_well,
            photons=n["photons"] / _group_mean(n["photons"], batch, log=True) * 400.0,
        )
        return n
    if variant == "none":
        for name, remove in terms.items():
            if name != "plate density":
                remove()
        n.update(density=np.ones_like(n["density"]))
        return n
    terms[variant]()
    return n
