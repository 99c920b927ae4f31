"""Vectorised rendering of Cell Painting fields of view from latent traits + nuisance.

Cells are splatted as soft ellipses (nucleus, cell body, perinuclear ER, membrane ring,
a Golgi blob) on a fixed-size patch around each cell; all cells of a chunk of sites are
computed at once and accumulated with ``np.bincount`` (no per-cell Python loop). Organelle
textures (chromatin, nucleoli, ER scale, actin fibres, mitochondrial puncta) come from a bank
of periodic smoothed-noise fields cropped at random offsets per site. Technical variation is
then applied per output channel: DNA bleed-through, gain, illumination gradient + vignetting, offset, plate
fixed-pattern background, focus blur (FFT), gamma, Poisson-Gaussian noise (Gaussian
approximation, variance a*x + b) and 8-bit quantisation.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from cellbench.data.synthetic.biology import T

STAINS = ("DNA", "ER", "Actin", "RNA", "Mito", "Golgi")  # what is rendered
# intensity calibration of each stain (peak in-cell value before gain, 0..1 scale)
_LEVEL = {"DNA": 0.4, "ER": 0.45, "Actin": 0.5, "RNA": 0.45, "Mito": 0.5, "Golgi": 0.5}


def _smooth_noise(rng, shape, sigma_px, aniso=None):
    """Periodic Gaussian-filtered white noise, standardised; optional anisotropic (angle, ratio)."""
    *lead, h, w = shape
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    if aniso is None:
        g = np.exp(-2 * np.pi**2 * sigma_px**2 * (fx**2 + fy**2))
    else:
        ang, ratio = aniso
        fu = fx * np.cos(ang) + fy * np.sin(ang)
        fv = -fx * np.sin(ang) + fy * np.cos(ang)
        g = np.exp(-2 * np.pi**2 * sigma_px**2 * (fu**2 * ratio**2 + fv**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * g, s=(h, w)).astype(np.float32)
    out -= out.mean(axis=(-2, -1), keepdims=True)
    out /= out.std(axis=(-2, -1), keepdims=True) + 1e-6
    return out


N_ORIENT = 8


class TextureBank:
    """Periodic texture fields (size ``n`` x ``n``) shared by all sites of a screen."""

    def __init__(self, rng, n: int, scale: float):
        self.n = n
        self.fine = _smooth_noise(rng, (4, n, n), 0.7 * scale)
        self.medium = _smooth_noise(rng, (2, n, n), 2.0 * scale)
        self.fibres = np.stack(
            [
                _smooth_noise(rng, (n, n), 0.6 * scale, aniso=(np.pi * k / N_ORIENT, 6.0))
                for k in range(N_ORIENT)
            ]
        )

    def crop(
        self, fields: np.ndarray, which: np.ndarray, oy: np.ndarray, ox: np.ndarray, h: int
    ) -> np.ndarray:
        iy = (oy[:, None] + np.arange(h)[None, :]) % self.n
        ix = (ox[:, None] + np.arange(h)[None, :]) % self.n
        return fields[which[:, None, None], iy[:, :, None], ix[:, None, :]]


def plate_patterns(rng, n_plates: int, n_channels: int, h: int, scale: float) -> np.ndarray:
    """Fixed-pattern background texture of each plate (same pixels in every site)."""
    return _smooth_noise(rng, (n_plates, n_channels, h, h), 3.0 * scale)


def _splat(values: list[np.ndarray], flat_idx: np.ndarray, n_pix: int) -> list[np.ndarray]:
    """Sum patch values into images; index ``n_pix`` is a dump bin for off-image pixels."""
    return [
        np.bincount(flat_idx, weights=v.reshape(-1), minlength=n_pix + 1)[:n_pix].astype(np.float32)
        for v in values
    ]


def _patch_layers(c: dict, rad: int, h: int, s: int, bank: TextureBank) -> list[np.ndarray]:
    """Soft-ellipse cell compartments on a (2 rad + 1)^2 patch per cell, summed into 8 layers:
    nucleus mask, DNA, RNA (cytoplasm), actin (cytoplasm), ER (perinuclear), membrane ring,
    Golgi blob, mitochondria (cytoplasm)."""
    d = np.arange(-rad, rad + 1, dtype=np.int64)
    cy, cx = c["cy"], c["cx"]
    piy = np.floor(cy).astype(np.int64)[:, None, None] + d[None, :, None]
    pix = np.floor(cx).astype(np.int64)[:, None, None] + d[None, None, :]
    fy = (piy + 0.5 - cy[:, None, None]).astype(np.float32)
    fx = (pix + 0.5 - cx[:, None, None]).astype(np.float32)
    valid = ((piy >= 0) & (piy < h)) & ((pix >= 0) & (pix < h))
    f32 = lambda a: np.asarray(a, dtype=np.float32)[:, None, None]  # noqa: E731
    cos, sin = f32(np.cos(c["theta"])), f32(np.sin(c["theta"]))
    du = fx * cos + fy * sin
    dv = fy * cos - fx * sin
    a = f32(c["elong"])
    # irregular cell outline: radius modulated by a smooth noise field (per-cell offset)
    shape = bank.medium[1][
        (piy + c["shape_oy"][:, None, None]) % bank.n, (pix + c["shape_ox"][:, None, None]) % bank.n
    ]
    r_c = f32(c["r_c"])
    rho_c = np.sqrt(du * du / a + dv * dv * a) / r_c * (1 + 0.18 * np.clip(shape, -1.5, 1.5))
    sa = np.sqrt(a)
    dun = du - f32(c["nuc_r"] * np.cos(c["nuc_a"]))
    dvn = dv - f32(c["nuc_r"] * np.sin(c["nuc_a"]))
    r_n = f32(c["r_n"])
    rho_n = np.sqrt(dun * dun / sa + dvn * dvn * sa) / r_n
    m_n = np.clip((1 - rho_n) * r_n + 0.5, 0, 1)
    m_c = np.clip((1 - rho_c) * r_c * 0.7 + 0.5, 0, 1)
    cyto = m_c * (1 - m_n)
    er = cyto * np.clip(1.4 - 0.9 * rho_c, 0, 1)
    ring = np.clip(1 - np.abs(rho_c - 0.9) * r_c / 1.5, 0, 1)
    mito = cyto * np.clip(1.25 - 0.7 * rho_c, 0, 1)
    g_u = dun - f32(c["g_off"] * np.cos(c["psi"]))  # Golgi: a perinuclear blob beside the nucleus
    g_v = dvn - f32(c["g_off"] * np.sin(c["psi"]))
    m_g = np.clip(1 - (g_u * g_u + g_v * g_v) / f32(c["r_g"] ** 2), 0, 1) * m_c
    # stress fibres run along each cell's long axis (texture of the matching orientation)
    k = np.rint(c["theta"] / np.pi * N_ORIENT).astype(np.int64) % N_ORIENT
    fib = bank.fibres[
        k[:, None, None],
        (piy + c["shape_ox"][:, None, None]) % bank.n,
        (pix + c["shape_oy"][:, None, None]) % bank.n,
    ]
    actin = cyto * (0.35 + f32(c["fibre_strength"]) * np.maximum(fib + 0.3, 0))
    layers = [
        m_n,
        m_n * f32(c["w_dna"]),
        cyto * f32(c["w_rna"]),
        actin * f32(c["w_act"]),
        er * f32(c["w_er"]),
        ring * f32(c["w_ring"]),
        m_g * f32(c["w_golgi"]),
        mito * f32(c["w_mito"]),
    ]
    flat = np.where(valid, c["site"][:, None, None] * h * h + piy * h + pix, s * h * h).reshape(-1)
    return _splat(layers, flat, s * h * h)


def render_chunk(
    rng,
    traits: np.ndarray,
    nuis: dict[str, np.ndarray],
    patterns: np.ndarray,
    bank: TextureBank,
    h: int,
    scale: float,
    out_channels: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``len(traits)`` sites.

    traits: (S, K) site-level traits (well latent + batch shift). nuis: per-site arrays
    (gain (S,C), offset, gamma, bleed (S,C), illum_*, vignette, blur, density, photons,
    read_noise, pattern_amp, plate_index). Returns uint8 (S, C, h, h) in ``out_channels`` order
    and the number of cells whose centre lies inside each site (the ground-truth cell count).
    """
    s = traits.shape[0]
    t = lambda name: traits[:, T[name]]  # noqa: E731
    base_rn, base_rc = 3.0 * scale, 9.0 * scale
    # cells on a jittered hexagonal lattice (a monolayer: neighbours touch, rarely overlap);
    # each lattice node holds a cell with a probability set by density trait x seeding density
    spacing = 1.75 * base_rc
    m = int(np.ceil(h / spacing)) + 2
    gy, gx = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    node_y = (gy * spacing * 0.866).reshape(-1)
    node_x = (gx * spacing + (gy % 2) * spacing / 2).reshape(-1)
    off = rng.uniform(0, spacing, (s, 2)) - spacing
    ny = node_y[None, :] + off[:, :1] + rng.uniform(-0.3, 0.3, (s, node_y.size)) * spacing
    nx = node_x[None, :] + off[:, 1:] + rng.uniform(-0.3, 0.3, (s, node_x.size)) * spacing
    p_occ = np.clip(0.8 * np.exp(0.35 * t("cell_density")) * nuis["density"], 0.02, 0.97)
    keep = (
        (rng.random(ny.shape) < p_occ[:, None])
        & (ny > -0.4 * spacing)
        & (ny < h + 0.4 * spacing)
        & (nx > -0.4 * spacing)
        & (nx < h + 0.4 * spacing)
    )
    site, node = np.nonzero(keep)
    cy, cx = ny[site, node], nx[site, node]
    inside = (cy >= 0) & (cy < h) & (cx >= 0) & (cx < h)
    cells_per_site = np.bincount(site[inside], minlength=s).astype(np.int32)
    nc = site.size
    ct = traits[site] + 0.3 * rng.standard_normal((nc, traits.shape[1]))  # per-cell variability
    cc = lambda name: ct[:, T[name]]  # noqa: E731
    phase = rng.random(nc)  # cell cycle: G1 -> G2 grows the nucleus and doubles DNA
    # rounded cells (mitotic or dying): more of them when the density trait is low (toxicity)
    rounded = rng.random(nc) < 0.03 + 0.05 * np.clip(-cc("cell_density"), 0, 3)
    r_n = base_rn * np.exp(0.18 * cc("nuclear_size")) * (1 + 0.3 * phase)
    r_n = np.where(rounded, 0.65 * base_rn, np.clip(r_n, 0.4 * base_rn, 1.8 * base_rn))
    r_c = np.clip(base_rc * np.exp(0.15 * cc("cell_area")), 1.6 * r_n, 1.35 * base_rc)
    r_c = np.where(rounded, 0.55 * base_rc, r_c)
    elong = np.clip(
        np.exp(0.2 * cc("elongation") + 0.2 * np.abs(rng.standard_normal(nc))), 1.0, 1.6
    )
    elong = np.where(rounded, 1.0, elong)
    theta = rng.uniform(0, np.pi, nc)
    nuc_r = 0.25 * r_c * rng.random(nc)  # the nucleus sits off-centre in the cell
    nuc_a = rng.uniform(0, 2 * np.pi, nc)
    psi = rng.uniform(0, 2 * np.pi, nc)
    r_g = np.clip(2.2 * scale * np.exp(-0.3 * cc("golgi_compactness")), 0.8 * scale, 4.5 * scale)

    def w(name, s_=0.2):
        return np.exp(s_ * cc(name)) * np.exp(0.1 * rng.standard_normal(nc))

    dna_amount = (1 + phase) * np.where(
        rounded, 2.0, 1.0
    )  # doubles through S; condensed when rounded
    cell = {
        "site": site,
        "cy": cy,
        "cx": cx,
        "theta": theta,
        "elong": elong,
        "r_c": r_c,
        "r_n": r_n,
        "nuc_r": nuc_r,
        "nuc_a": nuc_a,
        "psi": psi,
        "r_g": r_g,
        "g_off": r_n + 0.8 * r_g,
        "shape_oy": rng.integers(0, bank.n, nc),
        "shape_ox": rng.integers(0, bank.n, nc),
        "w_dna": w("dna_intensity") * dna_amount / (r_n / base_rn) ** 2,
        "w_rna": w("rna_intensity"),
        "w_act": w("actin_fibres", 0.1),
        "w_er": w("er_intensity"),
        "w_ring": w("membrane_intensity"),
        "w_golgi": w("golgi_intensity"),
        "w_mito": w("mito_intensity"),
        "fibre_strength": 0.8 * np.exp(0.35 * cc("actin_fibres")),
    }
    # two patch sizes: most cells fit the small one (cost scales with patch area)
    rad_big = int(np.ceil(1.35 * base_rc * np.sqrt(1.6))) + 1
    rad_small = int(np.ceil(1.3 * base_rc))
    small = r_c * np.sqrt(elong) * 1.15 <= rad_small
    L = None
    for sel, rad in ((small, rad_small), (~small, rad_big)):
        if sel.any():
            part = _patch_layers({k: v[sel] for k, v in cell.items()}, rad, h, s, bank)
            L = part if L is None else [x + y for x, y in zip(L, part, strict=True)]
    if L is None:
        L = [np.zeros(s * h * h, np.float32)] * 8
    L_nuc, L_dna, L_rna, L_act, L_er, L_ring, L_golgi, L_mito = [x.reshape(s, h, h) for x in L]

    # organelle textures at site level
    def crop(fields, k):
        which = rng.integers(0, fields.shape[0], s)
        oy, ox = rng.integers(0, bank.n, s), rng.integers(0, bank.n, s)
        return bank.crop(fields, which, oy, ox, h)

    site_f = lambda v: v.astype(np.float32)[:, None, None]  # noqa: E731
    chrom = site_f(np.clip(0.3 * np.exp(0.35 * t("chromatin_texture")), 0.05, 0.9))
    dna = L_dna * np.maximum(1 + chrom * crop(bank.fine, 0), 0.1)
    nucleoli = np.maximum(crop(bank.fine, 1) - site_f(1.3 - 0.4 * t("nucleoli_count")), 0)
    rna = 0.5 * L_rna + L_nuc * (0.2 + 1.2 * nucleoli) * site_f(np.exp(0.2 * t("rna_intensity")))
    wf = site_f(1 / (1 + np.exp(t("er_texture_scale"))))
    er = L_er * np.maximum(1 + 0.6 * (wf * crop(bank.fine, 2) + (1 - wf) * crop(bank.medium, 3)), 0)
    actin = L_act + 0.5 * L_ring
    golgi = 1.2 * L_golgi + 0.15 * L_ring
    # mitochondria: short tubules/puncta (fine noise + an oriented component), density trait
    tub = bank.crop(
        bank.fibres,
        rng.integers(0, N_ORIENT, s),
        rng.integers(0, bank.n, s),
        rng.integers(0, bank.n, s),
        h,
    )
    puncta = np.maximum(
        0.75 * crop(bank.fine, 4) + 0.6 * tub - site_f(0.7 - 0.35 * t("mito_density")), 0
    )
    mit = L_mito * (0.25 + 1.4 * puncta)
    stains = {"DNA": dna, "ER": er, "Actin": actin, "RNA": rna, "Mito": mit, "Golgi": golgi}
    for k in stains:
        stains[k] = stains[k] * _LEVEL[k]
    if "AGP" in out_channels:  # Bray's AGP channel images actin, Golgi and plasma membrane together
        stains["AGP"] = 0.5 * (stains["Actin"] + stains["Golgi"])
    sig = np.stack([stains[c] for c in out_channels], axis=1)  # (S, C, h, h)
    if "DNA" in out_channels:  # bleed-through of the DNA stain into the other channels
        bleed = nuis["bleed"].astype(np.float32).copy()
        bleed[:, out_channels.index("DNA")] = 0
        sig += bleed[:, :, None, None] * stains["DNA"][:, None]

    # --- technical variation ---
    coords = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    yy, xx = coords[:, None], coords[None, :]
    illum = (
        1
        + site_f(nuis["illum_amp"] * nuis["illum_cos"]) * xx
        + site_f(nuis["illum_amp"] * nuis["illum_sin"]) * yy
        - site_f(nuis["vignette"]) * (xx * xx + yy * yy) / 2
    )
    gain = nuis["gain"].astype(np.float32)[:, :, None, None]
    off = nuis["offset"].astype(np.float32)[:, :, None, None]
    pat = (
        patterns[nuis["plate_index"]] * nuis["pattern_amp"].astype(np.float32)[:, None, None, None]
    )
    x = sig * gain * illum[:, None] + off * illum[:, None] + pat
    fyq = np.fft.fftfreq(h)[:, None]
    fxq = np.fft.rfftfreq(h)[None, :]
    sig2 = (nuis["blur"] ** 2)[:, None, None, None]
    otf = np.exp(-2 * np.pi**2 * sig2 * (fxq**2 + fyq**2)[None, None]).astype(np.float32)
    x = scipy.fft.irfft2(scipy.fft.rfft2(x) * otf, s=(h, h)).astype(np.float32, copy=False)
    np.clip(x, 0, None, out=x)
    x = np.power(x, nuis["gamma"].astype(np.float32)[:, :, None, None])
    var = (
        x / nuis["photons"].astype(np.float32)[:, None, None, None]
        + (nuis["read_noise"] ** 2).astype(np.float32)[:, None, None, None]
    )
    x = x + np.sqrt(var) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), cells_per_site
