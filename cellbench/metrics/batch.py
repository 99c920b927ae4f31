"""Batch-robustness diagnostics (cellbench's own, not in the reference; docs/metrics.md,
"Batch diagnostics").

Two questions about the *aligned* well embeddings:

1. **Batch predictability** - can the batch (experiment) be told from the control wells alone?
   Controls carry no biology, so whatever separates them is batch effect. Reported as the
   stratified k-fold cross-validated accuracy of a multinomial logistic regression
   (scikit-learn) next to chance (the most frequent batch's share). Lower is better; equal to
   chance is ideal. Controls are subsampled (at most ``max_wells``, stratified by batch) to keep
   the cost bounded on release-sized data. The alignment is **cross-fitted**
   (:func:`cross_fitted_batch_predictability`): each batch's controls are split in two halves,
   the alignment is fitted on one half and the batch is predicted from the other, then the
   halves swap. Scoring the controls the alignment was fitted on would be circular: each batch's
   controls are centred exactly, a held-out fold then sits opposite its training fold and the
   accuracy falls *below* chance. Cross-fitting reads what a user gets: an alignment estimated
   from finite controls leaves each batch slightly off-centre (estimation error common to the
   batch), so values somewhat above chance appear even for features with no batch effect;
   compare models on the same screen rather than against chance alone.
2. **Replicate consistency across batches** - is a perturbation's profile in one batch closer
   to the same perturbation's profile in another batch than to other perturbations measured in
   other batches? Per ``(perturbation, concentration, batch)`` the wells are averaged; for every
   perturbation present in >= 2 batches its score is the mean cosine between its batch profiles
   in different batches. The null is the same statistic for random pairs of profiles of
   *different* perturbations from different batches. Reported: the fraction of perturbations
   whose score exceeds the null's 95th percentile (chance 0.05; higher is better) and the mean
   replicate and null cosines.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.preprocessing import normalize


def batch_predictability(
    aligned: np.ndarray,
    batch: np.ndarray,
    control: np.ndarray,
    *,
    max_wells: int = 2000,
    folds: int = 5,
    seed: int = 0,
) -> dict:
    """Cross-validated accuracy of predicting the batch from aligned control wells."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    idx = np.flatnonzero(np.asarray(control, dtype=bool))
    labels = np.asarray(batch).astype(str)[idx]
    names, counts = np.unique(labels, return_counts=True)
    if len(names) < 2:
        return {"skipped": "fewer than two batches with control wells"}
    rng = np.random.default_rng(seed)
    if len(idx) > max_wells:  # stratified subsample: the same share of each batch
        keep = []
        share = max_wells / len(idx)
        for name in names:
            members = idx[labels == name]
            k = max(min(len(members), folds), int(round(share * len(members))))
            keep.append(rng.choice(members, k, replace=False))
        idx = np.sort(np.concatenate(keep))
        labels = np.asarray(batch).astype(str)[idx]
        names, counts = np.unique(labels, return_counts=True)
    k = int(min(folds, counts.min()))
    if k < 2:
        return {"skipped": "a batch has a single control well; cannot cross-validate"}
    X = np.asarray(aligned[idx], dtype=np.float64)
    model = LogisticRegression(max_iter=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings on tiny fixtures
        scores = cross_val_score(
            model, X, labels, cv=StratifiedKFold(k, shuffle=True, random_state=seed)
        )
    return {
        "batch_accuracy": float(scores.mean()),
        "batch_accuracy_std": float(scores.std()),
        "batch_chance": float(counts.max() / counts.sum()),
        "n_control_wells": int(len(idx)),
        "n_batches": int(len(names)),
        "folds": k,
    }


def replicate_consistency(
    aligned: np.ndarray,
    wells: pl.DataFrame,
    *,
    max_perturbations: int = 2000,
    null_size: int = 20000,
    seed: int = 0,
) -> dict:
    """Cross-batch replicate consistency of non-control perturbations (see module docstring)."""
    units = (
        wells.with_row_index("_row")
        .filter(~pl.col("is_control"))
        .with_columns(pl.col("concentration").fill_null(-1.0))
    )
    keys = ["perturbation_type", "perturbation", "concentration"]
    table = units.select(*keys, "batch").unique().sort([*keys, "batch"]).with_row_index("_unit")
    units = units.join(table, on=[*keys, "batch"], how="left")
    n_units = table.height
    if n_units < 3:
        return {"skipped": "too few perturbations to compare across batches"}
    rows = units["_row"].to_numpy()
    unit = units["_unit"].to_numpy()
    counts = np.bincount(unit, minlength=n_units).astype(np.float64)
    # per-unit means in the wells' dtype (no float64 copy of a release-sized table)
    weights = sp.csr_matrix(
        (1.0 / counts[unit], (unit, rows)), shape=(n_units, len(aligned)), dtype=aligned.dtype
    )
    profiles = normalize(np.asarray(weights @ aligned, dtype=np.float64))
    # table is sorted by the keys, so a running count of new keys is the perturbation code
    pert = table.select(pl.struct(keys).is_first_distinct().cum_sum() - 1).to_series().to_numpy()
    ubatch = table["batch"].to_numpy().astype(str)
    _, batch_code = np.unique(ubatch, return_inverse=True)
    # perturbations present in >= 2 batches
    n_batches = np.bincount(pert)
    multi = np.flatnonzero(n_batches >= 2)
    if len(multi) == 0:
        return {"skipped": "no perturbation is measured in two or more batches"}
    if len(n_batches) < 2:
        return {"skipped": "a single perturbation: no null to compare with"}
    rng = np.random.default_rng(seed)
    if len(multi) > max_perturbations:
        multi = np.sort(rng.choice(multi, max_perturbations, replace=False))
    order = np.argsort(pert, kind="stable")
    starts = np.searchsorted(pert[order], np.arange(len(n_batches) + 1))
    scores = np.empty(len(multi))
    pair_counts = np.empty(len(multi), dtype=np.int64)
    for t, p in enumerate(multi):
        members = order[starts[p] : starts[p + 1]]
        sims = profiles[members] @ profiles[members].T
        iu = np.triu_indices(len(members), k=1)
        scores[t] = sims[iu].mean()
        pair_counts[t] = len(iu[0])
    # null: mean cosine of as many random cross-perturbation, cross-batch pairs
    n_null = min(null_size, max(1000, len(multi)))
    sizes = rng.choice(pair_counts, n_null)
    a = rng.integers(0, n_units, size=int(sizes.sum()))
    b = rng.integers(0, n_units, size=int(sizes.sum()))
    bad = (pert[a] == pert[b]) | (batch_code[a] == batch_code[b])
    for _ in range(50):  # redraw the pairs that are replicates or share a batch
        if not bad.any():
            break
        b[bad] = rng.integers(0, n_units, size=int(bad.sum()))
        bad = (pert[a] == pert[b]) | (batch_code[a] == batch_code[b])
    pair_sims = np.einsum("ij,ij->i", profiles[a], profiles[b])
    starts_null = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    good = ~bad  # pairs still invalid after the redraws (tiny designs) are left out
    n_good = np.add.reduceat(good.astype(np.float64), starts_null)
    null = (
        np.add.reduceat(np.where(good, pair_sims, 0.0), starts_null)[n_good > 0]
        / n_good[n_good > 0]
    )
    if len(null) == 0:
        return {"skipped": "no pair of different perturbations in different batches"}
    threshold = float(np.quantile(null, 0.95))
    return {
        "replicate_consistency": float(np.mean(scores > threshold)),
        "replicate_consistency_chance": 0.05,
        "replicate_cosine_mean": float(scores.mean()),
        "null_cosine_mean": float(null.mean()),
        "n_perturbations": int(len(multi)),
    }


def cross_fitted_batch_predictability(
    features: np.ndarray, wells: pl.DataFrame, align: str, *, seed: int = 0
) -> dict:
    """Batch predictability of control wells the alignment was *not* fitted on.

    Each batch's controls are split at random into halves A and B; ``align`` is fitted with A
    as the controls and the batch is predicted (cross-validated, :func:`batch_predictability`)
    from the aligned B wells; then A and B swap. The two accuracies are averaged.
    """
    from cellbench.maps.align import make_aligner

    batch = wells["batch"].cast(pl.Utf8).to_numpy()
    control = wells["is_control"].fill_null(False).to_numpy().astype(bool)
    rng = np.random.default_rng([seed, 11])
    half = np.zeros(len(batch), dtype=np.int8) - 1  # -1: not a control
    for name in np.unique(batch):
        members = np.flatnonzero((batch == name) & control)
        if len(members) < 4:
            return {
                "skipped": f"batch '{name}' has {len(members)} control wells; cross-fitting "
                "needs at least 4 per batch"
            }
        members = rng.permutation(members)
        half[members[: len(members) // 2]] = 0
        half[members[len(members) // 2 :]] = 1
    results = []
    for fit_half in (0, 1):
        aligner = make_aligner(align).fit(features, batch, half == fit_half)
        held = np.flatnonzero(half == 1 - fit_half)
        aligned = aligner.transform(np.asarray(features)[held], batch[held])
        results.append(
            batch_predictability(aligned, batch[held], np.ones(len(held), bool), seed=seed)
        )
    if any("skipped" in r for r in results):
        return next(r for r in results if "skipped" in r)
    acc = [r["batch_accuracy"] for r in results]
    return {
        "batch_accuracy": float(np.mean(acc)),
        "batch_accuracy_halves": [float(a) for a in acc],
        "batch_chance": float(np.mean([r["batch_chance"] for r in results])),
        "n_control_wells": int(sum(r["n_control_wells"] for r in results)),
        "n_batches": results[0]["n_batches"],
        "folds": results[0]["folds"],
        "fit": "cross-fitted: alignment fitted on the other half of each batch's controls",
    }


def batch_diagnostics(
    aligned: np.ndarray,
    wells: pl.DataFrame,
    *,
    seed: int = 0,
    features: np.ndarray | None = None,
    align: str | None = None,
) -> dict:
    """Both diagnostics in one dict (each may carry a ``skipped`` reason instead of numbers).

    With the raw well ``features`` and the ``align`` method, batch predictability is
    cross-fitted (the recommended reading); without them it is scored on the ``aligned``
    controls themselves, which the alignment was fitted on (``fit: "in-sample"``).
    """
    if features is not None and align is not None and align != "none":
        predictability = cross_fitted_batch_predictability(features, wells, align, seed=seed)
    else:
        predictability = batch_predictability(
            aligned, wells["batch"].to_numpy(), wells["is_control"].to_numpy(), seed=seed
        )
        if "skipped" not in predictability:
            predictability["fit"] = "no alignment" if align == "none" else "in-sample"
    return {
        "batch_predictability": predictability,
        "replicate_consistency": replicate_consistency(aligned, wells, seed=seed),
    }
