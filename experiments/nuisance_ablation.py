"""Which technical-variation term masks the biology of a training view? (follows ``pair_signal.py``)

``experiments/pair_signal.py`` found that one 32 px view of a synthetic-bray quick well finds
its cross-well partner (another well of the same compound) among 64 at 0.027 (chance 0.016),
although the true per-well biology would allow 0.58. This script removes the simulator's
technical terms one at a time, re-renders the same screen (same biology, same cells, same
seeds) and scores the same task with the same fixed features, so the loss of signal can be
attributed to a term before anyone argues about its realism. No encoder is trained; nothing
here reads a model's score.

A term is "removed" (by the simulator's own
:func:`cellbench.data.synthetic.nuisance.remove_terms`) by replacing its per-well draw with the
mean of its plate (blur, density) or batch (gamma, photons, read noise), or by zeroing it
(illumination gradient, vignetting, fixed pattern, bleed-through, batch morphology shift). Groups: ``all per-well terms`` keeps
only batch- and plate-level variation; ``batch- and plate-level terms`` keeps only the per-well
draws; ``none`` removes every term and shows what cell-to-cell sampling alone leaves.

Score: top-1 pair identification among B = 64 cross-well pairs (pixel statistics after the
trainer's per-image standardisation; one random 32 px view, the whole 64 px site, the mean over
all sites of each well, and the latent traits predicted linearly from that mean, cross-fitted -
the most a linear read-out of these features can recover), mean over batches with a 95 %
normal interval.

``--denser`` repeats the two end points with cells drawn at half the size (4x the cells in the
same pixels): does the view lack cells, or is the signal masked?

Usage: python -m experiments.nuisance_ablation [--denser] [--out leaderboard/experiments/nuisance_ablation.csv]
Numbers are synthetic (measured on cellbench's simulator), never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cellbench.data.synthetic.config import make_config
from cellbench.data.synthetic.nuisance import REMOVABLE, remove_terms
from cellbench.data.synthetic.simulate import simulate
from cellbench.encoders.baselines import PixelStatsEncoder
from cellbench.metrics.health import pair_identification
from cellbench.train.views import random_crops, standardize
from experiments._common import OUT_DIR, mean_interval, write_rows

BATCH = 64

#: the simulator's removable terms (:data:`~cellbench.data.synthetic.nuisance.REMOVABLE`) but
#: ``plate density``, which this ablation removes only within ``batch- and plate-level terms``
VARIANTS = tuple(v for v in REMOVABLE if v != "plate density")


def _features(images, pixel, crop: int | None, seed: int, standardise: bool = True):
    out = []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(images), 512):
        x = torch.as_tensor(images[i : i + 512])
        x = standardize(x) if standardise else x.float() / 255.0
        if crop is not None:
            x = random_crops(x, crop, gen)
        out.append(pixel.embed(x).numpy())
    return np.concatenate(out)


def _linear_readout(features, latent):
    """The latent traits predicted from ``features`` by ridge regression, 5-fold cross-fitted:
    the best a linear read-out of these features can recover (an upper bound for them)."""

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
    return cross_val_predict(model, features, latent, cv=5)


def score_variant(
    screen,
    variant: str,
    batches: int,
    seed: int = 0,
    standardise: bool = True,
    batch_size: int = BATCH,
) -> list[dict]:
    """Rows of pair-identification accuracy (among ``batch_size`` cross-well pairs) of each
    feature set on ``screen`` re-rendered with ``variant``'s technical terms removed."""

    variant_screen = dataclasses.replace(
        screen,
        nuisance=remove_terms(screen.nuisance, variant),
        site_cells=np.full_like(screen.site_cells, -1),  # counted again as it is rendered
    )
    images = variant_screen.render_all()
    pixel = PixelStatsEncoder(tuple(screen.config.channels))
    site_feats = {
        "one 32 px view": _features(images, pixel, 32, seed, standardise),
        "whole 64 px site": _features(images, pixel, None, seed, standardise),
    }
    n_wells = screen.layout.height
    well_sum = np.zeros((n_wells, site_feats["whole 64 px site"].shape[1]))
    np.add.at(well_sum, screen.site_well, site_feats["whole 64 px site"])
    well_mean = well_sum / np.bincount(screen.site_well, minlength=n_wells)[:, None]

    readout = _linear_readout(well_mean, screen.latent)

    compound = screen.layout["compound_index"].to_numpy()
    is_comp = (screen.layout["kind"] == "compound").to_numpy()
    wells_of = {}
    for w in np.flatnonzero(is_comp):
        wells_of.setdefault(int(compound[w]), []).append(int(w))
    perts = sorted(c for c, ws in wells_of.items() if len(ws) >= 2)
    sites_of = [np.flatnonzero(screen.site_well == w) for w in range(n_wells)]
    rng = np.random.default_rng(seed)
    results: dict[str, list[float]] = {}
    for _ in range(batches):
        chosen = rng.choice(perts, batch_size, replace=False)
        pairs = np.array([rng.choice(wells_of[c], 2, replace=False) for c in chosen])
        for name, feats in site_feats.items():
            a = feats[[rng.choice(sites_of[w]) for w in pairs[:, 0]]]
            t = feats[[rng.choice(sites_of[w]) for w in pairs[:, 1]]]
            results.setdefault(name, []).append(pair_identification(a, t))
        results.setdefault("well mean of all sites", []).append(
            pair_identification(well_mean[pairs[:, 0]], well_mean[pairs[:, 1]])
        )
        results.setdefault("well mean, linear readout of the latent", []).append(
            pair_identification(readout[pairs[:, 0]], readout[pairs[:, 1]])
        )
        results.setdefault("oracle (true latent)", []).append(
            pair_identification(screen.latent[pairs[:, 0]], screen.latent[pairs[:, 1]])
        )
    rows = []
    for features, values in results.items():
        mean, half = mean_interval(values, kind="normal")
        rows.append(
            {
                "screen": f"{screen.config.name}-{screen.config.size}",
                "cell_scale": screen.config.cell_scale,
                "standardised": standardise,
                "removed": variant,
                "features": features,
                "accuracy": round(mean, 4),
                "ci_low": round(mean - half, 4),
                "ci_high": round(mean + half, 4),
                "chance": round(1 / batch_size, 4),
                "batches": len(values),
                "simulator_version": screen.config.version,
                "provenance": "measured, synthetic",
            }
        )
        print(
            f"scale {screen.config.cell_scale:g}  {variant:30s} {features:40s} {mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--screen", default="synthetic-bray:quick", help="NAME:SIZE")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=BATCH, help="pairs per batch")
    parser.add_argument(
        "--denser",
        action="store_true",
        help="also render the screen with cells at half the size (4x the cells per "
        "site), as simulated and with no technical variation",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="score raw intensities instead of per-image standardised ones",
    )
    parser.add_argument("--out", default=str(OUT_DIR / "nuisance_ablation.csv"))
    args = parser.parse_args(argv)

    name, size = args.screen.split(":")
    config = make_config(name, size, seed=0)
    runs = [(config, args.variants)]
    if args.denser:
        runs.append(
            (
                dataclasses.replace(config, cell_scale=config.cell_scale / 2),
                ["as simulated", "none"],
            )
        )
    rows = []
    for cfg, variants in runs:
        screen = simulate(cfg)
        for variant in variants:
            rows += score_variant(
                screen,
                variant,
                args.batches,
                standardise=not args.raw,
                batch_size=args.batch_size,
            )
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
