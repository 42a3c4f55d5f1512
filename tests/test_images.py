import io

import numpy as np
import pytest
from PIL import Image

from facelib.errors import ImageError, ImageTooLargeError
from facelib.images import load_image


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_input_kind_gives_the_same_rgb(sample_jpeg):
    from_path = load_image(sample_jpeg)
    assert from_path.shape == (250, 250, 3) and from_path.dtype == np.uint8
    assert np.array_equal(load_image(str(sample_jpeg)), from_path)
    assert np.array_equal(load_image(sample_jpeg.read_bytes()), from_path)
    assert np.array_equal(load_image(from_path), from_path)
    assert np.array_equal(load_image(np.ascontiguousarray(from_path[..., ::-1]), bgr=True), from_path)
    with Image.open(sample_jpeg) as pil:
        assert np.abs(load_image(pil).astype(int) - from_path).max() <= 8  # PIL's own JPEG decoder


def test_png_colours_come_out_rgb():
    assert load_image(_png(4, 3))[0, 0].tolist() == [10, 200, 30]


def test_empty_bytes():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_truncated_jpeg(sample_jpeg):
    with pytest.raises(ImageError, match="truncated"):
        load_image(sample_jpeg.read_bytes()[:4000])


def test_text_file_named_jpg(tmp_path):
    fake = tmp_path / "face.jpg"
    fake.write_text("this is not a picture\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image(fake)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such image"):
        load_image(tmp_path / "nope.jpg")


def test_too_large_is_refused_before_decoding():
    with pytest.raises(ImageTooLargeError, match="limit"):
        load_image(_png(3000, 2000), max_pixels=1_000_000)


def test_unsupported_type():
    with pytest.raises(ImageError, match="cannot read an image from int"):
        load_image(42)
