"""Read the results store for reporting: every stored result, tolerant of extra keys.

The store (docs/architecture.md, "Results") keeps one JSON per (model, checkpoint,
dataset, task) at ``{root}/{dataset}/{model}/{checkpoint}/{task}.json``. When
:class:`cellbench.results.ResultsStore` offers ``iter_results()`` this module uses it;
otherwise it reads the files by glob. Either way each result becomes a plain dict with at
least ``model, checkpoint, dataset, task, seed, synthetic, scores, config`` (missing
identity keys are taken from the file's path), so the report layer does not depend on
how the store is implemented.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellbench.errors import InputError

# a seed token anywhere in a checkpoint name: "quick-seed0", "quick-seed0-proto512", "p512_s2"
_SEED_TOKEN = re.compile(r"(?:^|[-_.])(?:seed|s)[-_]?(\d+)(?=$|[-_.])")


def _from_store(
    root: Path, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]] | None:
    """Results via ``ResultsStore.iter_results()`` if that API exists, else None."""
    try:
        from cellbench.results import ResultsStore  # type: ignore[attr-defined]
    except ImportError:
        return None
    if not hasattr(ResultsStore, "iter_results"):
        return None
    try:
        store = ResultsStore(root)
        items = list(store.iter_results(on_corrupt=warn))
    except Exception:  # noqa: BLE001 - a store API mismatch falls back to reading files
        return None
    out = []
    for item in items:
        rec = item if isinstance(item, dict) else getattr(item, "__dict__", None)
        if isinstance(rec, dict):
            out.append(dict(rec))
    return out


def _from_files(root: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(root.glob("*/*/*/*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"cannot read the result {path}: {exc}; delete it (it will be recomputed by "
                "`cellbench run`) or restore it"
            ) from exc
        if not isinstance(rec, dict):
            raise InputError(f"{path} is not a results JSON object; delete it or restore it")
        dataset, model, checkpoint = path.parts[-4:-1]
        rec.setdefault("dataset", dataset)
        rec.setdefault("model", model)
        rec.setdefault("checkpoint", checkpoint)
        rec.setdefault("task", path.stem)
        rec["_path"] = str(path)
        out.append(rec)
    return out


def load_results(
    root: str | Path, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """All results under ``root`` as normalised dicts (see module docstring).

    A corrupt result file is skipped with one message to ``warn`` (default: a ``UserWarning``).

    An absent root gives an empty list (nothing measured yet). Every record gets
    ``seed`` (from the record, else its config, else a ``seed<N>`` token in the checkpoint
    name, else None), ``synthetic`` (bool), ``scores`` and ``config`` (dicts), and
    ``variant``: the checkpoint name with its seed token removed, so results that differ
    only by seed are grouped together.
    """
    root = Path(root)
    if not root.exists():
        return []
    records = _from_store(root, warn)
    if records is None:
        records = _from_files(root)
    for rec in records:
        rec.setdefault("scores", {})
        rec["config"] = rec.get("config") or {}
        ckpt = str(rec.get("checkpoint", ""))
        seed = rec.get("seed")
        if seed is None:
            seed = find_key(rec["config"], "seed")
        m = _SEED_TOKEN.search(ckpt)
        if seed is None and m:
            seed = int(m.group(1))
        rec["seed"] = seed
        rec["variant"] = variant_of(ckpt)
        rec["synthetic"] = bool(
            rec.get("synthetic", str(rec.get("dataset", "")).startswith("synthetic"))
        )
        rec["weights_key"] = weights_key(rec)
    _merge_same_weights(records)
    return records


def weights_key(rec: dict[str, Any]) -> str | None:
    """What a trained result's weights are, seed apart: a hash of its model and its training
    config as resolved (``config.train``, stored by every ``cellbench run`` that trained),
    or None for a result without one (reference rows, released or user-given weights)."""
    from cellbench.io import config_hash

    train = (rec.get("config") or {}).get("train")
    if not isinstance(train, dict) or not train:
        return None
    return config_hash({"model": rec.get("model"), "train": train}, length=10)


def _merge_same_weights(records: list[dict[str, Any]]) -> None:
    """Give results of the same weights one variant, so one checkpoint is one leaderboard row.

    Checkpoints used to be named by the command line (``quick-seed0`` and
    ``quick-steps600-seed0`` name the same weights when the preset trains 600 steps); such
    stored results stay readable and are shown under one name: the content-named one
    (``...-h<hash>``) when there is one, else the shortest.
    """

    def ckpt(rec: dict[str, Any]) -> tuple[str, str, str]:
        return str(rec.get("dataset")), str(rec.get("model")), str(rec.get("checkpoint"))

    # one checkpoint's tasks share its weights, whichever of them recorded the training config
    key_of = {ckpt(r): r["weights_key"] for r in records if r.get("weights_key")}
    names: dict[tuple, set[str]] = {}
    for rec in records:
        if ckpt(rec) in key_of:
            rec["weights_key"] = key_of[ckpt(rec)]
            names.setdefault((*ckpt(rec)[:2], rec["weights_key"]), set()).add(rec["variant"])
    canonical = {
        key: min(v, key=lambda n: (_HASH_TOKEN.search(n) is None, len(n), n))
        for key, v in names.items()
        if len(v) > 1
    }
    for rec in records:
        key = (*ckpt(rec)[:2], rec.get("weights_key"))
        if key in canonical:
            rec["variant"] = canonical[key]


# the content hash token of a checkpoint id (cellbench.pipeline.checkpoint_id): "-h3fa2c1d9e0"
_HASH_TOKEN = re.compile(r"(?:^|[-_.])h[0-9a-f]{10}(?=$|[-_.])")


def short_variant(variant: str) -> str:
    """A variant without its content hash, for narrow tables (the hash stays in the files)."""
    return _HASH_TOKEN.sub("", str(variant)).strip("-_.") or "default"


@functools.lru_cache(maxsize=256)
def is_preset_default(model: str, variant: str, preset: str = "quick") -> bool:
    """Whether ``variant`` is ``model`` trained by ``preset`` as it is (no ``--steps`` or
    ``--prototypes``): the plain preset name of older results, or today's content-named id."""
    if variant in (preset, "default"):
        return True
    if _HASH_TOKEN.search(variant) is None:
        return False
    try:
        from cellbench import registry
        from cellbench.pipeline import checkpoint_id

        return (
            variant_of(checkpoint_id(model, registry.metadata(model), preset, 0, None)) == variant
        )
    except Exception:  # noqa: BLE001 - unknown model or preset: not its default
        return False


def is_untrained(variant: str) -> bool:
    """Whether a variant is the network before training (``cellbench run --steps 0``)."""
    return re.search(r"(?:^|-)steps0(?=$|-)", str(variant)) is not None


def _version_key(version: str) -> tuple[int, ...]:
    """``cellbench-sim-1.10`` -> (1, 10): versions compare numerically, not as text."""
    return tuple(int(n) for n in re.findall(r"\d+", str(version)))


def newest_simulator(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Per dataset, only the results of its newest simulator version, plus one warning per
    dataset whose results came from more than one (results without a version count as
    another one). Scores of different simulators measure different screens: never mixed."""
    by_dataset: dict[str, set] = {}
    for rec in records:
        by_dataset.setdefault(str(rec.get("dataset")), set()).add(rec.get("simulator_version"))
    keep: dict[str, str] = {}
    warnings = []
    for dataset, versions in sorted(by_dataset.items()):
        known = sorted((v for v in versions if v is not None), key=_version_key)
        if len(versions) < 2 or not known:
            continue
        keep[dataset] = known[-1]
        dropped = sum(
            1
            for r in records
            if str(r.get("dataset")) == dataset and r.get("simulator_version") != known[-1]
        )
        names = ", ".join(known + (["unknown (no simulator_version)"] if None in versions else []))
        warnings.append(
            f"{dataset}: results come from {len(versions)} simulator versions ({names}); "
            f"keeping only {known[-1]}, dropped {dropped} result(s) of the others — "
            "re-run them with the current simulator to compare"
        )
    kept = [
        r
        for r in records
        if str(r.get("dataset")) not in keep
        or r.get("simulator_version") == keep[str(r.get("dataset"))]
    ]
    return kept, warnings


def variant_of(checkpoint: str) -> str:
    """A checkpoint name without its seed token: what results differing only by seed share."""
    return _SEED_TOKEN.sub("", str(checkpoint)).strip("-_.") or "default"


def find_key(obj: Any, key: str) -> Any:
    """The first value stored under ``key`` anywhere in a nested dict (breadth-first)."""
    queue = [obj]
    while queue:
        cur = queue.pop(0)
        if isinstance(cur, dict):
            if key in cur and cur[key] is not None and not isinstance(cur[key], dict):
                return cur[key]
            queue.extend(v for v in cur.values() if isinstance(v, dict))
    return None
