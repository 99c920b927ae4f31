"""CellProfiler-style hand-crafted features (the paper's "CellProfiler" row).

Per image: nuclei are segmented on the DNA channel with scikit-image (Gaussian smoothing,
Otsu threshold, distance-transform watershed to split touching nuclei), expanded by a few
pixels into cell regions, and every cell is measured with ``cp_measure`` — a maintained
Python implementation of CellProfiler's measurement modules (intensity, size/shape, texture,
granularity per channel; Pearson correlation between channel pairs). The image's vector is
the mean over its cells; the pipeline then averages images into sites and wells as for any
encoder (docs/training.md, "Baselines").

Guards: pixels are made finite and scaled to [0, 1] before measuring (a NaN pixel
can hang the texture code); each image has a time budget (``time_limit_s``): once spent, the
remaining measurements of that image are skipped and left NaN; a measurement that raises is
left NaN; features that are NaN for every well are dropped and the rest imputed with the
column median when the wells are written (:meth:`CellProfilerEncoder.finalize_wells`).

``cp-measure`` is an optional extra: ``pip install "cellbench[cellprofiler]"``.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from cellbench.encoders.base import Encoder
from cellbench.errors import InputError, NotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch

INSTALL_HINT = 'pip install "cellbench[cellprofiler]"'
#: Names a nuclear stain goes by (matched case-insensitively, after channel aliasing).
DNA_NAMES = ("dna", "hoechst", "dapi", "nucleus")
#: Per-channel cp_measure measurements (granularity is ~80% of the time: drop it for speed).
DEFAULT_MEASUREMENTS = ("intensity", "sizeshape", "texture", "granularity")
DEFAULT_CORRELATIONS = ("pearson",)
SHAPE_ONLY = {"sizeshape", "zernike", "feret"}  # independent of the channel: measured once

MeasureFn = Callable[..., Mapping[str, Any]]


# --- guards ---------------------------------------------------------------------------------
def sanitize(image: np.ndarray) -> np.ndarray:
    """Finite float64 pixels in [0, 1]: NaN/inf → 0, then clipped (uint8 → /255 first)."""
    x = np.asarray(image)
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(x, 0.0, 1.0)


# --- segmentation ---------------------------------------------------------------------------
def segment_nuclei(
    dna: np.ndarray, *, sigma: float = 1.0, min_area: int | None = None, split_depth: float = 1.0
) -> np.ndarray:
    """Label image (int32, labels 1..N contiguous) of nuclei in a DNA channel in [0, 1].

    Otsu threshold of the smoothed image; touching nuclei split by a watershed on the
    distance transform seeded at its regional maxima (h-maxima of depth ``split_depth``); objects smaller than ``min_area`` pixels
    (default: 0.1 % of the image, at least 4) are removed. A flat image has no nuclei.
    """
    from scipy import ndimage
    from skimage import filters, measure, morphology, segmentation

    dna = sanitize(dna)
    smooth = filters.gaussian(dna, sigma=sigma) if sigma > 0 else dna
    if float(smooth.max() - smooth.min()) < 1e-6:
        return np.zeros(dna.shape, np.int32)
    foreground = smooth > filters.threshold_otsu(smooth)
    if min_area is None:
        min_area = max(4, int(0.001 * dna.size))
    foreground = morphology.remove_small_objects(foreground, max_size=min_area - 1)
    if not foreground.any():
        return np.zeros(dna.shape, np.int32)
    distance = ndimage.distance_transform_edt(foreground)
    # one seed per regional maximum of the distance at least `split_depth` px deep: touching
    # round nuclei split at their neck, a plateau (or a ragged edge) stays one seed
    markers = measure.label(morphology.h_maxima(distance, split_depth))
    labels = segmentation.watershed(-distance, markers, mask=foreground)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < min_area] = 0  # watershed fragments too small to be nuclei
    return segmentation.relabel_sequential(labels)[0].astype(np.int32)


def cells_from_nuclei(nuclei: np.ndarray, distance: int = 3) -> np.ndarray:
    """Cell regions: nuclei grown by ``distance`` pixels without merging (CellProfiler's
    "propagate" secondary objects, approximated with ``skimage.segmentation.expand_labels``)."""
    from skimage.segmentation import expand_labels

    return expand_labels(nuclei, distance=distance).astype(np.int32)


# --- measuring ------------------------------------------------------------------------------
def cp_measure_functions(
    measurements: tuple[str, ...] = DEFAULT_MEASUREMENTS,
    correlations: tuple[str, ...] = DEFAULT_CORRELATIONS,
) -> tuple[dict[str, MeasureFn], dict[str, MeasureFn]]:
    """The cp_measure bulk functions to run; a clear message when cp-measure is absent."""
    try:
        from cp_measure.bulk import get_core_measurements, get_correlation_measurements
    except ImportError:
        raise NotFoundError(
            f"the cellprofiler encoder needs the optional package cp-measure: {INSTALL_HINT}"
        ) from None
    core, corr = get_core_measurements(), get_correlation_measurements()
    unknown = [m for m in measurements if m not in core] + [
        c for c in correlations if c not in corr
    ]
    if unknown:
        raise InputError(
            f"unknown cp_measure measurement(s) {unknown}; choose from {sorted(core)} and "
            f"correlations {sorted(corr)}"
        )
    return {m: core[m] for m in measurements}, {c: corr[c] for c in correlations}


def _as_per_object(values: Any, n_objects: int) -> np.ndarray | None:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return arr if arr.size == n_objects else None


def measure_image(
    image: np.ndarray,
    channels: tuple[str, ...],
    labels: np.ndarray,
    core: Mapping[str, MeasureFn],
    correlations: Mapping[str, MeasureFn],
    *,
    deadline: float = math.inf,
) -> dict[str, float]:
    """Mean over cells of every feature of one image; {} when it has no cells.

    Stops measuring when ``time.monotonic()`` passes ``deadline`` (features not reached are
    simply absent, i.e. NaN in the vector); a measurement that raises is skipped likewise.
    """
    n = int(labels.max())
    if n == 0:
        return {}
    out: dict[str, float] = {}

    def record(prefix: str, result: Mapping[str, Any]) -> None:
        for name, values in result.items():
            per_cell = _as_per_object(values, n)
            if per_cell is not None and np.isfinite(per_cell).any():
                out[f"{prefix}{name}"] = float(np.nanmean(per_cell))

    def run(prefix: str, fn: MeasureFn, *args: Any) -> None:
        if time.monotonic() > deadline:
            return
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                record(prefix, fn(*args))
        except Exception:  # noqa: BLE001 - one failing measurement must not lose the image
            return

    for name, fn in core.items():
        if name in SHAPE_ONLY:
            run("", fn, labels, image[0])
    for c, channel in enumerate(channels):
        for name, fn in core.items():
            if name not in SHAPE_ONLY:
                run(f"{channel}__", fn, labels, image[c])
    for fn in correlations.values():
        for a in range(len(channels)):
            for b in range(a + 1, len(channels)):
                run(f"{channels[a]}_{channels[b]}__", fn, image[a], image[b], labels)
    return out


class CellProfilerEncoder(Encoder):
    """Segment → measure every cell → mean per image; a fixed, named feature vector."""

    allows_nan = True  # a feature may be missing in an image; handled by finalize_wells

    def __init__(
        self,
        channels: tuple[str, ...],
        core: Mapping[str, MeasureFn],
        correlations: Mapping[str, MeasureFn],
        *,
        time_limit_s: float = 30.0,
        cell_expansion: int = 3,
    ) -> None:
        super().__init__()
        dna = [i for i, c in enumerate(channels) if _canon(c) in DNA_NAMES]
        if not dna:
            raise InputError(
                f"the cellprofiler encoder segments nuclei on a DNA channel, and the channels "
                f"{list(channels)} have none; name the nuclear stain DNA (or Hoechst/DAPI)"
            )
        self.channels = tuple(channels)
        self.dna_index = dna[0]
        self.core, self.correlations = dict(core), dict(correlations)
        self.time_limit_s = float(time_limit_s)
        self.cell_expansion = int(cell_expansion)
        self.input_size = None
        self.timeouts = 0  # images whose time budget ran out (reported, not fatal)
        self.feature_names = self._probe_feature_names()
        self.embed_dim = len(self.feature_names)

    def _probe_feature_names(self) -> list[str]:
        """Names of every feature, from measuring a small synthetic two-cell image."""
        size = 48
        yy, xx = np.mgrid[0:size, 0:size]
        blob = lambda cy, cx, r: (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r  # noqa: E731
        labels = np.zeros((size, size), np.int32)
        labels[blob(14, 14, 7)] = 1
        labels[blob(32, 33, 8)] = 2
        rng = np.random.default_rng(0)
        image = np.clip(
            0.2
            + 0.6 * (labels > 0)[None]
            + 0.05 * rng.standard_normal((len(self.channels), size, size)),
            0,
            1,
        )
        names = measure_image(image, self.channels, labels, self.core, self.correlations)
        if not names:
            raise NotFoundError(
                f"cp-measure produced no features on a test image; reinstall it: {INSTALL_HINT}"
            )
        return sorted(names)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Intensities in [0, 1] as CellProfiler expects (no standardisation), finite."""
        import torch

        x = images.to(torch.float32)
        if images.dtype == torch.uint8:
            return x / 255.0
        return torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)

    def embed_image(self, image: np.ndarray) -> np.ndarray:
        image = sanitize(image)
        deadline = time.monotonic() + self.time_limit_s
        nuclei = segment_nuclei(image[self.dna_index])
        cells = cells_from_nuclei(nuclei, self.cell_expansion)
        values = measure_image(
            image, self.channels, cells, self.core, self.correlations, deadline=deadline
        )
        if time.monotonic() > deadline:
            self.timeouts += 1
        return np.array([values.get(n, np.nan) for n in self.feature_names], dtype=np.float32)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        x = images.detach().to("cpu", torch.float64).numpy()
        rows = [self.embed_image(img) for img in x]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, self.embed_dim)

    def finalize_wells(self, values: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Drop all-NaN feature columns, impute other NaN with the column median.

        Returns the cleaned (wells, D') matrix and the kept column indices.
        """
        return drop_and_impute(values)


def drop_and_impute(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """(wells, D) → (wells, D'): all-NaN columns dropped, remaining NaN → column median."""
    values = np.asarray(values, dtype=np.float64)
    keep = [j for j in range(values.shape[1]) if np.isfinite(values[:, j]).any()]
    kept = values[:, keep]
    if kept.size:
        medians = np.nanmedian(np.where(np.isfinite(kept), kept, np.nan), axis=0)
        bad = ~np.isfinite(kept)
        kept[bad] = np.take(medians, np.nonzero(bad)[1])
    return kept.astype(np.float32), keep


def _canon(name: str) -> str:
    try:
        from cellbench.data.channels import canonical_name

        name = canonical_name(name)
    except ImportError:  # pragma: no cover
        pass
    return str(name).strip().lower()


def create(
    checkpoint: str | os.PathLike | None = None,
    *,
    channels: Any = None,
    measurements: tuple[str, ...] = DEFAULT_MEASUREMENTS,
    correlations: tuple[str, ...] = DEFAULT_CORRELATIONS,
    time_limit_s: float = 30.0,
) -> Encoder:
    """The CellProfiler-feature encoder for ``channels`` (needs cp-measure)."""
    if checkpoint is not None:
        raise InputError("cellprofiler has no weights; drop --checkpoint")
    channels = tuple(str(c) for c in (channels or ("DNA", "ER", "RNA", "AGP", "Mito")))
    core, corr = cp_measure_functions(tuple(measurements), tuple(correlations))
    return CellProfilerEncoder(channels, core, corr, time_limit_s=time_limit_s)
