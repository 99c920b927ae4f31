"""``train_model``: the library entry point behind ``cellbench train`` and ``cellbench run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cellbench.train.presets import TrainConfig


def default_out_dir(
    name: str, dataset_name: str, preset: str, seed: int, config: TrainConfig
) -> Path:
    """``$CELLBENCH_HOME/runs/{dataset}/{model}/{preset}-seed{seed}-{config hash}``."""
    from cellbench.io import config_hash
    from cellbench.paths import runs_dir

    return runs_dir() / dataset_name / name / f"{preset}-seed{seed}-{config_hash(config.to_dict())}"


def train_model(
    name: str,
    dataset: Any,
    *,
    preset: str = "quick",
    seed: int = 0,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str = "cpu",
    callback=None,
    data_size: str = "quick",
    data_dir: str | Path | None = None,
    probe: bool = False,
) -> Path:
    """Train encoder ``name`` on ``dataset`` (an ImageDataset or a dataset name) and return the
    path of its ``model.pt`` (load it with ``cellbench.registry.create(name, checkpoint=...)``).

    A finished run in ``out_dir`` is reused as it is when ``resume`` is set; an interrupted one
    is continued from its last checkpoint. ``overrides`` replace preset fields by name.
    ``data_size``/``data_dir`` are passed to :func:`cellbench.data.load_dataset` for a name.
    ``probe`` scores CORUM recall on the small synthetic probe screen at every health check
    (:mod:`cellbench.train.probe`; skipped for crops larger than its 64 px sites).
    """
    from cellbench.errors import CellbenchError
    from cellbench.train.loop import MODEL, train
    from cellbench.train.methods import check_trainable, method_defaults
    from cellbench.train.presets import resolve

    check_trainable(name)
    config = resolve(preset, {**method_defaults(name, preset), **(overrides or {})})
    dataset_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", "dataset")
    out = (
        Path(out_dir)
        if out_dir is not None
        else default_out_dir(name, str(dataset_name), preset, seed, config)
    )
    from cellbench.device import check_device
    from cellbench.io import check_writable

    if out.exists() and not out.is_dir():
        raise CellbenchError(
            f"--out {out} is a file; pass a folder for the run (it holds checkpoint.pt, model.pt)."
        )
    check_writable(out)
    check_device(device)
    if isinstance(dataset, str):
        from cellbench.data import load_dataset

        dataset = load_dataset(dataset, data_dir=data_dir, size=data_size)
    if resume and (out / MODEL).exists() and not (out / "checkpoint.pt").exists():
        raise CellbenchError(
            f"{out} has a model.pt but no checkpoint.pt to resume from; delete {out} to retrain."
        )
    recall_probe = None
    if probe and config.crop_size <= 64:
        from cellbench.train.probe import synthetic_probe

        recall_probe = synthetic_probe(tuple(dataset.channels), config.crop_size)
    result = train(
        name,
        dataset,
        config,
        seed=seed,
        out_dir=out,
        resume=resume,
        progress=progress,
        device=device,
        callback=callback,
        recall_probe=recall_probe,
    )
    if result.model_path is None:  # pragma: no cover - only with stop_at
        raise CellbenchError(f"training of {name} stopped before writing a model in {out}")
    return result.model_path
