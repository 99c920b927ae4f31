"""Batch diagnostics respond to what they claim to measure: batch effects and replicate signal."""

from __future__ import annotations

import numpy as np
import polars as pl

from cellbench.maps.align import CenterScale
from cellbench.metrics.batch import batch_diagnostics, batch_predictability, replicate_consistency


def _screen(seed=0, n_batches=4, n_perts=30, n_ctrl=12, d=10, signal=0.0, batch_shift=3.0):
    rng = np.random.default_rng(seed)
    effects = rng.normal(size=(n_perts, d))
    rows, X = [], []
    for b in range(n_batches):
        shift = rng.normal(scale=batch_shift, size=d)
        for p in range(n_perts):
            rows.append((f"w{b}_{p}", f"exp-{b}", "1", f"P{p}", f"gene{p}", "CRISPR", None, False))
            X.append(shift + signal * effects[p] + rng.normal(size=d))
        for c in range(n_ctrl):
            rows.append(
                (f"w{b}_c{c}", f"exp-{b}", "1", f"C{c}", "EMPTY_control", "CRISPR", None, True)
            )
            X.append(shift + rng.normal(size=d))
    cols = [
        "well_id",
        "batch",
        "plate",
        "well",
        "perturbation",
        "perturbation_type",
        "concentration",
        "is_control",
    ]
    wells = pl.DataFrame(rows, schema=cols, orient="row").with_columns(
        pl.col("concentration").cast(pl.Float64)
    )
    return wells, np.asarray(X)


def test_batch_is_predictable_before_alignment_and_not_after():
    wells, X = _screen(batch_shift=3.0)
    batch, control = wells["batch"].to_numpy(), wells["is_control"].to_numpy()
    raw = batch_predictability(X, batch, control)
    assert raw["batch_chance"] == 0.25 and raw["batch_accuracy"] > 0.9
    aligned = CenterScale().fit_transform(X, batch, control)
    after = batch_predictability(aligned, batch, control)
    assert after["batch_accuracy"] < raw["batch_chance"] + 0.2


def test_replicate_consistency_sees_shared_signal():
    wells, X = _screen(signal=3.0)
    aligned = CenterScale().fit_transform(
        X, wells["batch"].to_numpy(), wells["is_control"].to_numpy()
    )
    strong = replicate_consistency(aligned, wells)
    assert strong["n_perturbations"] == 30 and strong["replicate_consistency"] > 0.9
    assert strong["replicate_cosine_mean"] > strong["null_cosine_mean"] + 0.3
    wells, X = _screen(seed=1, signal=0.0)
    aligned = CenterScale().fit_transform(
        X, wells["batch"].to_numpy(), wells["is_control"].to_numpy()
    )
    none = replicate_consistency(aligned, wells)
    assert none["replicate_consistency"] < 0.3


def test_single_batch_is_skipped_with_a_reason():
    wells, X = _screen(n_batches=1)
    out = batch_diagnostics(X, wells)
    assert "skipped" in out["batch_predictability"] and "skipped" in out["replicate_consistency"]


def test_cross_fitted_predictability_is_not_pushed_below_chance():
    """Scoring the controls the alignment was fitted on is circular (below chance); the
    cross-fitted score is not, and it still sees a batch effect left unaligned."""
    from cellbench.maps.build import align_wells

    in_sample, cross = [], []
    for seed in range(4):
        wells, X = _screen(seed=seed, batch_shift=3.0, n_ctrl=16)
        aligned = align_wells(X, wells, "centerscale")
        a = batch_diagnostics(aligned, wells)["batch_predictability"]
        b = batch_diagnostics(aligned, wells, features=X, align="centerscale")[
            "batch_predictability"
        ]
        assert a["fit"] == "in-sample" and b["fit"].startswith("cross-fitted")
        assert b["n_control_wells"] == 4 * 16 and len(b["batch_accuracy_halves"]) == 2
        in_sample.append(a["batch_accuracy"])
        cross.append(b["batch_accuracy"])
        chance = b["batch_chance"]
    assert np.mean(in_sample) < chance - 0.15  # the circular reading's artefact
    assert np.mean(cross) > chance - 0.05
    # without alignment the same batch shift is found almost perfectly
    wells, X = _screen(seed=0, batch_shift=3.0, n_ctrl=16)
    raw = batch_diagnostics(X, wells, features=X, align="none")["batch_predictability"]
    assert raw["fit"] == "no alignment" and raw["batch_accuracy"] > 0.9


def test_cross_fitting_needs_enough_controls_per_batch():
    wells, X = _screen(n_ctrl=3)
    out = batch_diagnostics(X, wells, features=X, align="centerscale")["batch_predictability"]
    assert "skipped" in out and "at least 4" in out["skipped"]
