"""Reading images from what users hand us, with a clear error for anything else.

Accepted: a file path, raw bytes, a NumPy array (RGB unless `bgr=True`), a PIL image.
Always returns an RGB uint8 array of shape (height, width, 3).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from facelib.errors import ImageError, ImageTooLargeError

ImageInput = str | os.PathLike | bytes | bytearray | np.ndarray | Image.Image

# 40 megapixels: any phone photo passes, a decompression bomb does not.
DEFAULT_MAX_PIXELS = 40_000_000


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,}; downscale it first"
        )


def _jpeg_is_truncated(data: bytes) -> bool:
    # A complete JPEG ends with the EOI marker (some writers pad a few bytes after it).
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]


def decode_bytes(data: bytes, what: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, …) to RGB, checking size before decoding."""
    if not data:
        raise ImageError(f"{what} is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
    except UnidentifiedImageError as exc:
        raise ImageError(f"{what} is not an image file that can be read") from exc
    except Exception as exc:
        raise ImageError(f"{what} is not an image file that can be read ({exc})") from exc
    _check_size(width, height, max_pixels, what)
    if _jpeg_is_truncated(data):
        raise ImageError(f"{what} is a truncated JPEG (the file ends before the image does)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"{what} could not be decoded as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _from_array(array: np.ndarray, bgr: bool, max_pixels: int) -> np.ndarray:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], max_pixels, "image array")
    array = array[..., :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., ::-1] if bgr else array)


def load_image(
    source: ImageInput | Any, bgr: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Any accepted input → RGB uint8 array. `bgr` says a NumPy input is BGR (OpenCV's order)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no such image file: {path}")
        return decode_bytes(path.read_bytes(), what=str(path), max_pixels=max_pixels)
    if isinstance(source, (bytes, bytearray)):
        return decode_bytes(bytes(source), max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        _check_size(source.width, source.height, max_pixels, "PIL image")
        return np.asarray(source.convert("RGB"))
    if isinstance(source, np.ndarray):
        return _from_array(source, bgr, max_pixels)
    raise ImageError(
        f"cannot read an image from {type(source).__name__}; pass a path, bytes, a NumPy array or a PIL image"
    )
