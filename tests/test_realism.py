"""The realism report's model-free measurements, on cases whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from cellbench.metrics.activity import phenotypic_activity
from cellbench.report import realism


def _replicates(n_perts: int, n_reps: int, n_ctrl: int, separated: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    d = 16
    centres = rng.standard_normal((n_perts, d)) * (10.0 if separated else 0.0)
    x = np.concatenate(
        [
            np.repeat(centres, n_reps, 0) + rng.standard_normal((n_perts * n_reps, d)) * 0.1
            if separated
            else rng.standard_normal((n_perts * n_reps, d)),
            rng.standard_normal((n_ctrl, d)),
        ]
    )
    pert = np.array([f"g{i}" for i in range(n_perts) for _ in range(n_reps)] + ["ctrl"] * n_ctrl)
    ctrl = np.array([False] * (n_perts * n_reps) + [True] * n_ctrl)
    return x, pert, ctrl


def test_activity_is_one_on_perfectly_separated_replicates():
    x, pert, ctrl = _replicates(30, 4, 40, separated=True)
    res = phenotypic_activity(x, pert, ctrl, null_size=2000)
    assert res.fraction_retrieved == 1.0
    assert np.allclose(res.per_perturbation["mean_average_precision"].to_numpy(), 1.0)
    assert res.per_perturbation.height == 30


def test_activity_is_near_zero_on_pure_noise():
    x, pert, ctrl = _replicates(60, 3, 60, separated=False, seed=1)
    res = phenotypic_activity(x, pert, ctrl, null_size=2000)
    assert res.fraction_retrieved <= 0.05


def test_activity_equals_copairs_called_directly():
    """The wrapper is copairs' own recipe (reference index per control), nothing else."""
    import pandas as pd
    from copairs.map import average_precision, mean_average_precision

    rng = np.random.default_rng(3)
    x, pert, ctrl = _replicates(20, 3, 30, separated=True, seed=2)
    x = x + rng.standard_normal(x.shape) * 20.0  # partly separated: p-values are informative
    res = phenotypic_activity(x, pert, ctrl, null_size=5000, seed=7)
    meta = pd.DataFrame({"p": pert, "ref": np.where(ctrl, np.arange(len(pert)), -1)})
    ap = average_precision(meta, x, ["p", "ref"], [], [], ["p", "ref"], progress_bar=False)
    ref = mean_average_precision(
        ap[ap["ref"] == -1],
        ["p", "ref"],
        null_size=5000,
        threshold=0.05,
        seed=7,
        progress_bar=False,
    ).sort_values("p")
    got = res.per_perturbation.sort("perturbation")
    assert got["perturbation"].to_list() == ref["p"].tolist()
    np.testing.assert_allclose(
        got["mean_average_precision"].to_numpy(), ref["mean_average_precision"]
    )
    np.testing.assert_allclose(got["corrected_p_value"].to_numpy(), ref["corrected_p_value"])
    assert 0 < res.fraction_retrieved < 1


def test_activity_refuses_inputs_without_controls_or_replicates():
    from cellbench.errors import InputError

    x, pert, ctrl = _replicates(5, 3, 5, separated=True)
    with pytest.raises(InputError, match="negative-control"):
        phenotypic_activity(x, pert, np.zeros_like(ctrl))
    with pytest.raises(InputError, match="two or more wells"):
        phenotypic_activity(x[::3], pert[::3], ctrl[::3] & False | (pert[::3] == "ctrl"))


def _drawn_field(centres, radius=2.5, h=64):
    yy, xx = np.mgrid[:h, :h]
    img = np.full((h, h), 10, dtype=np.uint8)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200
    return img


def test_nuclei_are_counted_on_a_drawn_field():
    centres = [(8 + 12 * i, 8 + 12 * j) for i in range(5) for j in range(5)]
    labels, n = realism.segment_nuclei(_drawn_field(centres))
    assert n == 25
    assert labels.max() == 25


def test_cells_per_view_counts_centroids_inside_the_crop():
    centres = [(4 + 8 * i, 4 + 8 * j) for i in range(8) for j in range(8)]  # 64 nuclei, 8 px grid
    images = _drawn_field(centres, radius=1.5)[None, None]
    # a 32 px view of an 8 px grid always holds exactly 4 x 4 centroids
    assert realism.cells_per_view(images, 0, crop=32, n_views=20, seed=0) == 16.0


def test_robust_z_centres_each_plate_on_its_controls():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)) + np.repeat([[0.0], [100.0]], 20, 0)
    plate = np.repeat(["a", "b"], 20)
    ctrl = np.tile([True] * 10 + [False] * 10, 2)
    z = realism.robust_z(x, plate, ctrl)
    for p in ("a", "b"):
        assert np.allclose(np.median(z[(plate == p) & ctrl], axis=0), 0.0)


def test_targets_report_met_and_unmet():
    m = {
        "nuclei_per_site_segmented": 70.0,
        "cells_per_view": 10.0,
        "activity_handcrafted": 0.5,
        "activity_latent": 0.6,
        "handcrafted_over_oracle": 0.9,
        "batch_predictability_raw": 0.95,
        "vit_corum": None,
        "handcrafted_corum": 0.3,
    }
    met = {r["key"]: r["met"] for r in realism.verdicts(m, "quick")}
    assert met == {
        "nuclei_per_site_segmented": True,
        "cells_per_view": False,
        "activity_handcrafted": True,
        "activity_latent": True,
        "handcrafted_over_oracle": False,
        "batch_predictability_raw": True,
        "vit_corum": None,
    }
    assert {r["key"]: r["met"] for r in realism.verdicts(m, "full")}[
        "nuclei_per_site_segmented"
    ] is False
