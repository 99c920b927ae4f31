"""The results store: one JSON file per (model, checkpoint, dataset, task).

Layout ``{root}/{dataset}/{model}/{checkpoint}/{task}.json`` (docs/architecture.md). Each record
holds ``model, checkpoint, dataset, task, provenance, synthetic, seed, scores, config, versions,
hashes, timings, created``.

Concurrency: every write goes to a temporary file in the target folder and is renamed into
place (``cellbench.io``), which is atomic on POSIX. Two processes writing at once therefore
never produce a torn file: a reader sees either the old record or a complete new one, and for
two writers of the *same* key the last rename wins whole. Records of different keys live in
different files and cannot interfere. ``has()`` lets a pipeline skip work already done.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from cellbench import paths
from cellbench.errors import CellbenchError, InputError
from cellbench.io import write_json_atomic
from cellbench.schema import TASKS

KEY_FIELDS: tuple[str, ...] = ("model", "checkpoint", "dataset", "task")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=@-]*$")


def _component(name: str, value) -> str:
    value = str(value)
    if not _SAFE.match(value) or value in (".", ".."):
        raise InputError(
            f"{name} '{value}' cannot be used as a results key (letters, digits and . _ + = @ - only, "
            "no path separators). Fix: rename it."
        )
    return value


class ResultsStore:
    """Read and write result records under ``root`` (default ``$CELLBENCH_HOME/results``)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    def path(self, model: str, checkpoint: str, dataset: str, task: str) -> Path:
        if task not in TASKS:
            raise InputError(f"unknown task '{task}'. Fix: use one of {list(TASKS)}.")
        return (
            self.root
            / _component("dataset", dataset)
            / _component("model", model)
            / _component("checkpoint", checkpoint)
            / f"{task}.json"
        )

    def has(self, model: str, checkpoint: str, dataset: str, task: str) -> bool:
        return self.path(model, checkpoint, dataset, task).is_file()

    def get(self, model: str, checkpoint: str, dataset: str, task: str) -> dict | None:
        """The stored record, or ``None`` if there is none."""
        path = self.path(model, checkpoint, dataset, task)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:  # only a file not written by cellbench can be torn
            raise CellbenchError(
                f"result file {path} is not valid JSON ({exc}). Fix: delete it and re-run."
            ) from None

    def put(self, record: dict) -> Path:
        """Store ``record`` (must hold the key fields and ``scores``); returns its path."""
        missing = [k for k in (*KEY_FIELDS, "scores") if k not in record]
        if missing:
            raise InputError(f"a result record needs {missing}. Fix: fill them before storing.")
        full = {
            "provenance": "measured",
            "synthetic": False,
            "seed": None,
            "config": {},
            "versions": {},
            "hashes": {},
            "timings": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **record,
        }
        path = self.path(*(full[k] for k in KEY_FIELDS))
        return write_json_atomic(path, full)

    def iter_results(
        self, on_corrupt: Callable[[str], None] | None = None, **match
    ) -> Iterator[dict]:
        """Every stored record (sorted by path), optionally filtered by equal fields.

        A file that is not a JSON object (torn by a crash outside cellbench, edited by hand) is
        skipped, never silently: ``on_corrupt`` gets one message naming it (default: a
        ``UserWarning``). A file removed while listing is skipped quietly."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob("*/*/*/*.json")):
            try:
                record = json.loads(path.read_text())
                problem = (
                    None
                    if isinstance(record, dict)
                    else f"holds a JSON {type(record).__name__}, not a record"
                )
            except FileNotFoundError:
                continue  # removed while listing
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                problem = f"cannot be read ({type(exc).__name__}: {exc})"
            if problem is not None:
                message = (
                    f"skipped the result file {path}: it {problem}; delete it and run "
                    "`cellbench run` again to recompute it, or restore it"
                )
                if on_corrupt is None:
                    warnings.warn(message, UserWarning, stacklevel=2)
                else:
                    on_corrupt(message)
                continue
            if all(record.get(k) == v for k, v in match.items()):
                yield record


def records_from_evaluation(
    result: dict,
    *,
    model: str,
    checkpoint: str,
    dataset: str,
    synthetic: bool = False,
    seed: int | None = None,
) -> list[dict]:
    """One store record per scored task of an ``evaluate_arrays`` / ``evaluate_files`` result
    (the shared configuration, versions, hashes and timings go into each)."""
    records = []
    for task, scores in result.get("scores", {}).items():
        records.append(
            {
                "model": model,
                "checkpoint": checkpoint,
                "dataset": dataset,
                "task": task,
                "provenance": "measured",
                "synthetic": synthetic,
                "seed": seed,
                "scores": scores,
                "config": {**result.get("config", {}), "map": result.get("map", {})},
                "versions": result.get("versions", {}),
                "hashes": result.get("hashes", {}),
                "timings": result.get("timings", {}),
            }
        )
    return records
