"""Decoding images faithfully: 16-bit TIFF/PNG keep their grey levels, what cannot be read
faithfully is refused with a clear error. Fixtures are written in the real formats."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
import tifffile
from PIL import Image

from cellbench.data.folder import FolderDataset
from cellbench.data.images import decode
from cellbench.errors import InputError


def _twelve_bit(seed: int = 0) -> np.ndarray:
    """A 12-bit-range image stored as uint16, as JUMP's TIFFs are."""
    rng = np.random.default_rng(seed)
    return rng.integers(100, 4096, (48, 48)).astype(np.uint16)


def _tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


def _png16(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("encode", [_tiff, _png16], ids=["tiff", "png16"])
def test_twelve_bit_images_keep_their_grey_levels(encode):
    arr = _twelve_bit()
    img = decode(encode(arr), "x")
    assert img.dtype == np.uint8 and img.shape == arr.shape
    assert len(np.unique(img)) > 200  # `>> 8` left 16 levels
    assert np.corrcoef(img.ravel().astype(float), arr.ravel().astype(float))[0, 1] > 0.99


def test_declared_bit_depth_scales_by_the_depth_not_the_image():
    arr = np.full((8, 8), 2048, np.uint16)
    arr[0, 0] = 0
    img = decode(_tiff(arr), "x", bit_depth=12)
    assert img[1, 1] == round(2048 * 255 / 4095) and img[0, 0] == 0
    with pytest.raises(InputError, match="12-bit"):
        decode(_tiff(np.full((8, 8), 5000, np.uint16)), "x", bit_depth=12)


def test_rgb_is_refused_where_one_channel_per_file_is_expected():
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG")
    with pytest.raises(InputError, match="one channel per file"):
        decode(buf.getvalue(), "rgb.png")
    with pytest.raises(InputError, match="one channel per file"):
        decode(_tiff(rgb), "rgb.tif")
    grey = np.repeat(rgb[..., :1], 3, axis=2)  # grey saved as RGB loses nothing: accepted
    buf = io.BytesIO()
    Image.fromarray(grey, mode="RGB").save(buf, format="PNG")
    np.testing.assert_array_equal(decode(buf.getvalue(), "g.png"), grey[..., 0])


def test_float_images_outside_zero_one_are_refused():
    ok = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    img = decode(_tiff(ok), "x")
    assert img.min() == 0 and img.max() == 255
    with pytest.raises(InputError, match="float"):
        decode(_tiff(ok * 1000), "x")


def test_eight_bit_images_are_unchanged():
    arr = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    np.testing.assert_array_equal(decode(_tiff(arr), "x"), arr)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    np.testing.assert_array_equal(decode(buf.getvalue(), "x"), arr)


def test_folder_loader_reads_16_bit_tiffs_and_says_how_it_scaled(tmp_path):
    rows = []
    for w in range(2):
        tifffile.imwrite(tmp_path / f"w{w}_dna.tif", _twelve_bit(w))
        rows.append(
            {
                "well_id": f"P1_A0{w}",
                "batch": "b1",
                "plate": "P1",
                "well": f"A0{w}",
                "perturbation": "DMSO" if w == 0 else "g1",
                "perturbation_type": "control" if w == 0 else "crispr",
                "concentration": 0.0,
                "is_control": w == 0,
                "site": 1,
                "file_DNA": f"w{w}_dna.tif",
            }
        )
    pl.DataFrame(rows).write_csv(tmp_path / "wells.csv")
    ds = FolderDataset(tmp_path)
    assert "percentile" in ds.intensity_scaling
    imgs = ds.read_sites([0, 1])
    assert imgs.dtype == np.uint8 and len(np.unique(imgs[0, 0])) > 200
    ds12 = FolderDataset(tmp_path, bit_depth=12)
    assert "12-bit" in ds12.intensity_scaling and ds12.cache_key() != ds.cache_key()


def test_folder_table_can_declare_the_bit_depth(tmp_path):
    arr = np.full((8, 8), 2048, np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", arr)
    row = {
        "well_id": "P1_A01",
        "batch": "b1",
        "plate": "P1",
        "well": "A01",
        "perturbation": "DMSO",
        "perturbation_type": "control",
        "concentration": 0.0,
        "is_control": True,
        "site": 1,
        "file_DNA": "a.tif",
        "bit_depth": 12,
    }
    pl.DataFrame([row]).write_csv(tmp_path / "wells.csv")
    ds = FolderDataset(tmp_path)
    assert ds.bit_depth == 12 and "12-bit" in ds.intensity_scaling
    assert ds.read_sites([0])[0, 0, 0, 0] == round(2048 * 255 / 4095)
    pl.DataFrame([row, {**row, "site": 2, "bit_depth": 16}]).write_csv(tmp_path / "wells.csv")
    with pytest.raises(InputError, match="bit_depth"):
        FolderDataset(tmp_path)
