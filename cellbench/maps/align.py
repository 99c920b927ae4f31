"""Batch alignment fitted on control wells (docs/metrics.md, "Alignment"), scikit-learn style.

Every aligner is fitted on the *control* wells only (``EMPTY_control``), with the batch
(``experiment_name``) of each well, and then transforms all wells of the batches it saw::

    aligner = PCACenterScale().fit(X, batch=batch, control=is_control)
    Z = aligner.transform(X, batch=batch)

A batch without control wells cannot be aligned: ``fit`` raises an :class:`InputError` naming
it, and ``transform`` refuses batches that ``fit`` never saw.

* :class:`CenterScale` - per batch, a StandardScaler fitted on that batch's controls
  (``efaar_benchmarking.efaar.centerscale_on_controls`` with a batch column).
* :class:`PCACenterScale` - the RxRx3-core reference: PCA (all components) fitted on the
  controls of all batches, applied to every well, then :class:`CenterScale` in PCA space.
* :class:`TVN` - typical variation normalisation as in ``efaar.tvn_on_controls``: centre-scale on
  all controls, PCA on controls, centre-scale again, then per batch multiply by
  ``(cov(controls_b) + 0.5 I)^(-1/2)`` (CORAL). The inverse square root of that symmetric
  positive-definite matrix is taken by eigendecomposition (the same matrix as
  ``scipy.linalg.fractional_matrix_power(C, -0.5)``, computed stably and fast).
* :class:`Spherize` - per batch ZCA whitening on controls, ``W = U (S + 1e-2)^(-1/2) U^T`` of the
  control covariance, after centring on the control mean (Moshkov et al. 2024's "sphering"
  with regularisation 1e-2).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from cellbench.errors import InputError

ALIGNMENTS: tuple[str, ...] = ("pca-centerscale", "centerscale", "tvn", "spherize", "none")


def _groups(batch: np.ndarray) -> dict[str, np.ndarray]:
    """``{batch: row indices}`` in sorted batch order."""
    batch = np.asarray(batch).astype(str)
    names, inverse = np.unique(batch, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(names) + 1))
    return {str(n): order[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)}


def _check_controls(name: str, batch: np.ndarray, control: np.ndarray) -> dict[str, np.ndarray]:
    groups = _groups(batch)
    control = np.asarray(control, dtype=bool)
    missing = [b for b, idx in groups.items() if not control[idx].any()]
    if missing:
        shown = ", ".join(f"'{b}'" for b in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"batch(es) {shown} ha{'ve' if len(missing) > 1 else 's'} no control wells (treatment EMPTY_control), so alignment "
            f"'{name}' cannot be fitted on it. Fix: include that batch's EMPTY_control wells, "
            "drop the batch, or use --align none."
        )
    return groups


class _ControlAligner:
    """Shared plumbing: input checks, per-batch application, unseen-batch errors."""

    name = "base"

    def fit(self, X: np.ndarray, batch: np.ndarray, control: np.ndarray) -> _ControlAligner:
        X = np.asarray(X)
        if len(batch) != len(X) or len(control) != len(X):
            raise ValueError("X, batch and control must have the same number of rows")
        groups = _check_controls(self.name, batch, control)
        self._fit(X, groups, np.asarray(control, dtype=bool))
        self.batches_ = tuple(groups)
        return self

    def transform(self, X: np.ndarray, batch: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        groups = _groups(batch)
        unseen = [b for b in groups if b not in self.batches_]
        if unseen:
            raise InputError(
                f"batch '{unseen[0]}' was not seen when the '{self.name}' alignment was fitted. "
                "Fix: fit on all batches (with their control wells) before transforming."
            )
        return self._transform(X, groups)

    def fit_transform(self, X: np.ndarray, batch: np.ndarray, control: np.ndarray) -> np.ndarray:
        return self.fit(X, batch, control).transform(X, batch)

    # subclasses
    def _fit(self, X, groups, control) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform(self, X, groups) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class Identity(_ControlAligner):
    """No alignment (``--align none``); needs no controls."""

    name = "none"

    def fit(self, X, batch, control):
        self.batches_ = tuple(_groups(batch))
        return self

    def _transform(self, X, groups):
        return X


class CenterScale(_ControlAligner):
    """Per batch: StandardScaler fitted on the batch's control wells, applied to the batch."""

    name = "centerscale"

    def _fit(self, X, groups, control):
        self.scalers_ = {b: StandardScaler().fit(X[idx[control[idx]]]) for b, idx in groups.items()}

    def _transform(self, X, groups):
        out = np.empty_like(X)
        for b, idx in groups.items():
            out[idx] = self.scalers_[b].transform(X[idx])
        return out


class PCACenterScale(_ControlAligner):
    """PCA fitted on all control wells, then per-batch centre-scale on controls (the reference)."""

    name = "pca-centerscale"

    def __init__(self, n_components: int | float | None = None):
        self.n_components = n_components

    def _fit(self, X, groups, control):
        self.pca_ = _fit_pca(
            X[control], self.n_components, name=self.name, counts=_control_counts(groups, control)
        )
        Z = self.pca_.transform(X[control])
        ctrl_idx = np.flatnonzero(control)
        pos = np.full(len(X), -1)
        pos[ctrl_idx] = np.arange(len(ctrl_idx))
        self.scalers_ = {
            b: StandardScaler().fit(Z[pos[idx[control[idx]]]]) for b, idx in groups.items()
        }

    def _transform(self, X, groups):
        out = np.empty((len(X), self.pca_.n_components_), dtype=X.dtype)
        for b, idx in groups.items():
            out[idx] = self.scalers_[b].transform(self.pca_.transform(X[idx]))
        return out


def _control_counts(groups: dict[str, np.ndarray], control: np.ndarray) -> str:
    shown = [f"'{b}' {int(control[idx].sum())}" for b, idx in list(groups.items())[:5]]
    return ", ".join(shown) + (" ..." if len(groups) > 5 else "")


def _fit_pca(
    X: np.ndarray,
    n_components: int | float | None = None,
    *,
    name: str = "pca",
    counts: str = "",
) -> PCA:
    """``PCA(svd_solver="full").fit(X)`` on the control wells, capped at their rank.

    ``n`` centred control wells span at most ``n - 1`` directions. sklearn keeps
    ``min(n, features)`` components, so with fewer controls than features the last ones carry
    only rounding noise (~1e-16 of the variance); the per-batch scaling that follows divides by
    that noise, the noise axis then holds the whole norm of every well and every cosine is +-1
    (gene-gene recall 0). The components are therefore capped at the numerical rank of the
    centred controls (singular values above ``s_max * max(n, features) * eps``, the tolerance of
    ``numpy.linalg.matrix_rank``), with one warning naming the counts. The kept components are
    the first ones sklearn's PCA would return.

    For controls without any variance (a collapsed encoder: every well the same vector) nothing
    is capped; sklearn's explained-variance *ratio* is then 0/0, a RuntimeWarning about a number
    cellbench never uses -- the components and transform are still defined.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        pca = PCA(n_components=n_components, svd_solver="full").fit(X)
    s = pca.singular_values_
    if len(s) == 0 or s[0] == 0:
        return pca
    tol = s[0] * max(X.shape) * np.finfo(X.dtype if X.dtype.kind == "f" else np.float64).eps
    rank = int(np.count_nonzero(s > tol))
    if 0 < rank < pca.n_components_:
        warnings.warn(
            f"alignment '{name}': {len(X)} control wells (per batch: {counts}) for "
            f"{X.shape[1]} features support only {rank} principal components, so "
            f"{rank} of {pca.n_components_} are kept (the others carry no control variance "
            "and would be scaled by ~1/0). Fix: more control wells per screen, or fewer "
            "features.",
            UserWarning,
            stacklevel=4,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            pca = PCA(n_components=rank, svd_solver="full").fit(X)
    return pca


def _inv_sqrt_spd(C: np.ndarray) -> np.ndarray:
    """``C^(-1/2)`` of a symmetric positive-definite matrix (eigendecomposition)."""
    w, V = np.linalg.eigh(C)
    return (V / np.sqrt(w)) @ V.T


class TVN(_ControlAligner):
    """Typical variation normalisation on controls, with per-batch CORAL (``efaar.tvn_on_controls``)."""

    name = "tvn"

    def __init__(self, coral_reg: float = 0.5):
        self.coral_reg = coral_reg

    def _fit(self, X, groups, control):
        Xc = X[control]
        self.scaler1_ = StandardScaler().fit(Xc)
        Z = self.scaler1_.transform(Xc)
        self.pca_ = _fit_pca(Z, name=self.name, counts=_control_counts(groups, control))
        Z = self.pca_.transform(Z)
        self.scaler2_ = StandardScaler().fit(Z)
        Z = self.scaler2_.transform(Z)
        ctrl_idx = np.flatnonzero(control)
        pos = np.full(len(X), -1)
        pos[ctrl_idx] = np.arange(len(ctrl_idx))
        d = Z.shape[1]
        self.whiten_ = {}
        for b, idx in groups.items():
            Zb = Z[pos[idx[control[idx]]]].astype(np.float64)
            cov = np.cov(Zb, rowvar=False, ddof=1) if len(Zb) > 1 else np.zeros((d, d))
            self.whiten_[b] = _inv_sqrt_spd(np.atleast_2d(cov) + self.coral_reg * np.eye(d))

    def _transform(self, X, groups):
        d = self.pca_.n_components_
        out = np.empty((len(X), d), dtype=X.dtype)
        for b, idx in groups.items():
            Z = self.scaler2_.transform(self.pca_.transform(self.scaler1_.transform(X[idx])))
            out[idx] = Z @ self.whiten_[b].astype(Z.dtype)
        return out


class Spherize(_ControlAligner):
    """Per-batch ZCA whitening fitted on the batch's controls (regularisation ``epsilon``)."""

    name = "spherize"

    def __init__(self, epsilon: float = 1e-2):
        self.epsilon = epsilon

    def _fit(self, X, groups, control):
        self.mean_, self.whiten_ = {}, {}
        d = X.shape[1]
        for b, idx in groups.items():
            Xb = X[idx[control[idx]]].astype(np.float64)
            self.mean_[b] = Xb.mean(axis=0)
            cov = np.cov(Xb, rowvar=False, ddof=1) if len(Xb) > 1 else np.zeros((d, d))
            self.whiten_[b] = _inv_sqrt_spd(np.atleast_2d(cov) + self.epsilon * np.eye(d))

    def _transform(self, X, groups):
        out = np.empty_like(X)
        for b, idx in groups.items():
            out[idx] = ((X[idx] - self.mean_[b]) @ self.whiten_[b]).astype(X.dtype, copy=False)
        return out


def make_aligner(name: str) -> _ControlAligner:
    """The aligner called ``name`` (one of :data:`ALIGNMENTS`)."""
    table = {
        "pca-centerscale": PCACenterScale,
        "centerscale": CenterScale,
        "tvn": TVN,
        "spherize": Spherize,
        "none": Identity,
    }
    if name not in table:
        raise InputError(f"unknown alignment '{name}'. Fix: use one of {list(ALIGNMENTS)}.")
    return table[name]()
