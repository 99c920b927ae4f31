"""CellProfiler features: guards, segmentation, aggregation, time limit, column cleaning.

cp-measure is an optional extra (absent here): the measurement plumbing is tested with
measurement functions of the same call signature built on scikit-image's regionprops, and
the real package is exercised when it is importable.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import polars as pl
import pytest
import torch
from fakes_imaging import FakeDataset

from cellbench import registry
from cellbench.embed import embed_dataset, read_metadata
from cellbench.encoders import cellprofiler as cp
from cellbench.errors import InputError, NotFoundError


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _regionprops_fn(*props):
    from skimage.measure import regionprops_table

    def fn(masks, pixels):
        table = regionprops_table(masks, intensity_image=pixels, properties=props)
        return {f"RP_{k}": v for k, v in table.items()}

    return fn


FAKE_CORE = {"intensity": _regionprops_fn("intensity_mean"), "sizeshape": _regionprops_fn("area")}


def _pearson(a, b, masks):
    n = int(masks.max())
    out = [np.corrcoef(a[masks == i], b[masks == i])[0, 1] for i in range(1, n + 1)]
    return {"Correlation_Pearson": np.array(out)}


def test_sanitize_makes_pixels_finite_and_unit_range():
    x = np.array([[np.nan, np.inf], [-np.inf, 2.5]])
    y = cp.sanitize(x)
    assert np.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert y.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert cp.sanitize(np.array([[255, 0]], np.uint8)).tolist() == [[1.0, 0.0]]


def test_segmentation_finds_and_splits_nuclei():
    img = np.full((64, 64), 0.05)
    for cy, cx, r in ((15, 15, 6), (40, 20, 6), (40, 31, 6)):  # the last two touch
        img[_disk(img.shape, cy, cx, r)] = 0.8
    labels = cp.segment_nuclei(img)
    assert labels.max() == 3 and sorted(np.unique(labels)) == [0, 1, 2, 3]
    assert labels[15, 15] > 0 and labels[40, 20] != labels[40, 31]
    cells = cp.cells_from_nuclei(labels, 2)
    assert cells.max() == 3 and (cells > 0).sum() > (labels > 0).sum()
    assert cp.segment_nuclei(np.full((32, 32), 0.3)).max() == 0  # flat: no nuclei
    noisy = img.copy()
    noisy[0, :5] = np.nan  # a NaN pixel must not crash (or hang) segmentation
    assert cp.segment_nuclei(noisy).max() == 3


def test_measure_image_is_the_mean_over_cells():
    labels = np.zeros((32, 32), np.int32)
    labels[_disk(labels.shape, 8, 8, 4)] = 1
    labels[_disk(labels.shape, 22, 22, 6)] = 2
    image = np.stack(
        [np.where(labels == 1, 0.2, np.where(labels == 2, 0.6, 0.0)), np.full((32, 32), 0.5)]
    )
    values = cp.measure_image(image, ("DNA", "RNA"), labels, FAKE_CORE, {"pearson": _pearson})
    areas = [(labels == 1).sum(), (labels == 2).sum()]
    assert values["RP_area"] == pytest.approx(np.mean(areas))
    assert values["DNA__RP_intensity_mean"] == pytest.approx(0.4)
    assert values["RNA__RP_intensity_mean"] == pytest.approx(0.5)
    assert "DNA_RNA__Correlation_Pearson" not in values  # constant RNA: NaN everywhere, left out
    assert cp.measure_image(image, ("DNA", "RNA"), np.zeros_like(labels), FAKE_CORE, {}) == {}


def test_time_limit_and_failing_measurements_leave_nan():
    def slow(masks, pixels):
        time.sleep(0.3)
        return {"Slow": np.ones(int(masks.max()))}

    def broken(masks, pixels):
        raise RuntimeError("boom")

    core = {"broken": broken, "slow": slow, "intensity": FAKE_CORE["intensity"]}
    enc = cp.CellProfilerEncoder(("DNA", "ER"), core, {}, time_limit_s=10.0)
    assert "DNA__Slow" in enc.feature_names and not any("broken" in n for n in enc.feature_names)
    img = np.full((2, 48, 48), 0.05)
    img[:, _disk((48, 48), 20, 20, 8)] = 0.9
    full = enc.embed_image(img)
    assert np.isfinite(full).all() and enc.timeouts == 0
    enc.time_limit_s = 0.1  # spent during the first channel's slow measurement
    cut = enc.embed_image(img)
    names = enc.feature_names
    assert np.isfinite(cut[names.index("DNA__Slow")])
    assert np.isnan(cut[names.index("ER__Slow")]) and np.isnan(
        cut[names.index("ER__RP_intensity_mean")]
    )
    assert enc.timeouts == 1


def test_drop_all_nan_columns_and_impute():
    values = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, np.nan], [2.0, np.nan, 7.0]])
    cleaned, kept = cp.drop_and_impute(values)
    assert kept == [0, 2]
    np.testing.assert_array_equal(cleaned, np.array([[1, 5], [3, 6], [2, 7]], np.float32))


def test_needs_a_dna_channel():
    with pytest.raises(InputError, match="DNA"):
        cp.CellProfilerEncoder(("ER", "RNA"), FAKE_CORE, {})
    assert cp.CellProfilerEncoder(("Hoechst", "RNA"), FAKE_CORE, {}).dna_index == 0


def test_absent_cp_measure_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cp_measure", None)
    monkeypatch.setitem(sys.modules, "cp_measure.bulk", None)
    with pytest.raises(NotFoundError, match=r'pip install "cellbench\[cellprofiler\]"'):
        registry.create("cellprofiler", channels=("DNA", "RNA"))


def test_pipeline_writes_clean_well_features(tmp_path):
    data = FakeDataset(n_wells=4, sites_per_well=2, size=32, channels=("DNA", "RNA"))
    core = {
        **FAKE_CORE,
        "never": lambda masks, pixels: {"Never": np.full(int(masks.max()), np.nan)},
    }
    enc = cp.CellProfilerEncoder(data.channels, core, {"pearson": _pearson})
    enc.name = "cellprofiler"
    path = embed_dataset(enc, data, tmp_path, progress=False)
    table = pl.read_parquet(path)
    values = table.drop("well_id").to_numpy()
    assert np.isfinite(values).all() and table.height == 4
    kept = __import__("json").loads(read_metadata(path)["kept_features"])
    assert values.shape[1] == len(kept) <= enc.embed_dim
    # a well's value is the mean over its sites of the per-image means over cells
    well = data.wells["well_id"][1]
    site_rows = [i for i, w in enumerate(data.sites["well_id"]) if w == well]
    per_site = np.stack([enc.embed_image(cp.sanitize(data.site_image(i))) for i in site_rows])
    expected = np.nanmean(per_site, axis=0)[kept]
    finite = np.isfinite(expected)
    np.testing.assert_allclose(values[1][finite], expected[finite], rtol=1e-5)


def test_real_cp_measure_when_installed():
    pytest.importorskip("cp_measure", reason="optional extra cp-measure is not installed")
    enc = registry.create(
        "cellprofiler", channels=("DNA", "RNA"), measurements=("intensity", "sizeshape")
    )
    img = torch.zeros(1, 2, 48, 48, dtype=torch.uint8)
    img[:, :, 10:20, 10:20] = 200
    img[:, :, 30:40, 28:40] = 150
    out = enc.embed(enc.preprocess(img))
    assert out.shape == (1, enc.embed_dim) and torch.isfinite(out).sum() > 10
