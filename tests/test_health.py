"""Representation-health metrics on hand-built cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cellbench.metrics.health import (
    effective_rank,
    frozen,
    frozen_loss_warning,
    pair_identification,
    prototype_usage,
    uniform_collapse_warning,
    well_shortcut_rate,
)


def test_well_shortcut_rate_hand_built():
    # wells A, B (2 sites each), C (1 site: excluded, it cannot have a same-well neighbour)
    # site 0 (A) nearest: site 1 (A) -> hit;  site 1 (A) nearest: site 0 -> hit
    # site 2 (B) nearest: site 4 (C) -> miss; site 3 (B) nearest: site 2 (B) -> hit
    emb = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.99, 0.1, 0.0],
            [0.0, 1.0, 0.2],  # closest to site 4
            [0.0, 1.0, -0.6],  # closest to site 2
            [0.0, 1.0, 0.25],
        ]
    )
    wells = ["A", "A", "B", "B", "C"]
    assert well_shortcut_rate(emb, wells) == pytest.approx(3 / 4)
    # cosine, not Euclidean: scaling a site changes nothing
    scaled = emb * np.array([[1], [100], [0.01], [5], [2]])
    assert well_shortcut_rate(scaled, wells) == pytest.approx(3 / 4)


def test_well_shortcut_rate_extremes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 8))
    wells = np.repeat(np.arange(10), 3)
    tight = centres[wells] + 0.01 * rng.normal(size=(30, 8))
    assert well_shortcut_rate(tight, wells) == 1.0
    # wells whose sites are identical copies across wells: no site finds its own well first
    shuffled_wells = np.tile(np.arange(10), 3)
    assert well_shortcut_rate(tight, shuffled_wells) == 0.0
    with pytest.raises(ValueError):
        well_shortcut_rate(tight, np.arange(30))


def test_effective_rank_known_spectra():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    # centred data with 4 equal singular values -> effective rank 4 exactly
    basis = q[:, :4]
    coeff = np.vstack([np.eye(4), -np.eye(4)]) * 3.0  # centred, equal energy per direction
    x = coeff @ basis.T
    assert effective_rank(x) == pytest.approx(4.0, rel=1e-9)
    # collapsed to one direction -> 1
    line = np.outer(np.arange(10) - 4.5, q[:, 0])
    assert effective_rank(line) == pytest.approx(1.0, rel=1e-9)
    # singular values (3, 1): p = (0.75, 0.25), erank = exp(H)
    x2 = np.vstack([np.eye(2) * [3, 1], -np.eye(2) * [3, 1]]) / math.sqrt(2)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_rank(x2) == pytest.approx(math.exp(h), rel=1e-9)


def test_prototype_usage_hand_built():
    probs = np.array(
        [
            [0.7, 0.2, 0.1, 0.0],
            [0.6, 0.3, 0.1, 0.0],
            [0.1, 0.8, 0.1, 0.0],
        ]
    )
    u = prototype_usage(probs)
    assert u["fraction_used"] == pytest.approx(2 / 4)
    mean = np.array([1.4, 1.3, 0.3]) / 3
    assert u["usage_entropy"] == pytest.approx(-(mean * np.log(mean)).sum())
    assert u["max_entropy"] == pytest.approx(math.log(4))


def test_frozen_loss_detection():
    moving = list(np.linspace(2.0, 1.0, 30))
    flat = [1.467] * 30
    assert not frozen(moving) and frozen(flat) and not frozen(flat[:5])
    assert frozen_loss_warning({"ce": flat, "me_max": [0.742] * 30}) is not None
    assert frozen_loss_warning({"ce": moving, "me_max": [0.742] * 30}) is None


def test_uniform_collapse_detection():
    assert uniform_collapse_warning([0.999] * 25) is not None
    assert uniform_collapse_warning([0.999] * 24 + [0.9]) is None  # left the uniform point
    assert uniform_collapse_warning([0.999] * 5) is None  # too early to tell
    assert uniform_collapse_warning([1.2] * 25) is None  # CE above log K: wrong, not uniform


def test_pair_identification_hand_built_and_chance():
    # hand-built: 3 pairs, partner 0 and 1 found, anchor 2 lies nearest target 1
    anchor = np.array([[0.0, 0.0], [10.0, 0.0], [9.0, 1.0]])
    target = np.array([[0.5, 0.0], [9.5, 0.5], [0.0, 9.0]])
    assert pair_identification(anchor, target, standardize=False) == pytest.approx(2 / 3)
    # identical partners are always found; independent ones at chance (1/64) on average
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8))
    assert pair_identification(x, x) == 1.0
    acc = np.mean(
        [
            pair_identification(rng.normal(size=(64, 8)), rng.normal(size=(64, 8)))
            for _ in range(200)
        ]
    )
    assert abs(acc - 1 / 64) < 0.01
    with pytest.raises(ValueError):
        pair_identification(x, x[:10])
