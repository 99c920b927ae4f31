"""Per-step schedules of the MSN recipe (Assran et al. 2022; the CWA-MSN paper,
section 3.4; docs/training.md).

* learning rate: linear warm-up from 0 to ``base`` over ``warmup`` steps, then cosine to ``final``;
* weight decay: cosine from ``start`` (0.04) to ``end`` (0.4);
* EMA momentum: linear from ``start`` (0.996) to ``end`` (1.0).

Each is a pure function of the step, so a resumed run sees exactly the values an
uninterrupted run saw.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total: int, base: float, warmup: int = 0, final: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based) of a ``total``-step run."""
    if total <= 0:
        raise ValueError("total steps must be positive")
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return final + 0.5 * (base - final) * (1.0 + math.cos(math.pi * progress))


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Cosine interpolation from ``start`` (step 0) to ``end`` (last step)."""
    progress = min(max(step, 0) / max(total - 1, 1), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def linear(step: int, total: int, start: float, end: float) -> float:
    """Linear interpolation from ``start`` (step 0) to ``end`` (last step)."""
    progress = min(max(step, 0) / max(total - 1, 1), 1.0)
    return start + (end - start) * progress
