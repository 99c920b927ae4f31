"""Read the results store for reporting: every stored result as a plain dict.

The one reader is :meth:`cellbench.results.ResultsStore.iter_results` (docs/architecture.md,
"Results"): each :class:`~cellbench.results.ResultRecord` becomes its fields as a dict plus
what the report groups by (``variant``, ``weights_key``) and the run's facts
(:meth:`~cellbench.results.ResultRecord.run_facts`) under ``run_facts``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cellbench.results import ResultsStore

# a seed token anywhere in a checkpoint name: "quick-seed0", "quick-seed0-proto512", "p512_s2"
_SEED_TOKEN = re.compile(r"(?:^|[-_.])(?:seed|s)[-_]?(\d+)(?=$|[-_.])")


def load_results(
    root: str | Path, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """All results under ``root`` as dicts (see module docstring).

    A corrupt result file is skipped with one message to ``warn`` (default: a ``UserWarning``).

    An absent root gives an empty list (nothing measured yet). Every record gets ``seed``
    (from the record, else a ``seed<N>`` token in the checkpoint name, else None) and
    ``variant``: the checkpoint name with its seed token removed, so results that differ
    only by seed are grouped together.
    """
    records = []
    for record in ResultsStore(root).iter_results(on_corrupt=warn):
        rec = record.to_dict()
        m = _SEED_TOKEN.search(record.checkpoint)
        if rec["seed"] is None and m:
            rec["seed"] = int(m.group(1))
        rec["variant"] = variant_of(record.checkpoint)
        rec["weights_key"] = record.weights_key
        rec["config_id"] = record.config_id
        rec["run_facts"] = record.run_facts()
        records.append(rec)
    _merge_same_weights(records)
    return records


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
