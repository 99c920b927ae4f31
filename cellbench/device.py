"""Which torch device a run uses: checked before any work, with a fix in the message."""

from __future__ import annotations

from cellbench.errors import InputError


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
