"""InfoNCE positive control: the loss against a hand computation, and it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_fakes import FakeDataset, fixed_batch, overfit_losses  # noqa: I001

from cellbench.methods.infonce import info_nce
from cellbench.train.methods import build_method
from cellbench.train.presets import resolve


def _ce(logits, idx):
    row = logits - logits.max()
    return -(row[idx] - np.log(np.exp(row).sum()))


def test_info_nce_by_hand():
    rng = np.random.default_rng(0)
    a, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    tau = 0.1
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    s = an @ tn.T / tau
    expected = 0.5 * (
        np.mean([_ce(s[i], i) for i in range(4)]) + np.mean([_ce(s[:, i], i) for i in range(4)])
    )
    loss, _ = info_nce(torch.tensor(a), torch.tensor(t), tau)
    assert float(loss) == pytest.approx(expected, rel=1e-9)
    # rows 0 and 1 share a perturbation: they are not each other's negatives
    labels = torch.tensor([5, 5, 1, 2])
    s_masked = s.copy()
    s_masked[0, 1] = s_masked[1, 0] = -np.inf
    expected = 0.5 * (
        np.mean([_ce(s_masked[i], i) for i in range(4)])
        + np.mean([_ce(s_masked[:, i], i) for i in range(4)])
    )
    loss, _ = info_nce(torch.tensor(a), torch.tensor(t), tau, labels)
    assert float(loss) == pytest.approx(expected, rel=1e-9)


def test_infonce_learns_a_fixed_batch():
    ds = FakeDataset(n_pert=8, wells_per_pert=3)
    torch.manual_seed(0)
    method = build_method("infonce-cross", resolve("tiny"), len(ds.channels))
    losses = overfit_losses(method, fixed_batch(ds), steps=20, lr=2e-3)
    assert losses[-1] < 0.5 * losses[0]
