"""Channels are matched BY NAME between datasets and models (docs/training.md), never by position.

Stain aliases collapse to canonical names (Hoechst -> DNA, ConA -> ER, Phalloidin -> Actin,
Syto14 -> RNA, MitoTracker -> Mito, WGA -> Golgi). The one real mismatch between the two
benchmark datasets is explicit and configurable: Bray's AGP channel images actin, Golgi and
plasma membrane together (phalloidin + WGA), while RxRx3 separates Actin and Golgi. By
default a Bray-channel model reading RxRx3 data gets ``AGP := mean(Actin, Golgi)`` and an
RxRx3-channel model reading Bray data gets ``Actin := AGP`` and ``Golgi := AGP``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cellbench.errors import InputError

ALIASES: dict[str, str] = {
    "dna": "DNA",
    "hoechst": "DNA",
    "dapi": "DNA",
    "nucleus": "DNA",
    "er": "ER",
    "cona": "ER",
    "concanavalin": "ER",
    "rna": "RNA",
    "syto14": "RNA",
    "syto": "RNA",
    "agp": "AGP",
    "mito": "Mito",
    "mitotracker": "Mito",
    "mitochondria": "Mito",
    "actin": "Actin",
    "phalloidin": "Actin",
    "golgi": "Golgi",
    "wga": "Golgi",
    "membrane": "Golgi",
}

#: target channel -> source channels averaged to make it, when the target is absent.
DEFAULT_DERIVED: dict[str, tuple[str, ...]] = {
    "AGP": ("Actin", "Golgi"),
    "Actin": ("AGP",),
    "Golgi": ("AGP",),
}


def canonical_name(name: str) -> str:
    """The canonical channel name of ``name`` (case-insensitive aliases; unknown kept as is)."""
    return ALIASES.get(str(name).strip().lower(), str(name).strip())


def channel_plan(
    source: Sequence[str], target: Sequence[str], derived: Mapping[str, Sequence[str]] | None = None
) -> list[tuple[int, ...]]:
    """For each ``target`` channel, the indices of the ``source`` channels averaged to make it.

    ``derived`` overrides :data:`DEFAULT_DERIVED` (pass ``{}`` to forbid any substitution).
    A target that is neither present nor derivable raises an error naming the fix.
    """
    rules = (
        DEFAULT_DERIVED
        if derived is None
        else {canonical_name(k): tuple(v) for k, v in derived.items()}
    )
    index = {canonical_name(c): i for i, c in enumerate(source)}
    plan: list[tuple[int, ...]] = []
    for name in target:
        cname = canonical_name(name)
        if cname in index:
            plan.append((index[cname],))
            continue
        parts = [canonical_name(p) for p in rules.get(cname, ())]
        if parts and all(p in index for p in parts):
            plan.append(tuple(index[p] for p in parts))
            continue
        raise InputError(
            f"channel {name!r} is needed but the data has channels {list(source)} and no rule "
            f"derives it; pass a mapping such as derived={{'{name}': ('<channel>', ...)}} "
            "(the target is the mean of the listed channels) or use data that has it"
        )
    return plan


def map_channels(
    images: np.ndarray,
    source: Sequence[str],
    target: Sequence[str],
    derived: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """Reorder/derive channels of ``images`` (N, C, H, W) from ``source`` names to ``target``."""
    plan = channel_plan(source, target, derived)
    out = []
    for idx in plan:
        if len(idx) == 1:
            out.append(images[:, idx[0]])
        else:
            mean = images[:, list(idx)].astype(np.float32).mean(axis=1)
            out.append(
                np.rint(mean).astype(images.dtype)
                if images.dtype == np.uint8
                else mean.astype(images.dtype)
            )
    return np.stack(out, axis=1)
