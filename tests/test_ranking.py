"""Vectorised AP / ROC-AUC equal scikit-learn's, ties included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from cellbench.metrics.ranking import ap_auc_rows, average_precision_rows, roc_auc_rows


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 8),
    length=st.integers(2, 40),
    levels=st.sampled_from([2, 3, 5, 1000, 0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_equal_to_sklearn_with_ties(rows, length, levels, seed):
    rng = np.random.default_rng(seed)
    scores = (
        rng.random((rows, length))
        if levels == 0
        else rng.integers(0, levels, (rows, length)) / levels
    )
    labels = rng.random((rows, length)) < rng.uniform(0.1, 0.9)
    labels[:, 0], labels[:, 1] = True, False  # both classes in every row
    ap, auc = ap_auc_rows(scores, labels)
    for i in range(rows):
        assert abs(ap[i] - average_precision_score(labels[i], scores[i])) < 1e-12
        assert abs(auc[i] - roc_auc_score(labels[i], scores[i])) < 1e-12


def test_hand_computed_case_with_a_tie():
    # scores 0.9(+) 0.5(+) 0.5(-) 0.1(-): AP = 1/2*1 + 1/2*(2/3) = 5/6; AUC = (1 + 1 + 1 + 0.5)/4
    scores = np.array([[0.9, 0.5, 0.5, 0.1]])
    labels = np.array([[1, 1, 0, 0]])
    np.testing.assert_allclose(average_precision_rows(scores, labels), [5 / 6])
    np.testing.assert_allclose(roc_auc_rows(scores, labels), [3.5 / 4])


def test_single_class_rows_are_nan():
    ap, auc = ap_auc_rows(np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[1, 1], [0, 1]]))
    assert np.isnan(ap[0]) and np.isnan(auc[0]) and auc[1] == 1.0
