"""Reading images from what users hand us, with a clear error for anything else.

Accepted: a file path, raw bytes, a NumPy array (RGB unless `bgr=True`), a PIL image.
Always returns an RGB uint8 array of shape (height, width, 3).

Encoded images are decoded by PIL: JPEG (baseline, progressive, with data after the
end marker as phones write it), PNG, TIFF, BMP, GIF, WebP, PPM, JPEG 2000, AVIF. The
picture is turned upright by its EXIF orientation, 16-bit samples are scaled (not
clipped) to 8 bits, transparency is laid on white, and a truncated file is an error.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facelib.core.errors import ImageError, ImageTooLargeError

ImageInput = str | os.PathLike | bytes | bytearray | np.ndarray | Image.Image

# 40 megapixels: any phone photo passes, a decompression bomb does not.
DEFAULT_MAX_PIXELS = 40_000_000

# Formats PIL may open. Not all it knows: EPS would run Ghostscript on what may be an
# upload, and the rest are not photographs.
Image.init()  # registers every plugin, so that Image.OPEN lists what this build opens
FORMATS = tuple(
    f for f in ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP", "PPM", "JPEG2000", "AVIF") if f in Image.OPEN
)  # only those this Pillow build can open (AVIF needs Pillow 11.3 or a plugin)

_ORIENTATION = 0x0112  # the EXIF tag
_BACKGROUND = (255, 255, 255, 255)  # under transparent pixels, as a browser shows them


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,}; downscale it first"
        )


def _read_error(exc: Exception, what: str, kind: str | None = None) -> ImageError:
    """PIL's complaint while reading, as a facelib error. Truncation is told apart
    because the fix (copy or download the file again) is not the same."""
    if isinstance(exc, Image.DecompressionBombError):
        return ImageTooLargeError(f"{what} is too large to decode safely ({exc})")
    if "truncated" in str(exc).lower():
        return ImageError(
            f"{what} is a truncated {kind or 'image'} file (the file ends before the image does)"
        )
    if isinstance(exc, UnidentifiedImageError):
        return ImageError(f"{what} is not an image file that can be read")
    return ImageError(f"{what} could not be decoded as an image ({exc})")


def _upright(image: Image.Image) -> Image.Image:
    """The picture as it is meant to be seen: phones store it sideways and say so in
    the EXIF orientation tag, and a face on its side is not found."""
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
        return ImageOps.exif_transpose(image) if orientation in range(2, 9) else image
    except Exception:  # broken EXIF: the pixels are still good, keep them as stored
        return image


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    # 0..65535 → 0..255 rounded (65535 / 257 = 255), in integers: no float copy of a big picture
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Greyscale samples of more than 8 bits → 0..255, keeping the full range rather
    than clipping everything above 255 to white (what PIL's convert does)."""
    floats = values.dtype.kind == "f"
    values = values.astype(np.float32)
    top = float(values.max(initial=0))
    if top <= 1.0 and floats:
        scale = 255.0  # floats in 0..1
    elif top <= 255:
        scale = 1.0  # 8-bit values in a wider type
    elif top <= 65535:
        scale = 255.0 / 65535.0  # 16-bit
    else:
        scale = 255.0 / top
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    # np.array, not np.asarray: PIL's buffer would make a read-only array, and callers
    # may draw on what they get, as on OpenCV's arrays, which are writable.
    mode = image.mode
    if mode == "RGB":
        return np.array(image)
    if mode.startswith("I") or mode == "F":  # I;16 (16-bit PNG/TIFF), I (32-bit), F
        values = np.asarray(image)
        if mode.startswith("I;16"):
            grey = _uint16_to_uint8(values)
        else:
            grey = _scale_to_uint8(values)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return np.array(Image.alpha_composite(Image.new("RGBA", rgba.size, _BACKGROUND), rgba).convert("RGB"))
    return np.array(image.convert("RGB"))  # L, 1, P, CMYK, YCbCr, …


def decode_bytes(data: bytes, what: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, …) to upright RGB, checking the size in
    the header before any pixel is decoded (a decompression bomb is a small file)."""
    if not data:
        raise ImageError(f"{what} is empty (0 bytes)")
    kind = None
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:  # reads the header only
            kind = image.format
            _check_size(image.width, image.height, max_pixels, what)
            # Decoding runs to the end of the image data and raises if the file stops
            # short (PIL's LOAD_TRUNCATED_IMAGES is off); bytes after it are ignored.
            image.load()
            return _pil_to_rgb(_upright(image))
    except ImageError:
        raise
    except Exception as exc:
        raise _read_error(exc, what, kind) from exc


def _from_array(array: np.ndarray, bgr: bool, max_pixels: int) -> np.ndarray:
    if array.size == 0:
        raise ImageError(f"an image array must hold pixels, got shape {array.shape}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], max_pixels, "image array")
    array = array[..., :3]
    if array.dtype == np.uint16:  # 16-bit pictures (OpenCV's IMREAD_ANYDEPTH): scale, not clip
        array = _uint16_to_uint8(array)
    elif array.dtype != np.uint8:
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
        try:
            return _pil_to_rgb(_upright(source))
        except Exception as exc:
            raise _read_error(exc, "PIL image") from exc
    if isinstance(source, np.ndarray):
        return _from_array(source, bgr, max_pixels)
    raise ImageError(
        f"cannot read an image from {type(source).__name__}; pass a path, bytes, a NumPy array or a PIL image"
    )
