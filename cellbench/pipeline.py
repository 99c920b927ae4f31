"""``cellbench run``: data → train (or load) → embed → evaluate → store → leaderboard row.

Every stage is cached (screens by configuration hash, checkpoints by run directory,
embeddings by model + data hash, scores in the results store), so re-running a finished
command only prints its row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellbench.errors import CellbenchError, NotFoundError
from cellbench.results import ResultRecord, ResultsStore, build_records
from cellbench.schema import EVAL_TASKS

# Size of the synthetic screens for each training preset.
DATA_SIZE = {"tiny": "tiny", "quick": "quick", "standard": "quick", "paper": "full"}
TRAIN_DATA = "synthetic-bray"
EVAL_DATA = "synthetic-rxrx3-core"
DATA_SEED = 0  # the screens are fixed; --seed varies the model (training, random init)


def floor_ceiling() -> tuple[str, ...]:
    """The reference rows ``cellbench run`` also scores: the cards with role floor or ceiling."""
    from cellbench.registry import models_with_role

    return models_with_role("floor", "ceiling")


@dataclass
class RunResult:
    model: str
    checkpoint: str
    dataset: str
    records: dict[str, ResultRecord] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reused: bool = False


def _is_trainable(record: dict[str, Any]) -> bool:
    return bool(record.get("trainer"))


def training_overrides(prototypes: int | None, steps: int | None) -> dict[str, Any]:
    """The preset fields ``cellbench run`` replaces for ``--prototypes`` and ``--steps``."""
    overrides: dict[str, Any] = {"num_prototypes": prototypes} if prototypes else {}
    if steps is not None:
        overrides["max_steps"] = steps
        overrides["warmup_steps"] = steps // 10  # the presets warm up over a tenth of training
    return overrides


def training_identity(
    name: str, preset: str, prototypes: int | None = None, steps: int | None = None
) -> dict[str, Any]:
    """What a trained checkpoint is made of, seed apart: the model, its training config as
    resolved (preset + method defaults + overrides, exactly what ``train_model`` uses) and
    the training screen (name, size, data seed, simulator version)."""
    from cellbench.data.synthetic import SIMULATOR_VERSION
    from cellbench.train.methods import method_defaults
    from cellbench.train.presets import resolve

    config = resolve(
        preset, {**method_defaults(name, preset), **training_overrides(prototypes, steps)}
    )
    return {
        "model": name,
        "train": config.to_dict(),
        "data": {
            "name": TRAIN_DATA,
            "size": DATA_SIZE.get(preset, preset),
            "seed": DATA_SEED,
            "simulator_version": SIMULATOR_VERSION,
        },
    }


def training_config_hash(
    name: str, preset: str, prototypes: int | None = None, steps: int | None = None
) -> str:
    """Hash of :func:`training_identity`: equal exactly when two runs train the same weights
    (given the same seed)."""
    from cellbench.io import config_hash

    return config_hash(training_identity(name, preset, prototypes, steps), length=10)


def checkpoint_id(
    name: str,
    record: dict[str, Any],
    preset: str,
    seed: int,
    prototypes: int | None,
    steps: int | None = None,
) -> str:
    """How a result names the weights it came from.

    A trained checkpoint is named by what it is, not by how it was asked for:
    ``{preset}-steps{N}[-proto{K}]-h{hash}-seed{seed}``, where the readable part comes from the
    resolved config and ``hash`` covers the resolved training config and the training data
    (:func:`training_config_hash`). ``--steps 600`` on a preset that trains 600 steps therefore
    names the same checkpoint as no ``--steps``. The seed stays a separate token so results
    differing only by seed are aggregated over seeds (their variant is the id without it).
    """
    if _is_trainable(record):
        ident = training_identity(name, preset, prototypes, steps)
        train = ident["train"]
        parts = [preset]
        if train.get("max_steps") is not None:
            parts.append(f"steps{train['max_steps']}")
        default_k = training_identity(name, preset)["train"].get("num_prototypes")
        if train.get("num_prototypes") != default_k:
            parts.append(f"proto{train['num_prototypes']}")
        parts.append("h" + training_config_hash(name, preset, prototypes, steps))
        return "-".join(parts) + f"-seed{seed}"
    if name == "random":
        return f"seed{seed}"
    return "released" if record.get("weights") else "none"


def untrained_checkpoint_id(
    name: str, preset: str, seed: int, prototypes: int | None = None
) -> str:
    """The checkpoint of the same architecture and preset before training (``--steps 0``)."""
    from cellbench import registry

    return checkpoint_id(name, registry.metadata(name), preset, seed, prototypes, steps=0)


def custom_checkpoint_id(checkpoint: str | Path) -> str:
    """How a result names user-given weights: by their content (SHA-256), never by the file
    name, so two different ``model.pt`` files never share stored results."""
    import hashlib

    from cellbench.io import sha256_file

    path = Path(checkpoint)
    if path.is_file():
        digest = sha256_file(path)
    elif path.is_dir():  # a weights folder: every file's relative path and content
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
        digest = h.hexdigest()
    else:
        raise NotFoundError(
            f"checkpoint {checkpoint} does not exist; pass the path of a model.pt "
            "that `cellbench train` wrote (or a weights file/folder)."
        )
    return f"custom-{digest[:16]}"


def dataset_id(data: str, size: str) -> str:
    return f"{EVAL_DATA}-{size}" if data == "synthetic" else data


def run_pipeline(
    model: str,
    *,
    data: str = "synthetic",
    data_dir: str | None = None,
    preset: str = "quick",
    seed: int = 0,
    prototypes: int | None = None,
    device: str = "cpu",
    eval_seeds: int = 100,
    progress: bool = True,
    floors: bool = True,
    checkpoint: str | None = None,
    steps: int | None = None,
) -> RunResult:
    """Run one model end to end and store its results; returns what was stored.

    ``steps`` overrides the preset's number of training steps (0 evaluates the untrained
    network of the same architecture: the fair "untrained ViT" for a trained preset).
    """
    from cellbench import registry

    if data not in ("synthetic", "rxrx3-core"):
        raise NotFoundError(
            f"unknown --data {data!r}; use 'synthetic' (default) or 'rxrx3-core' with --data-dir"
        )
    if preset not in DATA_SIZE:
        from cellbench.train.presets import get_preset

        get_preset(preset)  # raises with suggestions
    record = registry.metadata(model)  # raises with close-name suggestions
    if prototypes is not None and model not in ("cwa-msn", "single-well-msn"):
        raise CellbenchError(f"--prototypes applies to MSN models only, not {model!r}; drop it.")
    if steps is not None and (steps < 0 or not _is_trainable(record)):
        raise CellbenchError(
            f"--steps needs a trainable model and a number >= 0 (got {steps} for {model!r})."
        )
    if data == "rxrx3-core" and record.get("family") == "reference":
        raise CellbenchError(
            f"{model!r} reads the simulator's ground truth; it only runs with --data synthetic."
        )
    from cellbench.device import check_device

    check_device(device)
    size = DATA_SIZE[preset]
    ckpt_name = (
        custom_checkpoint_id(checkpoint)
        if checkpoint
        else checkpoint_id(model, record, preset, seed, prototypes, steps)
    )
    cfg_hash = (
        training_config_hash(model, preset, prototypes, steps)
        if _is_trainable(record) and not checkpoint
        else None
    )
    dataset_name = dataset_id(data, size)
    store = ResultsStore()
    result = RunResult(model, ckpt_name, dataset_name)

    if all(store.has(model, ckpt_name, dataset_name, task) for task in EVAL_TASKS):
        try:
            stored = {t: store.get(model, ckpt_name, dataset_name, t) for t in EVAL_TASKS}
        except CellbenchError:  # a file torn or left by an unfinished re-run: measure again
            stored = {}
        result.records = {t: r for t, r in stored.items() if r is not None}
        if len(result.records) == len(EVAL_TASKS):
            result.reused = True
            return result

    from cellbench.data import load_dataset

    t0 = time.perf_counter()
    if data == "synthetic":
        eval_ds = load_dataset(EVAL_DATA, size=size, seed=DATA_SEED)
    else:
        eval_ds = load_dataset("rxrx3-core", data_dir=data_dir)
    result.timings["data_eval"] = time.perf_counter() - t0

    train_log = None
    training_images = None
    if _is_trainable(record) and checkpoint is None:
        from cellbench.train.api import train_model

        t0 = time.perf_counter()
        train_ds = load_dataset(TRAIN_DATA, size=size, seed=DATA_SEED)
        training_images = int(train_ds.sites.height)
        result.timings["data_train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        overrides = training_overrides(prototypes, steps)
        cpu0 = time.process_time()
        checkpoint = str(
            train_model(
                model,
                train_ds,
                preset=preset,
                seed=seed,
                resume=True,
                overrides=overrides or None,
                progress=progress,
                device=device,
                probe=True,
            )
        )
        result.timings["train"] = time.perf_counter() - t0
        result.timings["train_cpu"] = time.process_time() - cpu0
        log_path = Path(checkpoint).parent / "train_log.json"
        if log_path.exists():
            train_log = json.loads(log_path.read_text())

    from cellbench.embed import create_for_dataset, embed_dataset
    from cellbench.paths import embeddings_dir

    t0 = time.perf_counter()
    kwargs = {"seed": seed} if model == "random" else {}
    encoder = create_for_dataset(model, eval_ds, checkpoint=checkpoint, **kwargs)
    parameters = _count_parameters(encoder)
    emb_path = embed_dataset(
        encoder,
        eval_ds,
        embeddings_dir() / dataset_name / model / ckpt_name,
        progress=progress,
        device=device,
    )
    result.timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores = _evaluate(emb_path, eval_ds, eval_seeds, progress)
    result.timings["evaluate"] = time.perf_counter() - t0

    result.records = build_records(
        scores,
        model=model,
        checkpoint=ckpt_name,
        dataset=dataset_name,
        tasks=EVAL_TASKS,
        synthetic=data == "synthetic",
        seed=seed,
        run_config={
            "preset": preset,
            "prototypes": prototypes,
            "device": device,
            "steps": steps,
            "config_hash": cfg_hash,
            "training_images": training_images,
            "parameters": parameters,
            "train": (train_log or {}).get("config"),
        },
        versions=scores.get("versions", {}),
        hashes={**_hashes(eval_ds, emb_path), **({"config": cfg_hash} if cfg_hash else {})},
        timings=result.timings,
        inputs={"embeddings": _portable(emb_path)},
        simulator_version=_simulator_version(eval_ds),
        health=None if train_log is None else _health(train_log),
    )
    for stored_record in result.records.values():
        store.put(stored_record)
    return result


def _evaluate(emb_path: Path, dataset: Any, seeds: int, progress: bool) -> dict:
    import polars as pl

    from cellbench.evaluate import evaluate_arrays, versions

    table = pl.read_parquet(emb_path)
    features = table.select(pl.exclude("well_id")).to_numpy().astype("float32")
    out = evaluate_arrays(table["well_id"].to_list(), features, dataset.wells, seeds=seeds)
    out.setdefault("versions", versions())
    return out


def _hashes(dataset: Any, emb_path: Path) -> dict[str, str]:
    """What the scores were computed from: the data's and the embeddings' hashes."""
    from cellbench.io import sha256_file

    manifest = getattr(dataset, "manifest", None)
    data_hash = manifest["config_hash"] if manifest else dataset.cache_key()
    return {"data": data_hash, "embeddings": sha256_file(emb_path)}


def _portable(emb_path: Path) -> str:
    """The embeddings path relative to the cellbench home, portable to another machine."""
    from cellbench.paths import home

    try:
        return Path(emb_path).resolve().relative_to(home().resolve()).as_posix()
    except ValueError:  # embeddings written outside the home: only the file name is portable
        return Path(emb_path).name


def _simulator_version(dataset: Any) -> str | None:
    """The simulator version that generated a synthetic screen (real data has none)."""
    manifest = getattr(dataset, "manifest", None)
    return manifest["simulator_version"] if manifest else None


def _count_parameters(encoder: Any) -> int | None:
    """Parameters of the encoder's network (None for encoders without one)."""
    count = encoder.num_parameters() if hasattr(encoder, "num_parameters") else 0
    return int(count) or None


def _health(train_log: dict) -> dict:
    """The last health record of a training run plus whether the loss froze."""
    health = train_log.get("health") or []
    last = dict(health[-1]) if health else {}
    if "proto_used" in last:
        last["prototype_usage"] = last["proto_used"]
    last["steps_done"] = train_log.get("steps_done")
    last["elapsed_s"] = train_log.get("elapsed_s")
    last["warnings"] = train_log.get("warnings", [])
    last["history"] = health
    return last
