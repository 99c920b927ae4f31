"""A known-learnable check of the trainers, independent of the cell simulator.

scikit-learn's handwritten digits (``load_digits``: 1,797 images of 8x8 px) are upsampled to
32 px (bilinear), centred on a 40 px black canvas and served as a one-channel image dataset in
which every image is its own "perturbation" with one well and one site. The real
``PairSampler`` then pairs each image with itself (single-well pairs), and the real methods
(``single-well-msn``, ``infonce-single``) and training loop see two different random crops of
the same image as a pair - the original MSN task (Assran et al. 2022), where both views come
from one image. The digits carry plenty of per-view signal, so a working objective must learn.

Measured over training (every ``eval_every`` steps, through the loop's ``recall_probe`` hook):

* crop-pair identification among 64: two random ``crop_size`` crops of each of 640 fixed
  images, embedded with the method's evaluation embedding (MSN: the EMA target backbone's CLS);
  the fraction of crops whose nearest neighbour (z-scored features, Euclidean:
  :func:`cellbench.metrics.health.pair_identification`) among the other image's crops in a
  batch of 64 is their partner (chance 1/64 = 0.016). Step 0 is the untrained network;
* MSN: CE / log K and me-max, averaged over the logged steps since the previous evaluation
  (CE / log K = 1 and me-max = 0 is MSN's uniform fixed point); InfoNCE: its loss.

Usage: python -m experiments.digits_check [--steps 600] [--variants ...]
Prints one table per variant (a few minutes per 600-step variant on one CPU core).
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from cellbench.metrics.health import pair_identification
from cellbench.train.loop import train
from cellbench.train.methods import method_defaults
from cellbench.train.presets import resolve
from cellbench.train.views import random_crops, standardize

#: name -> (trainable model, preset overrides applied on top of the preset and method defaults)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "msn quick (no focal views)": ("single-well-msn", {}),
    "msn quick + former focal views (4 x 16 px = 4 tokens, masked)": (
        "single-well-msn",
        {"n_focal_views": 4, "focal_size": 16, "mask_focal": True},
    ),
    "msn quick + 4 focal views of 32 px (16 tokens, unmasked)": (
        "single-well-msn",
        {"n_focal_views": 4, "focal_size": 32},
    ),
    "infonce quick": ("infonce-single", {}),
}


class DigitsDataset:
    """The digits as an image dataset (the ``ImageDataset`` contract the sampler and loop use):
    ``n`` images, each its own perturbation, well and site; uint8 (N, 1, canvas, canvas)."""

    def __init__(self, size: int = 32, canvas: int = 40, n: int | None = None) -> None:

        if canvas < size:
            raise ValueError("canvas must be at least the digit size")
        digits = load_digits().images.astype(np.float32)[:n]  # (N, 8, 8), values 0..16
        up = F.interpolate(
            torch.from_numpy(digits)[:, None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
        ).numpy()
        images = np.zeros((len(digits), 1, canvas, canvas), dtype=np.uint8)
        off = (canvas - size) // 2
        images[:, :, off : off + size, off : off + size] = np.clip(up * (255 / 16), 0, 255).round()
        self.name = "digits"
        self.channels = ("DNA",)
        self._images = images
        count = len(images)
        ids = [f"d{i:04d}" for i in range(count)]
        self.wells = pl.DataFrame(
            {
                "well_id": ids,
                "batch": ["b0"] * count,
                "plate": ["p0"] * count,
                "well": ids,
                "perturbation": ids,
                "perturbation_type": ["CRISPR"] * count,
                "concentration": [None] * count,
                "is_control": [False] * count,
            },
            schema_overrides={"concentration": pl.Float64},
        )
        self.sites = pl.DataFrame(
            {
                "site_id": ids,
                "well_id": ids,
                "site": [0] * count,
                "well_index": np.arange(count, dtype=np.int64),
            }
        )

    def read_sites(self, indices) -> np.ndarray:
        return self._images[np.asarray(indices)]

    def load_all(self) -> np.ndarray:
        return self._images


def crop_pair_probe(
    dataset: DigitsDataset, crop_size: int, n_images: int = 640, batch: int = 64, seed: int = 0
):
    """A ``recall_probe`` for :func:`cellbench.train.loop.train`: ``method -> {"crop_pair_id"}``
    (two fixed random crops of ``n_images`` fixed images; mean identification over batches)."""
    rng = np.random.default_rng([seed, 1234])
    pick = np.sort(rng.choice(len(dataset.load_all()), size=n_images, replace=False))
    sites = standardize(torch.as_tensor(dataset.read_sites(pick)))
    gen = torch.Generator().manual_seed(seed)
    a, b = random_crops(sites, crop_size, gen), random_crops(sites, crop_size, gen)

    @torch.no_grad()
    def probe(method) -> dict[str, float]:
        scores = []
        for start in range(0, n_images - batch + 1, batch):
            ea = method.embed_tokens(a[start : start + batch])
            eb = method.embed_tokens(b[start : start + batch])
            scores.append(pair_identification(ea, eb))
        return {"crop_pair_id": float(np.mean(scores))}

    return probe


def run(
    model: str = "single-well-msn",
    overrides: dict[str, Any] | None = None,
    *,
    steps: int = 600,
    eval_every: int = 50,
    seed: int = 0,
    preset: str = "quick",
    dataset: DigitsDataset | None = None,
    n_eval: int = 640,
) -> list[dict[str, float]]:
    """Train ``model`` on the digits with ``preset`` (and the method's CPU defaults, as
    ``cellbench train`` does) plus ``overrides`` for ``steps`` steps; return the curve: one dict
    per evaluation (step 0 = untrained) with ``crop_pair_id`` and, for MSN, ``ce_over_log_k``
    and ``me_max`` (InfoNCE: ``loss``) averaged over the logged steps since the last one."""
    dataset = dataset or DigitsDataset()
    config = resolve(
        preset,
        {
            **method_defaults(model, preset),
            "max_steps": steps,
            "health_every": eval_every,
            "checkpoint_every": steps + 1,
            "log_every": min(10, eval_every),
            **(overrides or {}),
        },
    )
    probe = crop_pair_probe(dataset, config.crop_size, n_images=n_eval, seed=seed)
    threads = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory(prefix="digits_check_") as out:
            result = train(
                model,
                dataset,
                config,
                seed=seed,
                out_dir=out,
                progress=False,
                health=False,
                recall_probe=probe,
            )
    finally:
        torch.set_num_threads(threads)
    history = result.log["history"]
    curve, last = [], 0
    for rec in result.log["health"]:
        row: dict[str, float] = {"step": rec["step"], "crop_pair_id": rec["crop_pair_id"]}
        window = [h for h in history if last < h["step"] <= rec["step"]]
        for key in ("ce_over_log_k", "me_max", "loss"):
            if window and key in window[0]:
                row[key] = float(np.mean([h[key] for h in window]))
        curve.append(row)
        last = rec["step"]
    return curve


def format_curve(name: str, curve: list[dict[str, float]]) -> str:
    cols = ["step", "ce_over_log_k", "me_max", "loss", "crop_pair_id"]
    cols = [c for c in cols if any(c in r for r in curve)]
    lines = [name, "  ".join(f"{c:>13s}" for c in cols)]
    for r in curve:
        lines.append(
            "  ".join(
                f"{r[c]:13.3f}"
                if c in r and c != "step"
                else (f"{int(r[c]):13d}" if c in r else f"{'-':>13s}")
                for c in cols
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    dataset = DigitsDataset()
    for name in args.variants:
        model, overrides = VARIANTS[name]
        curve = run(
            model,
            overrides,
            steps=args.steps,
            eval_every=args.eval_every,
            seed=args.seed,
            dataset=dataset,
        )
        print(format_curve(f"{name} ({model}, overrides {overrides})", curve), flush=True)


if __name__ == "__main__":
    main()
