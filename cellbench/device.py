"""Which torch device a run uses (checked before any work, with a fix in the message), and
which process of how many it is (:func:`dist_info`, the one probe of DDP every layer asks)."""

from __future__ import annotations

import os

from cellbench.errors import InputError


def dist_info() -> tuple[int, int, bool]:
    """(rank, world size, grouped) of this process.

    With an initialised ``torch.distributed`` process group (``grouped`` True): its rank and
    size. Without one: the launcher's ``RANK`` and ``WORLD_SIZE`` (``torchrun`` sets them; 0 and
    1 for a plain process), so a caller can share work by rank or initialise the group itself.
    """
    import torch.distributed as dist  # torch is heavy: imported when a run asks, not at import

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), True
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), False


def check_device(device: str) -> str:
    """``device`` ("cpu", "cuda", "cuda:N", "mps") if this machine has it; else an
    :class:`InputError` naming the devices to use instead."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown --device {device!r}; use cpu, cuda or cuda:N.") from None
    if parsed.type == "cpu":
        return device
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"--device {device}: CUDA is not available on this machine; use --device cpu."
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise InputError(
                f"--device {device}: this machine has {count} CUDA device(s); "
                f"use cuda:0..cuda:{count - 1}."
            )
        return device
    if parsed.type == "mps" and torch.backends.mps.is_available():
        return device
    raise InputError(f"--device {device}: not available here; use cpu or cuda.")
