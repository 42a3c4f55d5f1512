import io

import numpy as np
import pytest
from PIL import Image

from facelib.core.errors import ImageError, ImageTooLargeError
from facelib.data.images import load_image


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_input_kind_gives_the_same_rgb(sample_jpeg):
    from_path = load_image(sample_jpeg)
    assert from_path.shape == (250, 250, 3) and from_path.dtype == np.uint8
    assert from_path.flags.writeable  # callers draw boxes on it
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


# ------------------------------------------------------------- pictures as phones and tools write them


def _encode(rgb_or_image, fmt: str, **options) -> bytes:
    image = rgb_or_image if isinstance(rgb_or_image, Image.Image) else Image.fromarray(rgb_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def face(sample_jpeg):
    return load_image(sample_jpeg)


def test_jpeg_with_data_after_its_end_marker_loads(sample_jpeg, face, tmp_path):
    # Motion photos append a video, some cameras a trailer: 200 kB after the image.
    trailer = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    path = tmp_path / "motion.jpg"
    path.write_bytes(sample_jpeg.read_bytes() + trailer)
    assert np.array_equal(load_image(path), face)


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.999])
@pytest.mark.parametrize("kind", ["jpeg", "progressive jpeg", "png"])
def test_truncated_files_are_refused(face, kind, fraction):
    data = {
        "jpeg": lambda: _encode(face, "JPEG", quality=95),
        "progressive jpeg": lambda: _encode(face, "JPEG", quality=95, progressive=True),
        "png": lambda: _encode(face, "PNG"),
    }[kind]()
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: int(len(data) * fraction)])


@pytest.mark.parametrize(
    ("orientation", "stored_as"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_exif_orientation_turns_a_sideways_picture_upright(face, orientation, stored_as):
    # A phone held upright stores the pixels sideways and says so in the EXIF tag.
    sideways = Image.fromarray(face[:, :200]).transpose(stored_as)  # not square: the shape tells too
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(sideways, "JPEG", quality=95, exif=exif)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.size == (250, 200)  # the file really holds it sideways
    upright = load_image(data)
    assert upright.shape == (250, 200, 3)
    assert np.abs(upright.astype(int) - face[:, :200]).mean() < 3  # only JPEG's loss
    assert np.abs(load_image(Image.open(io.BytesIO(data))).astype(int) - upright).max() == 0


def test_progressive_jpeg(face):
    data = _encode(face, "JPEG", quality=95, progressive=True)
    with Image.open(io.BytesIO(data)) as image:
        assert image.info.get("progressive")
    assert np.abs(load_image(data).astype(int) - face).mean() < 3


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_tiff(face, compression):
    assert np.array_equal(load_image(_encode(face, "TIFF", compression=compression)), face)


def test_16_bit_pictures_are_scaled_not_clipped(face):
    import cv2

    wide = face.astype(np.uint16) * 257  # the same picture in 16 bits: 255 → 65535
    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    grey3 = np.repeat(grey[..., None], 3, axis=2)
    encoded = {
        "16-bit RGB PNG": (cv2.imencode(".png", wide[..., ::-1])[1].tobytes(), face),
        "16-bit RGB TIFF": (cv2.imencode(".tiff", wide[..., ::-1])[1].tobytes(), face),
        "16-bit grey PNG": (_encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG"), grey3),
        "16-bit grey TIFF": (cv2.imencode(".tiff", grey.astype(np.uint16) * 257)[1].tobytes(), grey3),
    }
    for name, (data, expected) in encoded.items():
        assert np.array_equal(load_image(data), expected), name
    assert np.array_equal(load_image(wide), face)  # a uint16 array too


def test_palette_pictures_with_and_without_transparency(face):
    palette = Image.fromarray(face).quantize(64)
    colours = np.asarray(palette.convert("RGB"))
    assert np.array_equal(load_image(_encode(palette, "PNG")), colours)
    assert np.array_equal(load_image(_encode(palette, "GIF")), colours)
    clear = np.asarray(palette) == 0
    assert 0 < clear.sum() < clear.size
    seen = load_image(_encode(palette, "PNG", transparency=0))
    assert (seen[clear] == 255).all()  # transparent pixels lie on white
    assert np.array_equal(seen[~clear], colours[~clear])


def test_transparent_png_lies_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, ..., 3] = 255  # top half opaque red, bottom half fully transparent
    seen = load_image(_encode(rgba, "PNG"))
    assert seen[0, 0].tolist() == [200, 0, 0] and seen[3, 0].tolist() == [255, 255, 255]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only claims a size: what a decompression bomb's header looks like."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("max_pixels", [40_000_000, 10**12])
def test_a_huge_size_in_the_header_is_refused_before_decoding(max_pixels):
    # 900 megapixels claimed by a 57-byte file: refused by facelib's limit, or by
    # PIL's own bomb check when the caller raised facelib's.
    with pytest.raises(ImageTooLargeError):
        load_image(_png_header(30_000, 30_000), max_pixels=max_pixels)


def test_formats_that_would_run_other_programs_are_not_opened():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageError, match="not an image"):
        load_image(eps)


def test_an_empty_array_is_refused_clearly():
    with pytest.raises(ImageError, match="must hold pixels"):
        load_image(np.zeros((0, 5, 3), np.uint8))
