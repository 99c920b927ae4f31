"""Image encoding/decoding and safe paths shared by the loaders.

The RxRx3-core release stores each single-channel 8-bit image as JPEG 2000 bytes inside
parquet shards; the synthetic screen stores PNG bytes in the same place. :func:`decode`
reads PNG/JPEG/TIFF with Pillow and JPEG 2000 with glymur or imagecodecs when installed.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from cellbench.errors import CellbenchError, InputError

_JP2_MAGIC = (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")


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


def decode(data: bytes, where: str) -> np.ndarray:
    """Decode one encoded single-channel image to a 2-D uint8 array; clear error if corrupt."""
    if data is None or len(data) == 0:
        raise InputError(f"{where}: empty image bytes; the file is corrupt — re-download or regenerate it")
    if data.startswith(_JP2_MAGIC):
        arr = _decode_jp2(data, where)
    else:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                arr = np.asarray(im)
        except Exception as exc:
            raise InputError(
                f"{where}: cannot decode image ({exc}); the file is corrupt — re-download or "
                "regenerate the dataset"
            ) from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


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
