"""The one training loop every method shares (MSN, CropMAE, ViT-WSL, InfoNCE).

What it guarantees:

* **Determinism** - weights are initialised from ``seed``; the pairs of step ``s`` are
  ``PairSampler.batch_at(s)`` (a pure function of (seed, s)) and every augmentation draws from
  a generator seeded with (seed, s, rank). Same seed -> same weights, bit for bit, on CPU.
* **Resume** - every ``checkpoint_every`` steps, ``checkpoint.pt`` (model incl. EMA target,
  optimiser, step, RNG state, logs) is written atomically; ``resume=True`` continues from it and
  ends with the same weights as an uninterrupted run (schedules are functions of the step).
* **Schedules** - AdamW (no weight decay on biases, norms, prototypes), linear warm-up + cosine
  lr, cosine weight decay, linear EMA momentum, gradient-norm clipping (of every trainable
  parameter but the method's ``no_grad_clip()``: MSN's prototypes). The schedules span
  ``schedule_horizon`` times the run's steps (default 1.0; the official MSN code: 1.25).
* **DDP** - under ``torchrun`` (gloo on CPU, NCCL on GPU) each rank takes its contiguous slice
  of the global batch ``batch_at(step)``; gradients are averaged by DistributedDataParallel
  (:mod:`cellbench.train.distributed`).
* **No host sync per step** - on a GPU the loss, its finiteness and the method's statistics
  stay on the device between logged steps: they are read back only to log, to check health,
  before a file is written and at the end (a non-finite loss is still reported with its
  step). On the CPU each step is checked as it ends.
* **Budget** - ``time_budget_s`` stops at a wall-clock budget (a checkpoint and the model are
  written; the schedule is not shortened, so ``resume`` can continue the same run).
* **Health** - every ``health_every`` steps the embedding of a fixed probe set of sites is
  scored for the well-shortcut rate and effective rank (:mod:`cellbench.train.health`), and
  the method's own checks of its logs (MSN: a frozen loss) are reported as warnings.

Outputs in ``out_dir`` (:mod:`cellbench.train.checkpoint`): ``checkpoint.pt`` (to resume;
always the last weights), ``model.pt`` (what encoders load), ``train_log.json`` (losses,
schedules, health, warnings, timings). The ``.pt`` files are byte-reproducible (same seed, same
SHA-256): the wall-clock times a resume needs are kept beside the checkpoint in
``checkpoint_times.json``. With
``early_stop_patience`` and a method that validates on held-out wells (ViT-WSL),
``best_heldout.pt`` holds the weights of the best held-out loss so far; ``model.pt`` is written
from it (its step is ``restored_best_step`` in the log), so early stopping keeps the best weights,
not those ``patience`` checks later (:mod:`cellbench.train.heldout`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellbench.data.sampling import PairSampler
from cellbench.device import check_device
from cellbench.errors import CellbenchError
from cellbench.io import write_json_atomic
from cellbench.progress import ProgressBar
from cellbench.train import distributed, schedules
from cellbench.train.checkpoint import (
    CHECKPOINT,
    LOG,
    MODEL,
    load_checkpoint,
    restore_times,
    run_meta,
    save_checkpoint,
    save_model,
)
from cellbench.train.distributed import agree, init_process_group, slice_batch
from cellbench.train.ema import ema_update
from cellbench.train.health import HealthProbe
from cellbench.train.heldout import BEST, early_stop, heldout_set, restore_best, save_best
from cellbench.train.method import Method, SamplerOptions
from cellbench.train.methods import build_method, check_trainable, train_spec
from cellbench.train.presets import TrainConfig

__all__ = ["BEST", "CHECKPOINT", "LOG", "MODEL", "TrainResult", "train"]


@dataclass
class TrainResult:
    model_path: Path | None  # None when the run was stopped before writing the model
    checkpoint_path: Path
    steps_done: int
    total_steps: int
    stopped: str  # "completed" | "time_budget" | "early_stop" | "stop_at"
    log: dict[str, Any] = field(default_factory=dict)
    method: Any = None  # the trained Method (in memory, on every rank; rank 0: model.pt's weights)


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The augmentation RNG of one step of one rank: a pure function of (seed, step, rank)."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


# ------------------------------------------------------------------ optimiser
def param_groups(method: Method) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weights; none on biases, norms (1-D) and prototypes."""
    exempt = method.no_weight_decay()
    decay, no_decay = [], []
    for name, p in method.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name in exempt or name.split(".")[-1] in exempt:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "apply_wd": True},
        {"params": no_decay, "apply_wd": False, "weight_decay": 0.0},
    ]


def total_steps(config: TrainConfig, n_images: int) -> int:
    if config.max_steps is not None:
        return int(config.max_steps)
    return max(int(math.ceil(config.epochs * n_images / config.batch_size)), 1)


def schedule_steps(config: TrainConfig, n_total: int) -> int:
    """The step count the lr, weight-decay and EMA schedules span: ``schedule_horizon`` times
    the run's steps (1.0: they end with the run; the official MSN code uses 1.25, so its EMA
    momentum ends near 0.9992 rather than 1.0 and its lr and weight decay stop short of their
    final values)."""
    if config.schedule_horizon < 1.0:
        raise CellbenchError(
            f"schedule_horizon must be >= 1.0 (got {config.schedule_horizon}); the schedules "
            "cannot end before the run does."
        )
    return max(int(round(config.schedule_horizon * n_total)), n_total)


def clipped_parameters(method: Method) -> list[torch.nn.Parameter]:
    """The trainable parameters whose gradient norm is clipped: all but ``no_grad_clip()``."""
    exempt = method.no_grad_clip()
    return [
        p
        for name, p in method.named_parameters()
        if p.requires_grad and name not in exempt and name.split(".")[-1] not in exempt
    ]


def warmup_steps(config: TrainConfig, n_images: int) -> int:
    if config.warmup_steps is not None:
        return int(config.warmup_steps)
    return int(round(config.warmup_epochs * n_images / config.batch_size))


# ------------------------------------------------------------------ the loop
def train(
    model_name: str,
    dataset: Any,
    config: TrainConfig,
    *,
    seed: int = 0,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    device: str = "cpu",
    stop_at: int | None = None,
    health: bool = True,
    sampler: Any | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    recall_probe: Callable[[Any], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``model_name`` on ``dataset`` with ``config``; see the module docstring.

    ``stop_at`` stops after that many steps as if the process were killed (tests of resume:
    nothing beyond the last periodic checkpoint is written). ``callback(step, record)`` is
    called on rank 0 with each logged record (e.g. a probe-screen recall).
    ``sampler`` replaces the default ``PairSampler`` (anything with ``batch_at(step)`` and
    ``n_perturbations``; it must be a pure function of the step for resume to hold).
    ``recall_probe(method) -> {"probe_recall": ...}`` (:mod:`cellbench.train.probe`) is scored
    at step 0 and at every health check, on rank 0.
    """
    check_trainable(model_name)
    check_device(device)
    out_dir = Path(out_dir)
    world, rank, own_group = init_process_group(device)
    main = rank == 0
    try:
        torch.manual_seed(seed)
        # the method decides how pairs are drawn
        opts = build_method_options(model_name, config)
        if sampler is None:
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
            model_name, config, len(dataset.channels), int(getattr(sampler, "n_perturbations", 0))
        ).to(device)
        method.train()
        groups = param_groups(method)
        optimizer = torch.optim.AdamW(
            groups, lr=config.lr, betas=(config.betas[0], config.betas[1])
        )
        n_images = int(dataset.sites.height)
        n_total = total_steps(config, n_images)
        n_warm = warmup_steps(config, n_images)
        n_sched = schedule_steps(config, n_total)

        history: list[dict[str, Any]] = []
        health_log: list[dict[str, Any]] = []
        warnings: list[str] = []
        start, elapsed_before = 0, 0.0
        ckpt_path = out_dir / CHECKPOINT
        if resume and ckpt_path.exists():
            state = load_checkpoint(ckpt_path, model_name, seed, config)
            method.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            start = int(state["step"])
            history, elapsed_before = restore_times(ckpt_path, state)
            health_log = list(state["health"])
            warnings = list(state["warnings"])
        best_path = out_dir / BEST
        if main and start == 0:  # a fresh run: the best weights of an earlier run do not count
            best_path.unlink(missing_ok=True)

        net = distributed.wrap(method, world, device)
        probe = HealthProbe(dataset, seed, crop=config.crop_size) if (health and main) else None
        heldout = (
            heldout_set(dataset, sampler, seed) if (main and hasattr(method, "validate")) else None
        )
        keep_best = heldout is not None and bool(config.early_stop_patience)
        params = clipped_parameters(method)
        ema_pairs = method.ema_pairs()
        bar = ProgressBar(
            f"train {model_name}",
            n_total,
            enabled=progress and main,
            completed=start,
            fields={"loss": "loss {}", "ips": "{} img/s"},
        )
        t_bar = time.perf_counter()
        finite = _FiniteLoss(model_name, every_step=torch.device(device).type == "cpu")
        t0 = time.perf_counter()
        stopped, step = "completed", start
        if early_stop(health_log, config.early_stop_patience):  # resumed a run that had ended
            stopped = "early_stop"
        last_ckpt = start

        def save() -> None:
            finite.check()  # never write the weights of a diverged run
            if main:
                elapsed = elapsed_before + time.perf_counter() - t0
                meta = run_meta(model_name, seed, config, step, dataset, sampler)
                save_checkpoint(
                    ckpt_path, meta, method, optimizer, history, health_log, warnings, elapsed
                )

        def representation_health(at: int) -> dict[str, Any]:
            """The probe-set health metrics and the probe-screen recall of the current weights."""
            rec: dict[str, Any] = {"step": at}
            if probe is not None:
                rec.update(probe(method))
            if recall_probe is not None:
                rec.update(recall_probe(method))
            return rec

        if main and recall_probe is not None and start == 0:  # the untrained network's level
            health_log.append(representation_health(0))
        while step < n_total and stopped == "completed":
            lr = schedules.warmup_cosine(step, n_sched, config.lr, n_warm, config.min_lr)
            wd = schedules.cosine(step, n_sched, config.weight_decay, config.final_weight_decay)
            for group in optimizer.param_groups:
                group["lr"] = lr
                if group["apply_wd"]:
                    group["weight_decay"] = wd
            inputs = slice_batch(sampler.batch_at(step), rank, world, device)
            loss, stats = net(inputs, step_generator(seed, step, rank))
            finite.observe(loss, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = None
            if config.clip_grad:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
            optimizer.step()
            momentum = schedules.linear(step, n_sched, config.ema_start, config.ema_end)
            for target, online in ema_pairs:
                ema_update(target, online, momentum)
            step += 1

            log_step = main and (step % config.log_every == 0 or step == n_total)
            health_step = main and (step % config.health_every == 0 or step == n_total)
            values: dict[str, float] = {}
            if log_step or health_step:  # the one read-back from the device
                finite.check()
                values = method.log_values(stats)
            if log_step:
                record = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "lr": lr,
                    "wd": wd,
                    "ema": momentum,
                    "time_s": elapsed_before + time.perf_counter() - t0,
                }
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                record.update(values)
                history.append(record)
                if callback is not None:
                    callback(step, record)
                _record_warnings(method.health_warnings(history), history, warnings, bar)
            reason = None
            if health_step:
                rec = representation_health(step)
                if heldout is not None:
                    rec.update(method.validate(*heldout))  # type: ignore[operator]
                for key in method.health_keys:
                    if key in values:
                        rec[key] = values[key]
                health_log.append(rec)
                if keep_best:
                    finite.check()
                    save_best(best_path, method, health_log)
                if callback is not None:
                    callback(step, {"health": rec})
                if early_stop(health_log, config.early_stop_patience):
                    reason = "early_stop"
            if finite.every_step or log_step:  # on a GPU the bar's loss moves at logged steps
                ips = (step - start) * config.batch_size / max(time.perf_counter() - t_bar, 1e-9)
                bar.update(step, loss=f"{float(loss.detach()):.4f}", ips=f"{ips:.0f}")
            else:
                bar.update(step)
            if stop_at is not None and step >= stop_at:
                stopped = "stop_at"
                break
            if step % config.checkpoint_every == 0 and step < n_total:
                save()
                last_ckpt = step
            if main and reason is None and config.time_budget_s is not None:
                if time.perf_counter() - t0 >= config.time_budget_s:
                    reason = "time_budget"
            # a stop comes from a budget or a health check only: agree then, not at every step
            if (
                config.time_budget_s is not None
                or step % config.health_every == 0
                or step == n_total
            ):
                reason = agree(reason, world, device)
            if reason is not None:
                stopped = reason
                break
        bar.close()
        finite.check()

        log = {
            "model": model_name,
            "seed": seed,
            "config": config.to_dict(),
            "steps_done": step,
            "total_steps": n_total,
            "warmup_steps": n_warm,
            "stopped": stopped,
            "world_size": world,
            "history": history,
            "health": health_log,
            "warnings": warnings,
            "elapsed_s": elapsed_before + time.perf_counter() - t0,
        }
        model_path = None
        if stopped != "stop_at":
            if step != last_ckpt or not ckpt_path.exists():  # (a 0-step run has none yet)
                save()
            if main:
                best_step = (
                    restore_best(best_path, method, health_log, warnings) if keep_best else None
                )
                if best_step is not None:
                    log["restored_best_step"] = best_step
                model_path = out_dir / MODEL
                meta = run_meta(
                    model_name,
                    seed,
                    config,
                    step if best_step is None else best_step,
                    dataset,
                    sampler,
                )
                save_model(model_path, meta, method)
                write_json_atomic(out_dir / LOG, log)
        return TrainResult(model_path, ckpt_path, step, n_total, stopped, log, method)
    finally:
        if own_group:
            distributed.destroy_process_group()


def build_method_options(model_name: str, config: TrainConfig) -> SamplerOptions:
    """The sampler options of a method, without building its network: from its model card
    (``[recipe] sampling``; a supervised trainer, ViT-WSL, holds out wells to stop early)."""
    spec = train_spec(model_name)
    if spec.supervised:
        return SamplerOptions(cross_well=False, holdout_fraction=config.holdout_fraction)
    return SamplerOptions(cross_well=spec.cross_well)


class _FiniteLoss:
    """Fails the run when the loss is not finite, naming the first such step.

    ``every_step`` (CPU): checked as each step ends. Otherwise (GPU) the first bad step and its
    loss are kept on the device and :meth:`check` reads them back when the loop syncs anyway.
    """

    def __init__(self, model_name: str, every_step: bool) -> None:
        self.model_name = model_name
        self.every_step = every_step
        self._first: torch.Tensor | None = None  # the first bad step, -1 while none
        self._value: torch.Tensor | None = None  # its loss

    def observe(self, loss: torch.Tensor, step: int) -> None:
        if self.every_step:
            if not torch.isfinite(loss):
                raise self._error(float(loss), step)
            return
        loss = loss.detach()
        if self._first is None or self._value is None:
            self._first = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._value = torch.zeros((), dtype=loss.dtype, device=loss.device)
        new = ~torch.isfinite(loss) & (self._first < 0)
        self._first = torch.where(new, step, self._first)
        self._value = torch.where(new, loss, self._value)

    def check(self) -> None:
        if self._first is not None and self._value is not None and int(self._first) >= 0:
            raise self._error(float(self._value), int(self._first))

    def _error(self, value: float, step: int) -> CellbenchError:
        return CellbenchError(
            f"{self.model_name}: the loss became {value} at step {step}; lower the "
            "learning rate (--set lr=...) or check the input images for NaN."
        )


def _record_warnings(
    found: dict[str, str], history: list[dict], warnings: list[str], bar: ProgressBar
) -> None:
    """Add each of the method's warnings once (by its phrase), naming the step; show it."""
    for phrase, message in found.items():
        if not any(phrase in w for w in warnings):
            warnings.append(f"step {history[-1]['step']}: " + message)
            bar.warn(message)
