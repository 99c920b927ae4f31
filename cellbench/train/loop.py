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
  of the global batch ``batch_at(step)``; gradients are averaged by DistributedDataParallel.
* **Budget** - ``time_budget_s`` stops at a wall-clock budget (a checkpoint and the model are
  written; the schedule is not shortened, so ``resume`` can continue the same run).
* **Health** - every ``health_every`` steps the embedding of a fixed probe set of sites is
  scored for the well-shortcut rate and effective rank (:mod:`cellbench.metrics.health`), and
  a frozen MSN loss (constant CE and me-max) is reported as a warning.

Outputs in ``out_dir``: ``checkpoint.pt`` (to resume; always the last weights), ``model.pt``
(what encoders load), ``train_log.json`` (losses, schedules, health, warnings, timings). The
``.pt`` files are byte-reproducible (same seed, same SHA-256): the wall-clock times a resume
needs are kept beside the checkpoint in ``checkpoint_times.json``. With
``early_stop_patience`` and a method that validates on held-out wells (ViT-WSL),
``best_heldout.pt`` holds the weights of the best held-out loss so far; ``model.pt`` is written
from it (its step is ``restored_best_step`` in the log), so early stopping keeps the best weights,
not those ``patience`` checks later.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellbench.errors import CellbenchError
from cellbench.io import load_torch_weights, torch_save_atomic, write_json_atomic
from cellbench.train import schedules
from cellbench.train.ema import ema_update
from cellbench.train.method import Method, StepInputs
from cellbench.train.presets import TrainConfig

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOG = "train_log.json"
TIMES = "checkpoint_times.json"  # the wall-clock times of checkpoint.pt (not reproducible)
BEST = "best_heldout.pt"  # the weights at the best held-out loss so far (early stopping)
FORMAT = 1
_CHECKPOINT_KEYS = frozenset(
    {
        "model",
        "seed",
        "config",
        "step",
        "state_dict",
        "optimizer",
        "rng",
        "history",
        "health",
        "warnings",
    }
)
# fields that may change between a run and its resumption (they do not change the maths)
_RESUMABLE_CHANGES = {"time_budget_s", "checkpoint_every", "health_every", "log_every"}


@dataclass
class TrainResult:
    model_path: Path | None  # None when the run was stopped before writing the model
    checkpoint_path: Path
    steps_done: int
    total_steps: int
    stopped: str  # "completed" | "time_budget" | "early_stop" | "stop_at"
    log: dict[str, Any] = field(default_factory=dict)
    method: Any = None  # the trained Method (in memory, on every rank; rank 0: model.pt's weights)


# ------------------------------------------------------------------ distributed helpers
def _dist_env(device: str) -> tuple[int, int, bool]:
    """(world size, rank, initialised here) - initialise the process group under torchrun."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, False
    if dist.is_initialized():
        return dist.get_world_size(), dist.get_rank(), False
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return dist.get_world_size(), dist.get_rank(), True


def step_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The augmentation RNG of one step of one rank: a pure function of (seed, step, rank)."""
    state = np.random.SeedSequence([seed, step, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _slice_batch(batch: Any, rank: int, world: int, device: str) -> StepInputs:
    def take(x):
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


# ------------------------------------------------------------------ health probe
class HealthProbe:
    """A fixed set of sites (two or more per well) embedded every ``health_every`` steps."""

    def __init__(self, dataset: Any, seed: int, n_sites: int = 192, crop: int = 32) -> None:
        import polars as pl

        sites = dataset.sites.with_row_index("_row")
        counts = sites.group_by("well_id").len()
        multi = counts.filter(pl.col("len") >= 2)["well_id"].sort()
        rng = np.random.default_rng([seed, 7])
        wells = multi.to_numpy()
        rng.shuffle(wells)
        chosen = sites.filter(pl.col("well_id").is_in(list(wells[: max(n_sites // 2, 1)])))
        chosen = chosen.sort("_row").head(n_sites)
        self.indices = chosen["_row"].to_numpy()
        self.well_ids = chosen["well_id"].to_numpy()
        self.crop = crop
        self._images = None
        self.dataset = dataset

    def images(self) -> torch.Tensor:
        from cellbench.train.views import center_crop, standardize

        if self._images is None:
            raw = torch.as_tensor(np.asarray(self.dataset.read_sites(self.indices)))
            x = standardize(raw)
            size = min(self.crop, *x.shape[-2:])
            self._images = center_crop(x, size)
        return self._images

    @torch.no_grad()
    def __call__(self, method: Method) -> dict[str, float]:
        from cellbench.metrics.health import effective_rank, well_shortcut_rate
        from cellbench.train.backbone import pool, tokens

        if len(self.indices) < 4:
            return {}
        backbone = method.embedding_backbone()
        was_training = backbone.training
        backbone.eval()
        x = self.images().to(next(backbone.parameters()).device)
        emb = pool(backbone, tokens(backbone, x), method.pooling).float().cpu().numpy()
        backbone.train(was_training)
        return {
            "well_shortcut_rate": well_shortcut_rate(emb, self.well_ids),
            "effective_rank": effective_rank(emb),
        }


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
    from cellbench.device import check_device
    from cellbench.train.methods import build_method, check_trainable

    check_trainable(model_name)
    check_device(device)
    out_dir = Path(out_dir)
    world, rank, own_group = _dist_env(device)
    main = rank == 0
    try:
        torch.manual_seed(seed)
        # the method decides how pairs are drawn
        opts = build_method_options(model_name, config)
        if sampler is None:
            from cellbench.data.sampling import PairSampler

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
        optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas))
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
            state = _load_checkpoint(ckpt_path, model_name, seed, config)
            method.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            start = int(state["step"])
            history, elapsed_before = _restore_times(ckpt_path, state)
            health_log = list(state["health"])
            warnings = list(state["warnings"])
        best_path = out_dir / BEST
        if main and start == 0:  # a fresh run: the best weights of an earlier run do not count
            best_path.unlink(missing_ok=True)

        net: torch.nn.Module = method
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(device).index] if device.startswith("cuda") else None
            net = DistributedDataParallel(method, device_ids=ids)

        probe = HealthProbe(dataset, seed, crop=config.crop_size) if (health and main) else None
        heldout = (
            _heldout_set(dataset, sampler, seed) if (main and hasattr(method, "validate")) else None
        )
        keep_best = heldout is not None and bool(config.early_stop_patience)
        params = clipped_parameters(method)
        ema_pairs = method.ema_pairs()
        bar = _Progress(n_total, start, model_name, enabled=progress and main)
        t0 = time.perf_counter()
        stopped, step = "completed", start
        if _early_stop(health_log, config.early_stop_patience):  # resumed a run that had ended
            stopped = "early_stop"
        last_ckpt = start

        def save() -> None:
            if main:
                elapsed = elapsed_before + time.perf_counter() - t0
                _save_checkpoint(
                    ckpt_path,
                    method,
                    optimizer,
                    model_name,
                    seed,
                    config,
                    step,
                    history,
                    health_log,
                    warnings,
                    elapsed,
                    dataset,
                    sampler,
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
            inputs = _slice_batch(sampler.batch_at(step), rank, world, device)
            loss, logs = net(inputs, step_generator(seed, step, rank))
            if not torch.isfinite(loss):
                raise CellbenchError(
                    f"{model_name}: the loss became {float(loss)} at step {step}; lower the "
                    "learning rate (--set lr=...) or check the input images for NaN."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = None
            if config.clip_grad:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.clip_grad))
            optimizer.step()
            momentum = schedules.linear(step, n_sched, config.ema_start, config.ema_end)
            for target, online in ema_pairs:
                ema_update(target, online, momentum)
            step += 1

            if main and (step % config.log_every == 0 or step == n_total):
                record = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "lr": lr,
                    "wd": wd,
                    "ema": momentum,
                    "time_s": elapsed_before + time.perf_counter() - t0,
                }
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm
                record.update(logs)
                history.append(record)
                if callback is not None:
                    callback(step, record)
                _check_frozen(history, warnings, bar)
            reason = None
            if main and (step % config.health_every == 0 or step == n_total):
                rec = representation_health(step)
                if heldout is not None:
                    rec.update(method.validate(*heldout))
                for key in ("proto_used", "proto_entropy", "ce", "me_max"):
                    if key in logs:
                        rec[key] = logs[key]
                health_log.append(rec)
                if keep_best:
                    _save_best(best_path, method, health_log)
                if callback is not None:
                    callback(step, {"health": rec})
                if _early_stop(health_log, config.early_stop_patience):
                    reason = "early_stop"
            bar.update(step, float(loss.detach()), config.batch_size)
            if stop_at is not None and step >= stop_at:
                stopped = "stop_at"
                break
            if step % config.checkpoint_every == 0 and step < n_total:
                save()
                last_ckpt = step
            if main and reason is None and config.time_budget_s is not None:
                if time.perf_counter() - t0 >= config.time_budget_s:
                    reason = "time_budget"
            reason = _agree(reason, world, device)
            if reason is not None:
                stopped = reason
                break
        bar.close()

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
                    _restore_best(best_path, method, health_log, warnings) if keep_best else None
                )
                if best_step is not None:
                    log["restored_best_step"] = best_step
                model_path = out_dir / MODEL
                _save_model(
                    model_path,
                    method,
                    model_name,
                    seed,
                    config,
                    step if best_step is None else best_step,
                    dataset,
                    sampler,
                )
                write_json_atomic(out_dir / LOG, log)
        return TrainResult(model_path, ckpt_path, step, n_total, stopped, log, method)
    finally:
        if own_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def build_method_options(model_name: str, config: TrainConfig):
    """The sampler options of a method, without building its network."""
    from cellbench.train.method import SamplerOptions

    if model_name == "vit-wsl":
        return SamplerOptions(cross_well=False, holdout_fraction=config.holdout_fraction)
    cross = model_name in ("cwa-msn", "cropmae-cross", "infonce-cross")
    return SamplerOptions(cross_well=cross)


_REASONS = (None, "time_budget", "early_stop")


def _agree(reason: str | None, world: int, device: str) -> str | None:
    """Rank 0 decides whether to stop (budget, early stop); every rank follows under DDP."""
    if world > 1:
        import torch.distributed as dist

        code = torch.tensor([_REASONS.index(reason)], device=device)
        dist.broadcast(code, src=0)
        reason = _REASONS[int(code.item())]
    return reason


def _heldout_checks(health_log: list[dict]) -> tuple[list[dict], int | None]:
    """The health checks that carry a held-out loss, and the index of the best among them
    (the earliest on ties); None when there are none."""
    checks = [h for h in health_log if "val_loss" in h]
    return checks, (int(np.argmin([h["val_loss"] for h in checks])) if checks else None)


def _early_stop(health_log: list[dict], patience: int | None) -> bool:
    """True when the held-out loss has not improved for ``patience`` health checks."""
    if not patience:
        return False
    checks, best = _heldout_checks(health_log)
    return len(checks) > patience and len(checks) - 1 - best >= patience


def _save_best(path: Path, method: Method, health_log: list[dict]) -> None:
    """Write the weights (and step) to ``path`` when the latest health check is the best so far."""
    checks, best = _heldout_checks(health_log)
    if checks and checks[best] is health_log[-1]:
        torch_save_atomic(
            path, {"step": int(health_log[-1]["step"]), "state_dict": method.state_dict()}
        )


def _restore_best(
    path: Path, method: Method, health_log: list[dict], warnings: list[str]
) -> int | None:
    """Load the weights of the best held-out loss from ``path`` into ``method``; their step, or
    None (and the last weights are kept) when there is no such file or it is not this run's best."""
    if not path.exists():
        return None
    state = load_torch_weights(
        path, what="best-weights file", fix="Delete it: model.pt keeps the last weights."
    )
    checks, best = _heldout_checks(health_log)
    best_step = int(checks[best]["step"]) if checks else None
    if int(state["step"]) != best_step:
        warnings.append(
            f"{path.name} is from step {state['step']}, not the best held-out step "
            f"{best_step}; model.pt keeps the last weights."
        )
        return None
    method.load_state_dict(state["state_dict"])
    return best_step


def _heldout_set(dataset: Any, sampler: Any, seed: int, max_sites: int = 256):
    """(uint8 images, labels) of up to ``max_sites`` sites of the sampler's held-out wells whose
    perturbation is a training class; None when nothing is held out."""
    wells = getattr(sampler, "heldout_wells", None)
    names = getattr(sampler, "perturbation_names", None)
    if wells is None or names is None or len(wells) == 0:
        return None
    from cellbench.data.sampling import perturbation_labels

    label_of = {n: i for i, n in enumerate(names)}
    well_label = perturbation_labels(dataset.wells)
    site_wells = dataset.sites["well_index"].to_numpy()
    rows, labels = [], []
    for row in np.flatnonzero(np.isin(site_wells, wells)):
        label = label_of.get(well_label[site_wells[row]])
        if label is not None:
            rows.append(row)
            labels.append(label)
    if not rows:
        return None
    rows_a, labels_a = np.asarray(rows), np.asarray(labels)
    if len(rows_a) > max_sites:
        pick = np.sort(
            np.random.default_rng([seed, 99]).choice(len(rows_a), max_sites, replace=False)
        )
        rows_a, labels_a = rows_a[pick], labels_a[pick]
    images = torch.as_tensor(np.asarray(dataset.read_sites(rows_a)))
    return images, torch.as_tensor(labels_a, dtype=torch.long)


def _check_frozen(history: list[dict], warnings: list[str], bar: Any) -> None:
    """Warn (once each) about a frozen MSN loss and about uniform prototype assignments."""
    from cellbench.metrics.health import frozen_loss_warning, uniform_collapse_warning

    if not history or "ce" not in history[-1]:
        return
    checks = {
        "MSN loss frozen": frozen_loss_warning(
            {"ce": [h["ce"] for h in history], "me_max": [h["me_max"] for h in history]}
        ),
        "MSN near the uniform": uniform_collapse_warning(
            [h["ce_over_log_k"] for h in history if "ce_over_log_k" in h]
        ),
    }
    for prefix, msg in checks.items():
        if msg and not any(prefix in w for w in warnings):
            warnings.append(f"step {history[-1]['step']}: " + msg)
            bar.warn(msg)


# ------------------------------------------------------------------ files
def _meta(model_name, seed, config, step, dataset, sampler) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": model_name,
        "seed": int(seed),
        "config": config.to_dict(),
        "step": int(step),
        "channels": list(dataset.channels),
        "n_perturbations": int(getattr(sampler, "n_perturbations", 0)),
    }


def _save_checkpoint(
    path,
    method,
    optimizer,
    model_name,
    seed,
    config,
    step,
    history,
    health_log,
    warnings,
    elapsed,
    dataset,
    sampler,
) -> None:
    """``checkpoint.pt`` holds only what the same seed reproduces bit for bit; the wall-clock
    times (elapsed seconds, each log record's ``time_s``) go beside it in ``TIMES``."""
    state = _meta(model_name, seed, config, step, dataset, sampler)
    state.update(
        state_dict=method.state_dict(),
        optimizer=optimizer.state_dict(),
        rng=torch.get_rng_state(),
        history=[{k: v for k, v in h.items() if k != "time_s"} for h in history],
        health=health_log,
        warnings=warnings,
    )
    torch_save_atomic(path, state)
    times = {
        "step": int(step),
        "elapsed_s": float(elapsed),
        "time_s": [h.get("time_s") for h in history],
    }
    write_json_atomic(Path(path).with_name(TIMES), times)


def _restore_times(path: Path, state: dict) -> tuple[list[dict[str, Any]], float]:
    """The checkpoint's history with its ``time_s`` put back, and the elapsed seconds, from
    ``TIMES`` when it belongs to this checkpoint (else the times are unknown: 0 s)."""
    import json

    history = [dict(h) for h in state["history"]]
    try:
        times = json.loads(Path(path).with_name(TIMES).read_text())
        if int(times["step"]) != int(state["step"]) or len(times["time_s"]) != len(history):
            raise ValueError("another checkpoint's times")
    except (OSError, ValueError, KeyError, TypeError):
        return history, float(state.get("elapsed_s", 0.0))  # a checkpoint of an older format
    for record, t in zip(history, times["time_s"], strict=True):
        if t is not None:
            record["time_s"] = t
    return history, float(times["elapsed_s"])


def _save_model(path, method, model_name, seed, config, step, dataset, sampler) -> None:
    state = _meta(model_name, seed, config, step, dataset, sampler)
    state["state_dict"] = method.state_dict()
    torch_save_atomic(path, state)


def _load_checkpoint(path: Path, model_name: str, seed: int, config: TrainConfig) -> dict:
    state = load_torch_weights(
        path,
        what="checkpoint",
        fix="Delete it to start the run again, or restore a good copy.",
    )
    missing = sorted(_CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else ["(not a dict)"]
    if missing:
        raise CellbenchError(
            f"{path} is not a cellbench training checkpoint (missing {', '.join(missing)}); delete it "
            "to start the run again, or drop --resume and use another --out directory."
        )
    if state.get("model") != model_name or int(state.get("seed", -1)) != seed:
        raise CellbenchError(
            f"checkpoint {path} belongs to model {state.get('model')!r} seed {state.get('seed')}, "
            f"not {model_name!r} seed {seed}; use another --out directory or drop --resume."
        )
    from cellbench.train.presets import from_dict

    # fields added since the checkpoint was written take their defaults
    saved, now = from_dict(state["config"]).to_dict(), config.to_dict()
    saved["betas"], now["betas"] = list(saved["betas"]), list(now["betas"])
    diff = sorted(k for k in now if k not in _RESUMABLE_CHANGES and saved.get(k) != now[k])
    if diff:
        raise CellbenchError(
            f"cannot resume {path}: its configuration differs in {', '.join(diff)}; resume with "
            "the same preset and overrides, or start a new run in another --out directory."
        )
    return state


# ------------------------------------------------------------------ progress
class _Progress:
    """A rich progress bar: step, loss, images/s and ETA (silent when disabled)."""

    def __init__(self, total: int, start: int, name: str, enabled: bool) -> None:
        self.enabled = enabled
        self.start_step = start
        self.t0 = time.perf_counter()
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]train {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[ips]} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        self.progress.start()
        self.task = self.progress.add_task(name, total=total, completed=start, loss="-", ips="-")

    def update(self, step: int, loss: float, batch: int) -> None:
        if not self.enabled:
            return
        dt = max(time.perf_counter() - self.t0, 1e-9)
        ips = (step - self.start_step) * batch / dt
        self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", ips=f"{ips:.0f}")

    def warn(self, message: str) -> None:
        if self.enabled:
            self.progress.console.print(f"[yellow]warning:[/yellow] {message}")
        else:
            import sys

            print(f"warning: {message}", file=sys.stderr)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
