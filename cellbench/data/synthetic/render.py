"""Vectorised rendering of Cell Painting fields of view from latent traits + nuisance.

Cells are splatted as soft ellipses (nucleus, cell body, perinuclear ER, membrane ring,
a Golgi blob) on a fixed-size patch around each cell; all cells of a chunk of sites are
computed at once and accumulated with ``np.bincount`` (no per-cell Python loop). Organelle
textures (chromatin, nucleoli, ER scale, actin fibres, mitochondrial puncta) come from a bank
of periodic smoothed-noise fields cropped at random offsets per site. Technical variation is
then applied per output channel: gain, illumination gradient + vignetting, offset, plate
fixed-pattern background, focus blur (FFT), gamma, Poisson-Gaussian noise (Gaussian
approximation, variance a*x + b) and 8-bit quantisation.
"""

from __future__ import annotations

import numpy as np

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
        self.fibres = np.stack([
            _smooth_noise(rng, (n, n), 0.6 * scale, aniso=(np.pi * k / N_ORIENT, 6.0))
            for k in range(N_ORIENT)
        ])

    def crop(self, fields: np.ndarray, which: np.ndarray, oy: np.ndarray, ox: np.ndarray, h: int) -> np.ndarray:
        iy = (oy[:, None] + np.arange(h)[None, :]) % self.n
        ix = (ox[:, None] + np.arange(h)[None, :]) % self.n
        return fields[which[:, None, None], iy[:, :, None], ix[:, None, :]]


def plate_patterns(rng, n_plates: int, n_channels: int, h: int, scale: float) -> np.ndarray:
    """Fixed-pattern background texture of each plate (same pixels in every site)."""
    return _smooth_noise(rng, (n_plates, n_channels, h, h), 3.0 * scale)


def _splat(values: list[np.ndarray], flat_idx: np.ndarray, n_pix: int) -> list[np.ndarray]:
    return [np.bincount(flat_idx, weights=v, minlength=n_pix).astype(np.float32) for v in values]


def render_chunk(rng, traits: np.ndarray, nuis: dict[str, np.ndarray], patterns: np.ndarray,
                 bank: TextureBank, h: int, scale: float, out_channels: tuple[str, ...]) -> np.ndarray:
    """Render ``len(traits)`` sites.

    traits: (S, K) site-level traits (well latent + batch shift). nuis: per-site arrays
    (gain (S,C), offset, gamma, illum_*, vignette, blur, density, photons, read_noise,
    pattern_amp, plate_index). Returns uint8 (S, C, h, h) in ``out_channels`` order.
    """
    s = traits.shape[0]
    t = lambda name: traits[:, T[name]]  # noqa: E731
    base_rn, base_rc = 3.0 * scale, 9.0 * scale
    lam = 0.5 * h * h / (np.pi * base_rc**2) * np.exp(0.35 * t("cell_density")) * nuis["density"]
    n_cells = np.minimum(rng.poisson(lam), int(3 * 0.5 * h * h / (np.pi * base_rc**2)) + 2)
    site = np.repeat(np.arange(s), n_cells)
    nc = site.size
    ct = traits[site] + 0.3 * rng.standard_normal((nc, traits.shape[1]))  # per-cell variability
    cc = lambda name: ct[:, T[name]]  # noqa: E731
    phase = rng.random(nc)  # cell cycle: G1 -> G2 grows the nucleus and doubles DNA
    r_n = base_rn * np.exp(0.18 * cc("nuclear_size")) * (1 + 0.3 * phase)
    r_n = np.clip(r_n, 0.4 * base_rn, 1.8 * base_rn)
    r_c = np.clip(base_rc * np.exp(0.15 * cc("cell_area")), 1.6 * r_n, 1.35 * base_rc)
    elong = np.clip(np.exp(0.2 * cc("elongation") + 0.2 * np.abs(rng.standard_normal(nc))), 1.0, 1.6)
    theta = rng.uniform(0, np.pi, nc)
    cy = rng.uniform(0, h, nc)
    cx = rng.uniform(0, h, nc)
    psi = rng.uniform(0, 2 * np.pi, nc)
    r_g = np.clip(2.2 * scale * np.exp(-0.3 * cc("golgi_compactness")), 0.8 * scale, 4.5 * scale)
    g_off = r_n + 0.8 * r_g

    rad = int(np.ceil(1.35 * base_rc * np.sqrt(1.6))) + 1
    d = np.arange(-rad, rad + 1, dtype=np.float32)
    py0, px0 = np.floor(cy).astype(np.int64), np.floor(cx).astype(np.int64)
    # patch pixel coordinates (nc, P, P) -> flattened
    piy = py0[:, None, None] + d.astype(np.int64)[None, :, None]
    pix = px0[:, None, None] + d.astype(np.int64)[None, None, :]
    fy = (piy + 0.5 - cy[:, None, None]).astype(np.float32)
    fx = (pix + 0.5 - cx[:, None, None]).astype(np.float32)
    valid = (piy >= 0) & (piy < h) & (pix >= 0) & (pix < h)
    f32 = lambda a: a.astype(np.float32)[:, None, None]  # noqa: E731
    cos, sin = f32(np.cos(theta)), f32(np.sin(theta))
    du = fx * cos + fy * sin
    dv = fy * cos - fx * sin
    a = f32(elong)
    du2, dv2 = du * du, dv * dv
    rho_c = np.sqrt(du2 / a + dv2 * a) / f32(r_c)
    sa = np.sqrt(a)
    rho_n = np.sqrt(du2 / sa + dv2 * sa) / f32(r_n)
    m_n = np.clip((1 - rho_n) * f32(r_n) + 0.5, 0, 1)
    m_c = np.clip((1 - rho_c) * f32(r_c) * 0.7 + 0.5, 0, 1)
    cyto = m_c * (1 - m_n)
    er = cyto * np.clip(1.4 - 0.9 * rho_c, 0, 1)
    ring = np.clip(1 - np.abs(rho_c - 0.9) * f32(r_c) / 1.5, 0, 1)
    mito = cyto * np.clip(1.25 - 0.7 * rho_c, 0, 1)
    gy = fy - f32(g_off * np.sin(psi))
    gx = fx - f32(g_off * np.cos(psi))
    m_g = np.clip(1 - (gy * gy + gx * gx) / f32(r_g**2), 0, 1) * m_c

    def w(name, s_=0.2):
        return f32(np.exp(s_ * cc(name)) * np.exp(0.1 * rng.standard_normal(nc)))

    dna_amount = f32(1 + phase)  # DNA content doubles through S phase
    layers = [m_n, m_n * w("dna_intensity") * dna_amount / f32((r_n / base_rn) ** 2),
              cyto * w("rna_intensity"), cyto * w("actin_fibres", 0.1), er * w("er_intensity"),
              ring * w("membrane_intensity"), m_g * w("golgi_intensity"), mito * w("mito_intensity")]
    flat = (site[:, None, None] * h * h + np.clip(piy, 0, h - 1) * h + np.clip(pix, 0, h - 1))
    flat = flat[valid]
    L_nuc, L_dna, L_rna, L_act, L_er, L_ring, L_golgi, L_mito = [
        x.reshape(s, h, h) for x in _splat([layer[valid] for layer in layers], flat, s * h * h)]

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
    fib_which = rng.integers(0, N_ORIENT, s)
    fib = bank.crop(bank.fibres, fib_which, rng.integers(0, bank.n, s), rng.integers(0, bank.n, s), h)
    sf = site_f(0.8 * np.exp(0.35 * t("actin_fibres")))
    actin = L_act * (0.35 + sf * np.maximum(fib + 0.3, 0)) + 0.5 * L_ring
    golgi = 1.2 * L_golgi + 0.15 * L_ring
    puncta = np.maximum(crop(bank.fine, 4) - site_f(0.7 - 0.35 * t("mito_density")), 0)
    mit = L_mito * (0.25 + 1.4 * puncta)
    stains = {"DNA": dna, "ER": er, "Actin": actin, "RNA": rna, "Mito": mit, "Golgi": golgi}
    for k in stains:
        stains[k] = stains[k] * _LEVEL[k]
    if "AGP" in out_channels:  # Bray's AGP channel images actin, Golgi and plasma membrane together
        stains["AGP"] = 0.5 * (stains["Actin"] + stains["Golgi"])
    sig = np.stack([stains[c] for c in out_channels], axis=1)  # (S, C, h, h)

    # --- technical variation ---
    coords = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    yy, xx = coords[:, None], coords[None, :]
    illum = (1 + site_f(nuis["illum_amp"] * nuis["illum_cos"]) * xx
             + site_f(nuis["illum_amp"] * nuis["illum_sin"]) * yy
             - site_f(nuis["vignette"]) * (xx * xx + yy * yy) / 2)
    gain = nuis["gain"].astype(np.float32)[:, :, None, None]
    off = nuis["offset"].astype(np.float32)[:, :, None, None]
    pat = patterns[nuis["plate_index"]] * nuis["pattern_amp"].astype(np.float32)[:, None, None, None]
    x = sig * gain * illum[:, None] + off * illum[:, None] + pat
    fyq = np.fft.fftfreq(h)[:, None]
    fxq = np.fft.rfftfreq(h)[None, :]
    sig2 = (nuis["blur"] ** 2)[:, None, None, None]
    otf = np.exp(-2 * np.pi**2 * sig2 * (fxq**2 + fyq**2)[None, None]).astype(np.float32)
    x = np.fft.irfft2(np.fft.rfft2(x) * otf, s=(h, h)).astype(np.float32)
    np.clip(x, 0, None, out=x)
    x = np.power(x, nuis["gamma"].astype(np.float32)[:, :, None, None])
    var = x / nuis["photons"].astype(np.float32)[:, None, None, None] + (nuis["read_noise"] ** 2).astype(np.float32)[:, None, None, None]
    x = x + np.sqrt(var) * rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
