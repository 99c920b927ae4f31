"""The files of a training run: ``checkpoint.pt`` (to resume), ``model.pt`` (what encoders
load) and the wall-clock times beside them, each written atomically.

``checkpoint.pt`` holds the model (incl. the EMA target), the optimiser, the step, the torch RNG
state and the logs; ``model.pt`` the weights and the facts an encoder needs (channels, config).
Both are byte-reproducible (same seed, same SHA-256): the times a resume needs (elapsed
seconds, each log record's ``time_s``) live in ``checkpoint_times.json``. :func:`load_checkpoint`
refuses another model, seed or configuration (fields of :data:`RESUMABLE_CHANGES` may change).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cellbench.errors import CellbenchError
from cellbench.io import load_torch_weights, torch_save_atomic, write_json_atomic
from cellbench.train.presets import TrainConfig, from_dict

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOG = "train_log.json"
TIMES = "checkpoint_times.json"  # the wall-clock times of checkpoint.pt (not reproducible)
FORMAT = 1
CHECKPOINT_KEYS = frozenset(
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
#: fields that may change between a run and its resumption (they do not change the maths)
RESUMABLE_CHANGES = {"time_budget_s", "checkpoint_every", "health_every", "log_every"}


def run_meta(
    model_name: str, seed: int, config: TrainConfig, step: int, dataset: Any, sampler: Any
) -> dict[str, Any]:
    """What both files record about the run: format, model, seed, config, step, channels."""
    return {
        "format": FORMAT,
        "model": model_name,
        "seed": int(seed),
        "config": config.to_dict(),
        "step": int(step),
        "channels": list(dataset.channels),
        "n_perturbations": int(getattr(sampler, "n_perturbations", 0)),
    }


def save_checkpoint(
    path: Path,
    meta: dict[str, Any],
    method: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, Any]],
    health_log: list[dict[str, Any]],
    warnings: list[str],
    elapsed: float,
) -> None:
    """``checkpoint.pt`` holds only what the same seed reproduces bit for bit; the wall-clock
    times (elapsed seconds, each log record's ``time_s``) go beside it in ``TIMES``."""
    state = dict(meta)
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
        "step": int(meta["step"]),
        "elapsed_s": float(elapsed),
        "time_s": [h.get("time_s") for h in history],
    }
    write_json_atomic(Path(path).with_name(TIMES), times)


def restore_times(path: Path, state: dict) -> tuple[list[dict[str, Any]], float]:
    """The checkpoint's history with its ``time_s`` put back, and the elapsed seconds, from
    ``TIMES`` when it belongs to this checkpoint (else the times are unknown: 0 s)."""
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


def save_model(path: Path, meta: dict[str, Any], method: torch.nn.Module) -> None:
    """``model.pt``: the run's facts and the weights."""
    state = dict(meta)
    state["state_dict"] = method.state_dict()
    torch_save_atomic(path, state)


def load_checkpoint(path: Path, model_name: str, seed: int, config: TrainConfig) -> dict:
    """The state of ``checkpoint.pt``, checked to belong to this model, seed and config."""
    state = load_torch_weights(
        path,
        what="checkpoint",
        fix="Delete it to start the run again, or restore a good copy.",
    )
    missing = sorted(CHECKPOINT_KEYS - set(state)) if isinstance(state, dict) else ["(not a dict)"]
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
    # fields added since the checkpoint was written take their defaults
    saved, now = from_dict(state["config"]).to_dict(), config.to_dict()
    saved["betas"], now["betas"] = list(saved["betas"]), list(now["betas"])
    diff = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if diff:
        raise CellbenchError(
            f"cannot resume {path}: its configuration differs in {', '.join(diff)}; resume with "
            "the same preset and overrides, or start a new run in another --out directory."
        )
    return state
