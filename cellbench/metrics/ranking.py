"""Average precision and ROC-AUC of many score vectors at once.

The compound-gene benchmark scores ~500 compounds x 9 concentration rows x 100 seeds (and as
many random baselines): ~10^6 calls of ``sklearn.metrics.average_precision_score`` /
``roc_auc_score`` if done one by one. Here each row of a ``(R, L)`` score matrix is one ranking
problem and both metrics come from a single row-wise sort.

Ties are handled exactly as scikit-learn does:

* AP = ``sum_k (R_k - R_{k-1}) P_k`` over the *distinct* score thresholds ``k`` (descending), i.e.
  every positive contributes the precision at the end of its group of tied scores
  (``precision_recall_curve`` + ``average_precision_score``);
* AUC = the area under the ROC step curve with tied scores joined by a straight segment, i.e.
  every (positive, negative) pair counts 1 when the positive scores higher and 1/2 when tied
  (``roc_auc_score``).

The values equal scikit-learn's up to float rounding of the summation order (tested at 1e-12 on
random inputs with ties). A row without positives or without negatives gives NaN (scikit-learn
warns or raises there).
"""

from __future__ import annotations

import numpy as np


def _group_bounds(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every position of row-wise descending scores: index of the first and the last
    position of its group of tied scores."""
    r, n = sorted_scores.shape
    pos = np.broadcast_to(np.arange(n), (r, n))
    new = np.ones((r, n), dtype=bool)
    new[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    end = np.ones((r, n), dtype=bool)
    end[:, :-1] = new[:, 1:]
    start_idx = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    end_idx = np.minimum.accumulate(np.where(end, pos, n)[:, ::-1], axis=1)[:, ::-1]
    return start_idx, end_idx


def ap_auc_rows(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC of each row of ``scores`` (``(R, L)``) against the binary
    ``labels`` (same shape). Returns two ``(R,)`` float64 arrays."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError("scores and labels must be 2-D arrays of the same shape")
    r, n = scores.shape
    if r == 0:
        return np.empty(0), np.empty(0)
    order = np.argsort(-scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, axis=1)
    y = np.take_along_axis(labels, order, axis=1).astype(np.float64)
    tp = np.cumsum(y, axis=1)
    start_idx, end_idx = _group_bounds(s)
    n_pos = tp[:, -1]
    n_neg = n - n_pos
    tp_end = np.take_along_axis(tp, end_idx, axis=1)
    precision_end = tp_end / (end_idx + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.sum(y * precision_end, axis=1) / n_pos
        tp_before = np.take_along_axis(tp - y, start_idx, axis=1)
        auc = np.sum((1.0 - y) * (tp_before + tp_end), axis=1) / (2.0 * n_pos * n_neg)
    bad = (n_pos == 0) | (n_neg == 0)
    ap[bad] = np.nan
    auc[bad] = np.nan
    return ap, auc


def average_precision_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row-wise ``sklearn.metrics.average_precision_score``."""
    return ap_auc_rows(scores, labels)[0]


def roc_auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row-wise ``sklearn.metrics.roc_auc_score``."""
    return ap_auc_rows(scores, labels)[1]
