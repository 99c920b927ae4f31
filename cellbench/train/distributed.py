"""DDP for training: the process group, each rank's share of a batch, and the collectives.

Whether processes are grouped, and which one this is, is asked of
:func:`cellbench.device.dist_info` only (the embedder asks it too). Under ``torchrun`` the loop
initialises the group (gloo on CPU, NCCL on GPU), each rank takes its contiguous slice of the
global batch ``batch_at(step)``, and rank 0's decision to stop is broadcast. The methods' losses
reduce over the global batch with :func:`all_reduce_sum_` (MSN's Sinkhorn),
:func:`mean_over_ranks` (MSN's mean prediction) and :func:`gather_rows` (InfoNCE's negatives).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cellbench.device import dist_info
from cellbench.errors import CellbenchError
from cellbench.train.method import StepInputs

#: why rank 0 stops a run early (None: it does not); broadcast as the index in this tuple
STOP_REASONS = (None, "time_budget", "early_stop")


def init_process_group(device: str) -> tuple[int, int, bool]:
    """(world size, rank, initialised here): the group's, after initialising it under
    ``torchrun`` when no one has (a plain process: (1, 0, False))."""
    rank, world, grouped = dist_info()
    if grouped or world <= 1:
        return (world, rank, False) if grouped else (1, 0, False)
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    rank, world, _ = dist_info()
    return world, rank, True


def destroy_process_group() -> None:
    dist.destroy_process_group()


def group_world() -> int:
    """The number of processes a collective spans: the group's size, 1 without a group."""
    _, world, grouped = dist_info()
    return world if grouped else 1


def wrap(method: nn.Module, world: int, device: str) -> nn.Module:
    """``method`` itself in one process; under DDP, wrapped to average gradients across ranks."""
    if world <= 1:
        return method
    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(method, device_ids=ids)


def slice_batch(batch: Any, rank: int, world: int, device: str) -> StepInputs:
    """Rank ``rank``'s contiguous ``1/world`` of a ``PairBatch``, as tensors on ``device``."""

    def take(x: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x))
        n = t.shape[0]
        if n % world:
            raise CellbenchError(
                f"the batch size {n} is not divisible by the {world} processes; "
                "choose --batch-size as a multiple of the number of processes."
            )
        per = n // world
        return t[rank * per : (rank + 1) * per].to(device)

    return StepInputs(
        anchor=take(batch.anchor),
        target=take(batch.target),
        perturbation=take(batch.perturbation_index).long(),
        anchor_well=take(batch.anchor_well_index).long(),
        target_well=take(batch.target_well_index).long(),
    )


def agree(reason: str | None, world: int, device: str) -> str | None:
    """Rank 0 decides whether to stop (a ``STOP_REASONS`` entry); every rank follows under DDP."""
    if world > 1:
        code = torch.tensor([STOP_REASONS.index(reason)], device=device)
        dist.broadcast(code, src=0)
        reason = STOP_REASONS[int(code.item())]
    return reason


def all_reduce_sum_(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the group, in place (no gradient); ``x`` itself in one process."""
    if group_world() > 1:
        dist.all_reduce(x)
    return x


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the group, differentiable; ``x`` itself in one process."""
    world = group_world()
    if world <= 1:
        return x
    # only under DDP: torch.distributed.nn is missing from builds without distributed support
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x) / world


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` of every rank, in rank order, differentiable; ``x`` in one process."""
    if group_world() <= 1:
        return x
    # only under DDP: torch.distributed.nn is missing from builds without distributed support
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x))
