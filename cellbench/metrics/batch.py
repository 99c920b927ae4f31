"""Batch-robustness diagnostics (cellbench's own, evaluation.md §4 — not in the reference).

Two questions about the *aligned* well embeddings:

1. **Batch predictability** - can the batch (experiment) be told from the control wells alone?
   Controls carry no biology, so whatever separates them is batch effect. Reported as the
   stratified k-fold cross-validated accuracy of a multinomial logistic regression
   (scikit-learn) next to chance (the most frequent batch's share). Lower is better; equal to
   chance is ideal. Controls are subsampled (at most ``max_wells``, stratified by batch) to keep
   the cost bounded on release-sized data. Caveat: the alignment was fitted on these same
   controls, so each batch's controls are centred exactly; a held-out fold then sits opposite its
   training fold and accuracy can fall *below* chance. Read values at or below chance as "no
   batch signal detectable in the controls".
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
        scores = cross_val_score(model, X, labels, cv=StratifiedKFold(k, shuffle=True, random_state=seed))
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
    null = np.add.reduceat(np.where(good, pair_sims, 0.0), starts_null)[n_good > 0] / n_good[n_good > 0]
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


def batch_diagnostics(aligned: np.ndarray, wells: pl.DataFrame, *, seed: int = 0) -> dict:
    """Both diagnostics in one dict (each may carry a ``skipped`` reason instead of numbers)."""
    return {
        "batch_predictability": batch_predictability(
            aligned, wells["batch"].to_numpy(), wells["is_control"].to_numpy(), seed=seed
        ),
        "replicate_consistency": replicate_consistency(aligned, wells, seed=seed),
    }
