"""The results store: one typed record per (model, checkpoint, dataset, task).

A :class:`ResultRecord` is built in one place (:func:`build_records`, used by ``cellbench run``
and by :func:`records_from_evaluation`), validated when it is made and again by
:meth:`ResultsStore.put`, and read back by one reader (:meth:`ResultsStore.iter_results`).

Layout (docs/architecture.md, "Results")::

    {root}/{dataset}/{model}/{checkpoint}/run.json     what the run was, stored once
    {root}/{dataset}/{model}/{checkpoint}/{task}.json  one task's scores

``run.json`` holds the run-level fields (:data:`RUN_FIELDS`: configuration, versions, hashes,
timings, inputs, seed, ...); a task file holds ``task, scores, created`` (and ``skipped``) plus
``run``, the hash of the ``run.json`` it was measured under, so a task file left over from an
earlier run of the same checkpoint is never read with another run's configuration. Result files
of the earlier format, one self-contained JSON per task with every field (the committed
``leaderboard/results``), are read as they are.

Concurrency: every write goes to a temporary file in the target folder and is renamed into
place (``cellbench.io``), which is atomic on POSIX. Two processes writing at once therefore
never produce a torn file: a reader sees either the old file or a complete new one, and for
two writers of the *same* key the last rename wins whole. ``has()`` lets a pipeline skip work
already done.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellbench import paths
from cellbench.errors import CellbenchError, InputError
from cellbench.io import config_hash, write_json_atomic
from cellbench.schema import TASKS

KEY_FIELDS: tuple[str, ...] = ("model", "checkpoint", "dataset", "task")
#: The fields every task of one run shares, stored once in the run's ``run.json``.
RUN_FIELDS: tuple[str, ...] = (
    "model",
    "checkpoint",
    "dataset",
    "provenance",
    "synthetic",
    "seed",
    "simulator_version",
    "config",
    "versions",
    "hashes",
    "timings",
    "inputs",
)
#: The fields of one task's file (besides ``run``, the hash of its run's ``run.json``).
TASK_FIELDS: tuple[str, ...] = ("task", "scores", "skipped", "created")
RUN_FILE = "run.json"
PROVENANCES: tuple[str, ...] = ("measured",)
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@-]*$")


def _component(name: str, value: object) -> str:
    text = str(value)
    if not _SAFE.match(text) or text in (".", ".."):
        raise InputError(
            f"{name} '{text}' cannot be used as a results key (letters, digits and . _ + = @ - only, "
            "no path separators). Fix: rename it."
        )
    return text


def weights_key(model: str, config: Mapping[str, Any]) -> str | None:
    """What a trained result's weights are, seed apart: a hash of its model and its training
    config as resolved (``config.train``, stored by every ``cellbench run`` that trained),
    or None for a result without one (reference rows, released or user-given weights)."""
    train = config.get("train")
    if not isinstance(train, dict) or not train:
        return None
    return config_hash({"model": model, "train": train}, length=10)


@dataclass(frozen=True)
class ResultRecord:
    """One task's scores of one run, with what the run was.

    Made by :func:`build_records` (or read from the store); invalid fields raise
    :class:`~cellbench.errors.InputError` naming the field and the fix."""

    model: str
    checkpoint: str
    dataset: str
    task: str
    scores: dict[str, Any]
    provenance: str = "measured"
    synthetic: bool = False
    seed: int | None = None
    simulator_version: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    hashes: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    created: str = ""

    def __post_init__(self) -> None:
        for name in ("model", "checkpoint", "dataset"):
            _component(name, getattr(self, name))
        if self.task not in TASKS:
            raise InputError(f"unknown task '{self.task}'. Fix: use one of {list(TASKS)}.")
        if self.provenance not in PROVENANCES:
            raise InputError(
                f"a result's provenance must be one of {list(PROVENANCES)}, not "
                f"{self.provenance!r}. Fix: store only measured results (reported numbers live "
                "in cellbench.report.paper)."
            )
        expected: dict[str, tuple[type, ...]] = {
            "scores": (dict,),
            "config": (dict,),
            "versions": (dict,),
            "hashes": (dict,),
            "timings": (dict,),
            "inputs": (dict,),
            "synthetic": (bool,),
            "created": (str,),
        }
        for name, types in expected.items():
            if not isinstance(getattr(self, name), types):
                raise InputError(
                    f"a result's {name} must be a {types[0].__name__}, not "
                    f"{type(getattr(self, name)).__name__}. Fix: build records with "
                    "cellbench.results.build_records."
                )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InputError(
                f"a result's seed must be an integer or None, not {self.seed!r}. Fix: pass seed=int."
            )
        for name in ("simulator_version", "skipped"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"a result's {name} must be text or None, not {value!r}. Fix: pass a string."
                )

    # --- identity ------------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, str, str, str]:
        """(model, checkpoint, dataset, task): where the record is stored."""
        return self.model, self.checkpoint, self.dataset, self.task

    @property
    def weights_key(self) -> str | None:
        """The hash of the resolved training configuration (:func:`weights_key`)."""
        return weights_key(self.model, self.config)

    @property
    def config_id(self) -> str | None:
        """The resolved configuration hash that names the run's weights: the pipeline's
        training config hash when it stored one, else :attr:`weights_key`."""
        conf = self.hashes.get("config") or self.config.get("config_hash") or self.weights_key
        return str(conf) if conf else None

    # --- run facts (the report's prototype sweep, Figure 1, Tables 3-4) ------------------
    def run_facts(self) -> dict[str, float]:
        """Prototypes, training images, parameters and training seconds, where the run
        recorded them: ``config.prototypes`` (else the resolved ``config.train.num_prototypes``),
        ``config.training_images``, ``config.parameters``, ``timings.train`` (wall seconds)
        and ``timings.train_cpu`` (the training's CPU seconds, all threads: what CPU-hours are
        made of, and unlike wall time not inflated by a busy machine)."""
        train = self.config.get("train")
        train = train if isinstance(train, dict) else {}
        found = {
            "prototypes": _first(self.config.get("prototypes"), train.get("num_prototypes")),
            "training_images": self.config.get("training_images"),
            "parameters": self.config.get("parameters"),
            "train_seconds": self.timings.get("train"),
            "train_cpu_seconds": self.timings.get("train_cpu"),
        }
        return {k: float(v) for k, v in found.items() if _is_number(v)}

    # --- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-ready data."""
        return dataclasses.asdict(self)

    def run_part(self) -> dict[str, Any]:
        """The run-level fields, as stored in ``run.json``."""
        return {k: getattr(self, k) for k in RUN_FIELDS}

    def task_part(self) -> dict[str, Any]:
        """The task's own fields, as stored in ``{task}.json`` (``skipped`` only when set)."""
        part = {k: getattr(self, k) for k in TASK_FIELDS}
        if part["skipped"] is None:
            del part["skipped"]
        return part

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRecord:
        """A record from its fields; unknown or missing required fields are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(
                f"a result record has unknown fields {unknown}. Fix: drop them, or keep them "
                f"under config (the fields are {sorted(names)})."
            )
        missing = [k for k in (*KEY_FIELDS, "scores") if k not in data]
        if missing:
            raise InputError(f"a result record needs {missing}. Fix: fill them before storing.")
        return cls(**dict(data))

    @classmethod
    def from_stored(
        cls, task_data: Mapping[str, Any], run_data: Mapping[str, Any] | None
    ) -> ResultRecord:
        """A record from a task file and its run's ``run.json``, or from a task file of the
        earlier self-contained format (``run_data`` None). Fields of a newer cellbench that this
        one does not know are left out, so its results stay readable."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged = {**(run_data or {}), **task_data}
        return cls.from_dict({k: v for k, v in merged.items() if k in names})


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _is_number(value: Any) -> bool:
    """A real number (not a bool, not NaN)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _run_id(run: Mapping[str, Any]) -> str:
    return config_hash(dict(run), length=12)


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ResultsStore:
    """Read and write result records under ``root`` (default ``$CELLBENCH_HOME/results``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    def run_dir(self, model: str, checkpoint: str, dataset: str) -> Path:
        return (
            self.root
            / _component("dataset", dataset)
            / _component("model", model)
            / _component("checkpoint", checkpoint)
        )

    def path(self, model: str, checkpoint: str, dataset: str, task: str) -> Path:
        if task not in TASKS:
            raise InputError(f"unknown task '{task}'. Fix: use one of {list(TASKS)}.")
        return self.run_dir(model, checkpoint, dataset) / f"{task}.json"

    def has(self, model: str, checkpoint: str, dataset: str, task: str) -> bool:
        return self.path(model, checkpoint, dataset, task).is_file()

    def get(self, model: str, checkpoint: str, dataset: str, task: str) -> ResultRecord | None:
        """The stored record, or ``None`` if there is none."""
        path = self.path(model, checkpoint, dataset, task)
        try:
            return self._read(path)
        except FileNotFoundError:
            return None
        except _Unreadable as exc:
            raise CellbenchError(f"{exc}. Fix: delete it and re-run.") from None

    def put(self, record: ResultRecord | Mapping[str, Any]) -> Path:
        """Store ``record`` (a :class:`ResultRecord`, or its fields as a mapping, validated by
        :meth:`ResultRecord.from_dict`); its run's fields go to the run's ``run.json``. Returns
        the path of its task file."""
        if isinstance(record, Mapping):
            record = ResultRecord.from_dict(record)
        elif not isinstance(record, ResultRecord):
            raise InputError(
                f"ResultsStore.put takes a ResultRecord, not {type(record).__name__}. Fix: build "
                "it with cellbench.results.build_records or ResultRecord.from_dict."
            )
        if not record.created:
            record = dataclasses.replace(record, created=_utc_now())
        path = self.path(*record.key)
        run = record.run_part()
        run_path = path.parent / RUN_FILE
        try:
            same = json.loads(run_path.read_text()) == json.loads(json.dumps(run))
        except (OSError, ValueError):
            same = False
        if not same:  # one run's tasks share it: written once, rewritten when the run is redone
            write_json_atomic(run_path, run)
        return write_json_atomic(path, {**record.task_part(), "run": _run_id(run)})

    def _read(self, path: Path) -> ResultRecord:
        """The record stored at ``path``; raises FileNotFoundError or :class:`_Unreadable`."""
        data = _load_object(path)
        run = None
        if "run" in data:  # a task file of a run: its run-level fields live in run.json
            try:
                run = _load_object(path.parent / RUN_FILE)
            except FileNotFoundError:
                raise _Unreadable(f"the result file {path} has no {RUN_FILE} beside it") from None
            if data["run"] != _run_id(run):
                raise _Unreadable(
                    f"the result file {path} was measured under another run than the "
                    f"{RUN_FILE} beside it (a re-run of that checkpoint that did not finish)"
                )
        dataset, model, checkpoint = path.parts[-4:-1]
        at = {"dataset": dataset, "model": model, "checkpoint": checkpoint, "task": path.stem}
        try:
            record = ResultRecord.from_stored({k: v for k, v in data.items() if k != "run"}, run)
        except InputError as exc:
            raise _Unreadable(f"the result file {path} is not a valid record ({exc})") from None
        wrong = {k: v for k, v in at.items() if getattr(record, k) != v}
        if wrong:
            raise _Unreadable(
                f"the result file {path} holds the record of "
                + ", ".join(f"{k} {getattr(record, k)!r}" for k in wrong)
                + " but lies elsewhere"
            )
        return record

    def iter_results(
        self, on_corrupt: Callable[[str], None] | None = None, **match: Any
    ) -> Iterator[ResultRecord]:
        """Every stored record (sorted by path), optionally filtered by equal fields.

        A file that is not a valid record (torn by a crash outside cellbench, edited by hand,
        left over from an unfinished re-run) is skipped, never silently: ``on_corrupt`` gets one
        message naming it (default: a ``UserWarning``). A file removed while listing is skipped
        quietly."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob("*/*/*/*.json")):
            if path.name == RUN_FILE:
                continue
            try:
                record = self._read(path)
            except FileNotFoundError:
                continue  # removed while listing
            except _Unreadable as exc:
                message = (
                    f"skipped {exc}; delete it and run `cellbench run` again to recompute it, "
                    "or restore it"
                )
                if on_corrupt is None:
                    warnings.warn(message, UserWarning, stacklevel=2)
                else:
                    on_corrupt(message)
                continue
            if all(getattr(record, k) == v for k, v in match.items()):
                yield record


class _Unreadable(Exception):
    """A stored file that is not a readable result record (its message names the file)."""


def _load_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Unreadable(
            f"the result file {path}: it cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict):
        raise _Unreadable(
            f"the result file {path}: it holds a JSON {type(data).__name__}, not a record"
        )
    return data


def build_records(
    evaluation: Mapping[str, Any],
    *,
    model: str,
    checkpoint: str,
    dataset: str,
    tasks: Iterable[str] | None = None,
    synthetic: bool = False,
    seed: int | None = None,
    run_config: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    hashes: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    simulator_version: str | None = None,
    health: Mapping[str, Any] | None = None,
) -> dict[str, ResultRecord]:
    """The records of one run, by task: the one place a result record is made.

    ``evaluation`` is an ``evaluate_arrays`` / ``evaluate_files`` result. Each task of ``tasks``
    (default: the scored ones) gets a record: its scores (the batch diagnostics with their
    headline numbers at the top level, :func:`flat_batch`), or empty scores and the reason it
    was skipped, so a re-run knows the work is done. ``health`` (a training run's health
    scores) adds a ``health`` record. Every record shares the run's fields: ``config`` is
    ``run_config`` plus the evaluation's own configuration under ``eval`` (and its map
    summary under ``map``); ``versions``, ``hashes`` and ``timings`` default to the
    evaluation's."""
    scores = evaluation.get("scores", {})
    skipped = evaluation.get("skipped", {})
    config = {**(run_config or {}), "eval": evaluation.get("config", {})}
    if evaluation.get("map"):
        config["map"] = evaluation["map"]
    common: dict[str, Any] = {
        "model": model,
        "checkpoint": checkpoint,
        "dataset": dataset,
        "synthetic": synthetic,
        "seed": seed,
        "simulator_version": simulator_version,
        "config": config,
        "versions": dict(versions if versions is not None else evaluation.get("versions", {})),
        "hashes": dict(hashes if hashes is not None else evaluation.get("hashes", {})),
        "timings": dict(timings if timings is not None else evaluation.get("timings", {})),
        "inputs": dict(inputs if inputs is not None else evaluation.get("inputs", {})),
    }
    records: dict[str, ResultRecord] = {}
    for task in list(scores) if tasks is None else tasks:
        if task in scores:
            task_scores = flat_batch(scores[task]) if task == "batch" else scores[task]
            records[task] = ResultRecord(**common, task=task, scores=dict(task_scores))
        else:
            reason = str(skipped.get(task, "not computed"))
            records[task] = ResultRecord(**common, task=task, scores={}, skipped=reason)
    if health is not None:
        records["health"] = ResultRecord(**common, task="health", scores=dict(health))
    return records


def records_from_evaluation(result: Mapping[str, Any], **options: Any) -> list[ResultRecord]:
    """One store record per scored task of an ``evaluate_arrays`` / ``evaluate_files`` result:
    :func:`build_records` as a list (``options`` are its keywords: ``model``, ``checkpoint`` and
    ``dataset``, optionally ``synthetic``, ``seed``...; the shared configuration, versions,
    hashes and timings go into the run's fields)."""
    return list(build_records(result, **options).values())


def flat_batch(scores: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers of the batch diagnostics at the top level, details kept beside them."""
    pred = scores.get("batch_predictability") or {}
    rep = scores.get("replicate_consistency") or {}
    flat = {
        "batch_predictability": pred.get("batch_accuracy"),
        "batch_chance": pred.get("batch_chance"),
        "replicate_consistency": rep.get("replicate_consistency"),
        "details": dict(scores),
    }
    return {k: v for k, v in flat.items() if v is not None}
