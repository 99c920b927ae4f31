"""Can MSN's anchor view predict its own target's prototype assignment at initialisation?

MSN (Assran et al. 2022) trains the anchor view to predict the prototype assignment of its
target view. It can only learn that if, to begin with, the anchor carries some information
about *its own* target's assignment: otherwise the cross-entropy can fall only by flattening
the targets, and the run settles at the uniform fixed point (CE / log K = 1, me-max = 0).
This script measures that information on the untrained network, before any step is taken.

For each (dataset, pairing, pooling, seed): the preset's MSN (``resolve(preset,
method_defaults(model, preset))``, as ``cellbench train`` builds it; network seeded with
``torch.manual_seed(seed)``, in train mode as in training), ``--batches`` pair batches of the
preset's batch size drawn by the trainer's own ``PairSampler`` (seed ``seed``), the anchor and
target views made exactly as ``MSN.forward`` makes them (the loop's per-step generator; anchor
patch tokens dropped at ``mask_ratio``) and the probabilities and sharpened, Sinkhorn-balanced
targets computed by the library's ``msn_loss``. Per batch:

* ``info = CE(anchors, targets of a shuffled batch) - CE(anchors, their own targets)`` in units
  of log K, the shuffle a derangement (each anchor gets its neighbour's target): how much
  better the anchors predict their own targets than someone else's. Reported as the mean over
  batches with a 95 % normal interval; 0 means the anchor knows nothing about its target;
* ``argmax agreement``: the fraction of anchors whose most probable prototype is their
  target's (``chance`` = 1/K; ``agreement_shuffled`` is the same against the shuffled targets,
  the empirical chance level);
* ``target max prob``: the mean largest target probability (1/K is a uniform target).

Pooling ``cls`` is MSN as trained (the CLS token of anchor and target); ``mean`` feeds the
projection head the mean of the patch tokens instead (a counterfactual, not a trained recipe).

Datasets: ``digits`` (scikit-learn's handwritten digits, two crops of one image as in the
original MSN task: the known-learnable check of ``experiments.digits_check``), and
synthetic-bray (``--size``) with single-well pairs (two sites of one well, single-well-msn)
and cross-well pairs (two wells of one perturbation, CWA-MSN).

Usage: python -m experiments.msn_init_information [--seeds 0] [--batches 20] [--out CSV]
Numbers on the synthetic screen are synthetic, never comparable with the paper's.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from cellbench.data import load_dataset
from cellbench.data.sampling import PairSampler
from cellbench.methods.msn import msn_loss
from cellbench.train.backbone import num_patches, pool, random_keep, tokens
from cellbench.train.distributed import slice_batch
from cellbench.train.loop import build_method_options, step_generator
from cellbench.train.method import StepInputs
from cellbench.train.methods import build_method, method_defaults
from cellbench.train.presets import resolve
from cellbench.train.views import multi_crop, random_crops, random_flips, standardize
from experiments._common import OUT_DIR, mean_interval, write_rows
from experiments.digits_check import DigitsDataset

POOLINGS = ("cls", "mean")
#: (dataset, pairing) -> the trainable model whose pairs and network are measured
PAIRINGS = {
    ("digits", "single-well"): "single-well-msn",
    ("synthetic-bray", "single-well"): "single-well-msn",
    ("synthetic-bray", "cross-well"): "cwa-msn",
}


@torch.no_grad()
def assignments(
    method, inputs: StepInputs, generator: torch.Generator, pooling: str = "cls"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The anchor probabilities (V * B, K; view-major) and the targets (B, K) of one MSN step.

    The views, patch dropping and generator draws are those of ``MSN.forward`` in the same
    order, and the probabilities come from ``msn_loss``; with ``pooling="cls"`` the result is
    exactly what a training step computes. ``"mean"`` pools the patch tokens instead of the CLS
    token before the projection heads."""
    cfg = method.config
    anchor, target = standardize(inputs.anchor), standardize(inputs.target)
    rand, focal = multi_crop(
        anchor,
        generator,
        crop_size=cfg.crop_size,
        focal_size=cfg.focal_size,
        n_random=cfg.n_random_views,
        n_focal=cfg.n_focal_views,
    )
    target_view = random_flips(random_crops(target, cfg.crop_size, generator), generator)

    def encode(views: torch.Tensor, mask: bool) -> torch.Tensor:
        keep = None
        if mask:
            n = num_patches(method.backbone, views.shape[-1])
            keep = random_keep(views.shape[0], n, cfg.mask_ratio, generator)
        return method.head(pool(method.backbone, tokens(method.backbone, views, keep), pooling))

    z = [encode(rand, True)]
    if focal is not None:
        z.append(encode(focal, cfg.mask_focal))
    target_toks = tokens(method.target_backbone, target_view)
    target_z = method.target_head(pool(method.target_backbone, target_toks, pooling))
    _, out = msn_loss(
        torch.cat(z),
        target_z,
        method.prototypes,
        temperature=cfg.temperature,
        sharpen_temperature=cfg.sharpen,
        sinkhorn_iters=cfg.sinkhorn_iters,
        ce_weight=cfg.ce_weight,
        me_max_weight=cfg.me_max_weight,
    )
    return out["anchor_probs"], out["targets"]


def batch_information(probs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """CE of the anchors against their own and against shuffled targets (in units of log K),
    their difference ``info`` and the argmax agreements, for one batch (``probs`` view-major,
    V * B rows; ``targets`` B rows). The shuffle gives anchor i the target of i - 1."""
    batch, k = targets.shape
    views = probs.shape[0] // batch
    log_p = torch.log(probs.clamp_min(1e-30))
    shuffled = targets[torch.roll(torch.arange(batch), 1)]
    own_q, shuf_q = targets.repeat(views, 1), shuffled.repeat(views, 1)
    own = float(-(own_q * log_p).sum(1).mean()) / math.log(k)
    shuf = float(-(shuf_q * log_p).sum(1).mean()) / math.log(k)
    top = probs.argmax(1)
    return {
        "ce_own": own,
        "ce_shuffled": shuf,
        "info": shuf - own,
        "agreement": float((top == own_q.argmax(1)).float().mean()),
        "agreement_shuffled": float((top == shuf_q.argmax(1)).float().mean()),
        "target_max_prob": float(targets.max(1).values.mean()),
    }


def measure(
    dataset, model: str, *, pooling: str, seed: int, batches: int, preset: str = "quick"
) -> dict[str, float]:
    """Means over ``batches`` of :func:`batch_information` for the untrained ``model`` of
    ``preset`` on ``dataset``, plus the interval of ``info`` and the prototype count."""
    config = resolve(preset, method_defaults(model, preset))
    opts = build_method_options(model, config)
    sampler = PairSampler(
        dataset,
        cross_well=opts.cross_well,
        batch_size=config.batch_size,
        seed=seed,
        include_controls=opts.include_controls,
        holdout_fraction=opts.holdout_fraction,
    )
    torch.manual_seed(seed)
    method = build_method(
        model, config, len(dataset.channels), int(getattr(sampler, "n_perturbations", 0))
    )
    method.train()  # as in training: the heads' BatchNorm uses the batch's statistics
    per_batch: dict[str, list[float]] = {}
    for step in range(batches):
        inputs = slice_batch(sampler.batch_at(step), 0, 1, "cpu")
        probs, targets = assignments(method, inputs, step_generator(seed, step), pooling)
        for key, value in batch_information(probs, targets).items():
            per_batch.setdefault(key, []).append(value)
    out = {key: float(np.mean(values)) for key, values in per_batch.items()}
    out["info_half"] = mean_interval(per_batch["info"], kind="normal")[1]
    out["num_prototypes"] = config.num_prototypes
    out["batch_size"] = config.batch_size
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--poolings", nargs="+", default=list(POOLINGS), choices=POOLINGS)
    parser.add_argument("--size", default="quick", help="synthetic-bray size (tiny: a smoke run)")
    parser.add_argument("--preset", default="quick", help="training preset (tiny: a smoke run)")
    parser.add_argument("--digits", type=int, default=None, help="use the first N digits only")
    parser.add_argument("--out", default=str(OUT_DIR / "msn_init_information.csv"))
    args = parser.parse_args(argv)

    screens = {
        "digits": (DigitsDataset(n=args.digits), "digits (scikit-learn)", None),
    }
    bray = load_dataset("synthetic-bray", size=args.size, seed=0)
    screens["synthetic-bray"] = (
        bray,
        f"synthetic-bray-{args.size}",
        bray.manifest["config"]["version"],
    )
    rows = []
    for pooling in args.poolings:
        for (name, pairing), model in PAIRINGS.items():
            dataset, label, version = screens[name]
            for seed in args.seeds:
                m = measure(
                    dataset,
                    model,
                    pooling=pooling,
                    seed=seed,
                    batches=args.batches,
                    preset=args.preset,
                )
                rows.append(
                    {
                        "dataset": label,
                        "simulator_version": version,
                        "pairing": pairing,
                        "model": model,
                        "preset": args.preset,
                        "pooling": pooling,
                        "seed": seed,
                        "batches": args.batches,
                        "batch_size": m["batch_size"],
                        "num_prototypes": m["num_prototypes"],
                        "ce_own_over_log_k": round(m["ce_own"], 4),
                        "ce_shuffled_over_log_k": round(m["ce_shuffled"], 4),
                        "info_over_log_k": round(m["info"], 4),
                        "info_ci_low": round(m["info"] - m["info_half"], 4),
                        "info_ci_high": round(m["info"] + m["info_half"], 4),
                        "argmax_agreement": round(m["agreement"], 4),
                        "argmax_agreement_shuffled": round(m["agreement_shuffled"], 4),
                        "chance": round(1 / m["num_prototypes"], 4),
                        "target_max_prob": round(m["target_max_prob"], 4),
                        "provenance": "measured, synthetic" if version else "measured, digits",
                    }
                )
                print(
                    f"{label:22s} {pairing:11s} {pooling:4s} seed {seed}  info "
                    f"{m['info']:+.4f} ± {m['info_half']:.4f} (x log K)  agree "
                    f"{m['agreement']:.3f} (shuffled {m['agreement_shuffled']:.3f}, chance "
                    f"{1 / m['num_prototypes']:.3f})  target max p {m['target_max_prob']:.3f}",
                    flush=True,
                )
                write_rows(rows, args.out)


if __name__ == "__main__":
    main()
