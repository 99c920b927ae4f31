"""Orchestration: layout -> clean latent per well -> nuisance -> rendered sites (in memory).

:func:`simulate` returns a :class:`Screen` whose images are produced chunk by chunk by
:meth:`Screen.iter_chunks`, so a writer can stream them to disk (the ``full`` size does not
fit comfortably in memory) and tests can render a few sites directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cellbench.data.synthetic import biology as B
from cellbench.data.synthetic.config import ScreenConfig, preset_rng
from cellbench.data.synthetic.layout import make_layout
from cellbench.data.synthetic.nuisance import draw_nuisance, nuisance_table, remove_terms
from cellbench.data.synthetic.render import TextureBank, plate_patterns, render_chunk

CHUNK_PIXELS = 512 * 64 * 64  # sites rendered together: ~0.5 GB of temporaries per thread


def chunk_sites(image_size: int) -> int:
    """Sites per render chunk (a function of the configuration only, so bytes never depend
    on the machine)."""
    return max(16, CHUNK_PIXELS // (image_size * image_size))


MAX_GUIDES = 10


def default_threads() -> int:
    """Rendering threads: ``CELLBENCH_THREADS`` or min(2, CPUs) (output never depends on it)."""
    env = os.environ.get("CELLBENCH_THREADS")
    return max(1, int(env)) if env else max(1, min(2, os.cpu_count() or 1))


def _guide_efficiency(seed: int, n_genes: int) -> np.ndarray:
    """Knockout efficiency of each (gene, guide): most guides work, ~15% are weak."""
    rng = np.random.default_rng([seed, 707])
    eff = rng.uniform(0.7, 1.0, (n_genes, MAX_GUIDES))
    weak = rng.random((n_genes, MAX_GUIDES)) < 0.15
    return np.where(weak, rng.uniform(0.0, 0.4, (n_genes, MAX_GUIDES)), eff)


def clean_latent(cfg: ScreenConfig, layout: pl.DataFrame) -> np.ndarray:
    """(n_wells, K) clean latent phenotype: perturbation effect + per-well random effect."""
    bio = B.make_biology(cfg.seed)
    gidx = bio.gene_index()
    nw = layout.height
    eff = np.zeros((nw, B.K))
    kind = layout["kind"].to_numpy()
    genes = layout["gene"].to_list()
    is_gene = kind == "gene"
    if is_gene.any():
        gi = np.array([gidx[g] for g, k in zip(genes, kind, strict=True) if k == "gene"])
        guide = layout["guide"].to_numpy()[is_gene].astype(np.int64)
        e = _guide_efficiency(cfg.seed, len(bio.genes))[gi, guide]
        eff[is_gene] = bio.effects[gi] * e[:, None] + B.CUT_RESPONSE
    eff[kind == "crispr_control"] = B.CUT_RESPONSE
    is_comp = kind == "compound"
    if is_comp.any():
        comp = (
            B.rxrx3_compounds(cfg.seed)
            if cfg.kind == "rxrx3"
            else B.bray_compounds(cfg.seed, cfg.n_compounds)
        )
        cidx = layout["compound_index"].to_numpy()[is_comp].astype(np.int64)
        conc = layout["concentration"].to_numpy()[is_comp].astype(np.float64)
        eff[is_comp] = B.compound_effect(bio, comp, cidx, conc)
    rng = preset_rng(cfg, 808)
    return eff + B.WELL_SD * rng.standard_normal((nw, B.K))


@dataclass
class Screen:
    """A simulated screen before it is written: wells, sites, latent, nuisance, renderer."""

    config: ScreenConfig
    layout: pl.DataFrame  # one row per well (well_index order)
    latent: np.ndarray  # (n_wells, K)
    nuisance: dict[str, np.ndarray]
    site_well: np.ndarray  # (n_sites,) well index of each site
    site_number: np.ndarray  # (n_sites,) 1-based site number within the well
    site_cells: np.ndarray  # (n_sites,) cells rendered in each site (-1 until it is rendered)

    @property
    def n_sites(self) -> int:
        return int(self.site_well.size)

    def ground_truth(self) -> pl.DataFrame:
        cols: dict[str, list | np.ndarray] = {"well_id": self.layout["well_id"].to_list()}
        for j, name in enumerate(B.TRAITS):
            cols[f"latent_{name}"] = self.latent[:, j]
        cols.update(nuisance_table(self.nuisance, self.config.channels, B.TRAITS))
        cells = np.where(self.site_cells >= 0, self.site_cells, np.nan)
        per_well = np.bincount(self.site_well, weights=cells, minlength=self.layout.height)
        cols["cells_per_site"] = per_well / np.bincount(
            self.site_well, minlength=self.layout.height
        )
        return pl.DataFrame(cols).with_columns(pl.col("cells_per_site").fill_nan(None))

    def iter_chunks(
        self,
        chunk: int | None = None,
        threads: int | None = None,
        post: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    ) -> Iterator[tuple[np.ndarray, Any]]:
        """Yield (site indices, uint8 images (S, C, H, W)); deterministic in the seed.

        ``post(indices, images)``, if given, runs in the worker thread (e.g. image encoding)
        and its result is yielded instead of the images."""
        cfg = self.config
        h = cfg.image_size
        chunk = chunk or chunk_sites(h)
        rng0 = preset_rng(cfg, 909)
        bank = TextureBank(rng0, max(128, 2 * h), cfg.cell_scale)
        n_plates = int(self.nuisance["plate_index"].max()) + 1
        patterns = plate_patterns(rng0, n_plates, len(cfg.channels), h, cfg.cell_scale)
        site_keys = (
            "gain",
            "offset",
            "gamma",
            "bleed",
            "illum_amp",
            "illum_cos",
            "illum_sin",
            "vignette",
            "blur",
            "density",
            "photons",
            "read_noise",
            "pattern_amp",
            "plate_index",
        )

        def job(k: int) -> tuple[np.ndarray, np.ndarray]:
            idx = np.arange(k * chunk, min((k + 1) * chunk, self.n_sites))
            w = self.site_well[idx]
            nuis = {key: self.nuisance[key][w] for key in site_keys}
            traits = self.latent[w] + self.nuisance["batch_shift"][w]
            rng = preset_rng(cfg, 1000 + k)  # one stream per chunk: thread-safe
            imgs, cells = render_chunk(
                rng, traits, nuis, patterns, bank, h, cfg.cell_scale, cfg.channels
            )
            self.site_cells[idx] = cells
            return idx, (post(idx, imgs) if post is not None else imgs)

        n_chunks = -(-self.n_sites // chunk)
        workers = max(1, min(threads or default_threads(), n_chunks))
        if workers == 1:
            for k in range(n_chunks):
                yield job(k)
            return
        # numpy releases the GIL in the heavy kernels: render chunks on a few threads, in order
        with ThreadPoolExecutor(workers) as pool:
            pending = [pool.submit(job, k) for k in range(min(n_chunks, 2 * workers))]
            for k in range(n_chunks):
                result = pending[k].result()
                pending[k] = None  # type: ignore[call-overload]
                if k + 2 * workers < n_chunks:
                    pending.append(pool.submit(job, k + 2 * workers))
                yield result

    def render_all(self) -> np.ndarray:
        out = np.empty(
            (
                self.n_sites,
                len(self.config.channels),
                self.config.image_size,
                self.config.image_size,
            ),
            dtype=np.uint8,
        )
        for idx, imgs in self.iter_chunks():
            out[idx] = imgs
        return out


def simulate(cfg: ScreenConfig) -> Screen:
    layout = make_layout(cfg)
    latent = clean_latent(cfg, layout)
    nuis = draw_nuisance(layout, len(cfg.channels), preset_rng(cfg, 606), cfg.cell_scale)
    if not cfg.technical_variation:
        nuis = remove_terms(nuis, "none")
    site_well = np.repeat(np.arange(layout.height), cfg.sites_per_well)
    site_number = np.tile(np.arange(1, cfg.sites_per_well + 1), layout.height)
    site_cells = np.full(site_well.size, -1, dtype=np.int32)
    return Screen(cfg, layout, latent, nuis, site_well, site_number, site_cells)
