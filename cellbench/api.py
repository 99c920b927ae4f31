"""The Python API: ``cellbench.evaluate(profiles, metadata=None, tasks=..., **options)``.

One call scores either

* a JUMP-style profiles table (``Metadata_*`` + numeric feature columns, pycytominer
  conventions; see :mod:`cellbench.maps.profiles`) - ``metadata=None``; or
* well embeddings (``well_id`` + ``feature_0..``) with their metadata (RxRx3-core layout,
  a normalised well table, or ``Metadata_*`` columns).

Each may be a polars or pandas frame or a parquet/CSV path. The result is an
:class:`EvaluationResult`: scores per task, the per-perturbation (per-target, per-source...)
tables as polars frames, the configuration and the versions; ``.to_json()`` gives what
``cellbench evaluate`` writes as ``results.json``, and ``out=FOLDER`` writes the same files.

``cellbench.evaluate`` is the module :mod:`cellbench.evaluate` made callable, so it is the same
object whichever of ``import cellbench.evaluate`` / ``cellbench.evaluate(...)`` comes first. Both
names are defined in :mod:`cellbench.evaluate` (whose scoring they wrap, and which calls
:func:`evaluate` when called) and re-exported here, so imports go one way: api -> evaluate.
"""

from __future__ import annotations

from cellbench.evaluate import EvaluationResult, evaluate

__all__ = ["EvaluationResult", "evaluate"]
