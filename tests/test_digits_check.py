"""A known-learnable check independent of the cell simulator (experiments/digits_check.py).

Two random crops of the same handwritten digit are a pair the real sampler, the real MSN method
and the real training loop train on. MSN with the quick recipe must leave its uniform fixed
point (CE / log K clearly below 1) and identify crop pairs better than the untrained network.
With the former quick recipe's four masked 16 px focal views (4 patch tokens, 3 kept) MSN stays
at the fixed point on this task, so this test fails for that recipe.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = 200
EVAL_EVERY = 100


@pytest.fixture(scope="module")
def digits():
    from experiments.digits_check import DigitsDataset

    return DigitsDataset()


def test_digits_dataset_is_the_pair_contract(digits):
    """Every digit is its own perturbation with one well and one site, so the real single-well
    PairSampler pairs each image with itself (the two views differ only by their crops)."""
    import numpy as np

    from cellbench.data.sampling import PairSampler

    images = digits.load_all()
    assert images.shape == (1797, 1, 40, 40) and images.dtype == np.uint8
    assert images[:, :, :4].max() == 0 and images[:, :, 4:36, 4:36].max() == 255
    batch = PairSampler(digits, cross_well=False, batch_size=64, seed=0).batch_at(3)
    assert np.array_equal(batch.anchor, batch.target)
    assert len(set(batch.perturbation_index.tolist())) == 64


@pytest.mark.slow
def test_msn_quick_recipe_learns_on_digits(digits):
    from experiments.digits_check import run

    torch.set_num_threads(1)
    curve = run("single-well-msn", steps=STEPS, eval_every=EVAL_EVERY, dataset=digits, n_eval=384)
    untrained, end = curve[0], curve[-1]
    assert [r["step"] for r in curve] == [0, EVAL_EVERY, STEPS]
    assert end["ce_over_log_k"] < 0.95, curve  # left the uniform fixed point
    assert end["me_max"] < 0.2, curve  # ... without collapsing onto a few prototypes
    assert end["crop_pair_id"] > untrained["crop_pair_id"] + 0.02, curve
