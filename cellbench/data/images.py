"""Image encoding/decoding and safe paths shared by the loaders.

The RxRx3-core release stores each single-channel 8-bit image as JPEG 2000 bytes inside
parquet shards; the synthetic screen stores PNG bytes in the same place. :func:`decode`
reads TIFF with tifffile, PNG/JPEG with Pillow and JPEG 2000 with glymur or imagecodecs when
installed, and brings every image to uint8 without destroying it:

* 8-bit: as stored;
* 16-bit (or other integers within 0..65535): scaled by a declared bit depth when one is given
  (``value * 255 / (2**bits - 1)``), otherwise rescaled per image between its 0.1 and 99.9
  percentiles -- a 12-bit image in a 16-bit container (JUMP's TIFFs) keeps its grey levels;
* float: values in 0..1 times 255; any other range is refused (it has no known meaning);
* colour (RGB/RGBA) where one channel per file is expected is refused unless its colour
  channels are equal (grey saved as RGB).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from cellbench.errors import CellbenchError, InputError

_JP2_MAGIC = (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
PERCENTILES = (0.1, 99.9)
#: bump when the mapping to uint8 changes, so image caches made by older code are not reused
DECODE_VERSION = 2


def encode_png(img: np.ndarray) -> bytes:
    """Deterministic PNG bytes of a 2-D uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img), mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _decode_jp2(data: bytes, where: str) -> np.ndarray:
    try:
        import imagecodecs

        return np.asarray(imagecodecs.jpeg2k_decode(data))
    except ImportError:
        pass
    try:
        import tempfile

        import glymur

        with tempfile.NamedTemporaryFile(suffix=".jp2") as f:
            f.write(data)
            f.flush()
            return np.asarray(glymur.Jp2k(f.name)[:])
    except ImportError:
        pass
    try:
        from PIL import Image

        return np.asarray(Image.open(io.BytesIO(data)))
    except Exception as exc:  # Pillow without OpenJPEG
        raise CellbenchError(
            f"{where}: this image is JPEG 2000 and no JPEG 2000 decoder is installed; "
            "install one with `pip install imagecodecs` (or `pip install 'cellbench[jpeg2000]'` "
            "for glymur, or a Pillow built with OpenJPEG)"
        ) from exc


def scaling_policy(bit_depth: int | None = None) -> str:
    """In words, how :func:`decode` maps images to uint8 (for a loader's metadata)."""
    if bit_depth is None:
        wide = (
            f"16-bit images rescaled per image between their {PERCENTILES[0]:g} and "
            f"{PERCENTILES[1]:g} percentiles"
        )
    else:
        wide = f"16-bit images scaled from the declared {bit_depth}-bit depth"
    return f"8-bit images as stored; {wide}; float images in 0..1 times 255"


def _read_raw(data: bytes, where: str) -> np.ndarray:
    if data.startswith(_JP2_MAGIC):
        return _decode_jp2(data, where)
    fix = "the file is corrupt — re-download or regenerate the dataset"
    if data.startswith(_TIFF_MAGIC):
        import tifffile

        try:
            return np.asarray(tifffile.imread(io.BytesIO(data)))
        except Exception as exc:  # noqa: BLE001 - tifffile raises several kinds for a bad file
            raise InputError(
                f"{where}: cannot decode TIFF ({type(exc).__name__}: {exc}); {fix}"
            ) from None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            pixels: Image.Image = im
            if im.mode == "P":  # palette indices mean nothing as intensities
                pixels = im.convert("RGBA" if "transparency" in im.info else "RGB")
            return np.asarray(pixels)
    except Exception as exc:  # noqa: BLE001 - Pillow raises several kinds for a bad file
        raise InputError(f"{where}: cannot decode image ({exc}); {fix}") from None


def _one_channel(arr: np.ndarray, where: str) -> np.ndarray:
    arr = np.squeeze(arr)
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):  # grey+alpha, RGB, RGBA (channels last)
        colour = arr[..., :1] if arr.shape[-1] == 2 else arr[..., :3]
        if np.all(colour == colour[..., :1]):
            return np.ascontiguousarray(colour[..., 0])
        raise InputError(
            f"{where}: a colour image ({arr.shape[-1]} channels of differing content), but cellbench "
            "reads one channel per file; save each stain as its own greyscale file and list each "
            "in its own file_<Channel> column"
        )
    raise InputError(
        f"{where}: an image of shape {arr.shape} (several planes or pages), but cellbench reads one "
        "2-D channel per file; save each stain/plane as its own greyscale file"
    )


def _to_uint8(arr: np.ndarray, where: str, bit_depth: int | None) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        lo = float(arr[finite].min()) if finite.any() else float("nan")
        hi = float(arr[finite].max()) if finite.any() else float("nan")
        if not finite.all() or lo < 0 or hi > 1:
            raise InputError(
                f"{where}: a float image with values in [{lo:g}, {hi:g}]"
                f"{' and NaN/inf' if not finite.all() else ''}, outside the known range 0..1; save it "
                "as 8- or 16-bit integers (or as floats scaled to 0..1)"
            )
        return np.rint(arr * 255).astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{where}: pixels of type {arr.dtype} cannot be read as intensities; "
            "save the image as 8- or 16-bit greyscale"
        )
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi > 65535:
        raise InputError(
            f"{where}: integer pixels in [{lo}, {hi}], outside 0..65535; save the image "
            "as unsigned 8- or 16-bit greyscale"
        )
    if bit_depth is not None:
        top = 2 ** int(bit_depth) - 1
        if hi > top:
            raise InputError(
                f"{where}: pixel value {hi} exceeds the declared {bit_depth}-bit depth "
                f"(max {top}); declare the depth the camera wrote, or none to rescale "
                "each image by its percentiles"
            )
        return np.rint(arr.astype(np.float64) * (255.0 / top)).astype(np.uint8)
    p_lo, p_hi = np.percentile(arr, PERCENTILES)
    if p_hi <= p_lo:  # (almost) constant image: no contrast to stretch
        return np.zeros(arr.shape, np.uint8)
    out = (arr.astype(np.float64) - p_lo) * (255.0 / (p_hi - p_lo))
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def decode(data: bytes, where: str, bit_depth: int | None = None) -> np.ndarray:
    """Decode one encoded single-channel image to a 2-D uint8 array (see the module docstring
    for how wider types are scaled); a clear error if corrupt or not faithfully readable."""
    if data is None or len(data) == 0:
        raise InputError(
            f"{where}: empty image bytes; the file is corrupt — re-download or regenerate it"
        )
    if bit_depth is not None and not 1 <= int(bit_depth) <= 16:
        raise InputError(
            f"bit depth {bit_depth} is not in 1..16; declare the camera's bit depth (e.g. 12)"
        )
    return _to_uint8(_one_channel(_read_raw(data, where), where), where, bit_depth)


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """``root / relative``, refusing paths (from metadata) that escape ``root``."""
    root_p = Path(root).resolve()
    rel = str(relative)
    target = (root_p / rel).resolve()
    if os.path.isabs(rel) or (target != root_p and root_p not in target.parents):
        raise InputError(
            f"path {relative!r} from the metadata points outside the data root {root_p}; "
            "fix the metadata so every path is relative and stays inside the data directory"
        )
    return target
