"""Representation health: is a training run learning, collapsing, or memorising wells?

A small MSN trained on a CPU can sit in a collapsed state (constant CE and
me-max, few prototypes used) while its loss looks fine, and a single-well objective learns to
recognise wells. These cheap diagnostics are logged during training and stored with results:

* :func:`well_shortcut_rate` - fraction of sites whose nearest neighbour (cosine, itself
  excluded) is another site of the same well (high = the embedding recognises wells);
* :func:`effective_rank` - Roy & Vetterli (2007) effective rank: exp of the Shannon entropy of
  the normalised singular values of the centred embeddings (1 = collapsed to a line);
* :func:`prototype_usage` - how many prototypes are the argmax of some sample, and the entropy
  of the mean assignment;
* :func:`pair_identification` - top-1 accuracy of matching each anchor view to its own
  partner among a batch of pairs (the task a pair objective trains on; chance = 1 / batch):
  how much per-view signal a training screen offers, before any training;
* :func:`frozen` - a loss component that has stopped moving over a window;
* :func:`uniform_collapse_warning` - MSN's CE stuck at log K (uniform assignments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def well_shortcut_rate(embeddings, well_ids: Sequence) -> float:
    """Fraction of sites whose cosine nearest neighbour (excluding itself) shares their well.

    Sites whose well has no other site cannot score a hit and are excluded from the fraction.
    Ties are broken by the lowest index.
    """
    x = np.asarray(_numpy(embeddings), dtype=np.float64)
    wells = np.asarray(well_ids)
    if x.ndim != 2 or x.shape[0] != wells.shape[0]:
        raise ValueError("embeddings must be (n_sites, dim) with one well id per site")
    if x.shape[0] < 2:
        raise ValueError("need at least two sites")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    _, codes, counts = np.unique(wells, return_inverse=True, return_counts=True)
    eligible = counts[codes] > 1
    if not eligible.any():
        raise ValueError("no well has two or more sites; the shortcut rate is undefined")
    hits = codes[nearest] == codes
    return float(hits[eligible].mean())


def effective_rank(embeddings) -> float:
    """Roy & Vetterli effective rank of the centred (N, D) embeddings, in [1, min(N, D)]."""
    x = np.asarray(_numpy(embeddings), dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    s = np.linalg.svd(x, compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s / total
    p = p[p > 0]
    return float(math.exp(-(p * np.log(p)).sum()))


def prototype_usage(probs) -> dict[str, float]:
    """Prototype usage of (N, K) assignment probabilities.

    ``fraction_used``: fraction of the K prototypes that are the argmax of at least one row;
    ``usage_entropy``: entropy (nats) of the mean assignment, ``max_entropy`` = log K.
    """
    p = np.asarray(_numpy(probs), dtype=np.float64)
    k = p.shape[1]
    used = np.unique(p.argmax(axis=1)).size
    mean = p.mean(axis=0)
    mean = mean[mean > 0]
    return {
        "fraction_used": used / k,
        "usage_entropy": float(-(mean * np.log(mean)).sum()),
        "max_entropy": math.log(k),
    }


def pair_identification(anchor, target, standardize: bool = True) -> float:
    """Fraction of anchors whose nearest target (Euclidean, after z-scoring each feature over
    the batch) is their own partner (row ``i`` of ``target``). Chance is ``1 / len(anchor)``.

    Applied to hand-crafted features of the pairs a trainer draws, it measures whether a batch
    of cross-well pairs carries any per-view signal to learn from (``python -m experiments.pair_signal``).
    """
    a, t = _numpy(anchor).astype(np.float64), _numpy(target).astype(np.float64)
    if a.shape != t.shape or a.ndim != 2 or len(a) < 2:
        raise ValueError("anchor and target must be (n >= 2, d) arrays of the same shape")
    if standardize:
        both = np.concatenate([a, t])
        mu, sd = both.mean(0), both.std(0)
        sd[sd == 0] = 1.0
        a, t = (a - mu) / sd, (t - mu) / sd
    d2 = (a * a).sum(1)[:, None] - 2 * a @ t.T + (t * t).sum(1)[None, :]
    return float(np.mean(np.argmin(d2, axis=1) == np.arange(len(a))))


def frozen(values: Sequence[float], window: int = 20, tol: float = 1e-4) -> bool:
    """True when the last ``window`` values all lie within ``tol`` (relative) of each other."""
    if len(values) < window:
        return False
    tail = np.asarray(values[-window:], dtype=np.float64)
    scale = max(float(np.abs(tail).max()), 1e-12)
    return bool((tail.max() - tail.min()) / scale < tol)


def frozen_loss_warning(history: dict[str, Sequence[float]], window: int = 20, tol: float = 1e-4):
    """A warning message when CE and me-max have both stopped moving (MSN collapse), else None."""
    if "ce" not in history or "me_max" not in history:
        return None
    if frozen(history["ce"], window, tol) and frozen(history["me_max"], window, tol):
        return (
            f"MSN loss frozen over the last {window} logged steps "
            f"(CE {history['ce'][-1]:.4f}, me-max {history['me_max'][-1]:.4f}): the "
            "representation has collapsed to a fixed point; check prototype usage and rank."
        )
    return None


def uniform_collapse_warning(ce_over_log_k: Sequence[float], window: int = 20, tol: float = 0.005):
    """A warning when MSN's anchor probabilities sit at the uniform fixed point.

    ``ce_over_log_k``: CE / log K per logged step. CE within ``tol`` of log K over the last
    ``window`` values means anchors (and so targets) are near uniform: no prototype is
    predicted - the state a small-batch MSN with Sinkhorn falls into on the synthetic screens.
    """
    if len(ce_over_log_k) < window:
        return None
    tail = np.asarray(ce_over_log_k[-window:], dtype=np.float64)
    if (np.abs(tail - 1.0) < tol).all():
        return (
            f"MSN near the uniform fixed point over the last {window} logged steps (CE = "
            f"{tail[-1]:.3f} log K): prototype assignments carry no information yet; train "
            "longer, raise the learning rate, or use fewer prototypes / no Sinkhorn at this batch size."
        )
    return None


def _numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x
