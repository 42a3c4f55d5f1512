import cv2
import numpy as np
import pytest

from facelib.core.errors import ConfigError, DetectorUnavailableError
from facelib.data.crop import (
    DETECT_MAX_SIDE,
    CropSettings,
    centre_crop,
    choose_face,
    crop_face,
    crop_picture,
    crop_square,
    eye_angle,
    finish_crop,
)
from facelib.data.detection import Face, HaarDetector, YuNetDetector, make_detector
from facelib.data.images import load_image


@pytest.fixture(scope="module")
def haar():
    return HaarDetector()


def test_haar_finds_the_face_in_an_lfw_image(haar, sample_jpeg):
    faces = haar.detect(load_image(sample_jpeg))
    assert len(faces) >= 1
    x, y, w, h = choose_face(faces, (250, 250)).box
    assert 60 < x + w / 2 < 190 and 60 < y + h / 2 < 190  # LFW centres its faces


@pytest.mark.parametrize("value", [0, 128, 255])
def test_haar_finds_nothing_in_a_blank_image(haar, value):
    assert haar.detect(np.full((250, 250, 3), value, np.uint8)) == []


def test_yunet_with_the_mirror_model_gives_box_and_landmarks(mirror, sample_jpeg):
    faces = YuNetDetector().detect(load_image(sample_jpeg))
    assert len(faces) >= 1
    face = choose_face(faces, (250, 250))
    assert face.score > 0.7 and face.landmarks.shape == (5, 2)
    (lx, ly), (rx, ry) = face.eyes
    assert lx < rx and abs(ly - ry) < 20  # two eyes, left to right, roughly level
    assert YuNetDetector().detect(np.zeros((250, 250, 3), np.uint8)) == []


def test_a_wrong_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "yunet.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(DetectorUnavailableError, match="not a YuNet model"):
        YuNetDetector(bad)


def test_unknown_detector():
    with pytest.raises(DetectorUnavailableError, match="unknown detector"):
        make_detector("mtcnn")


def test_choose_face_prefers_the_central_one_of_similar_size():
    edge = Face((0, 0, 60, 60), 1.0)
    centre = Face((100, 100, 55, 55), 1.0)
    assert choose_face([edge, centre], (250, 250)) == centre
    assert choose_face([], (250, 250)) is None


def _dots(image: np.ndarray) -> list[tuple[float, float]]:
    """Centres (x, y) of the bright blobs, left to right."""
    import cv2

    n, _, _, centres = cv2.connectedComponentsWithStats((image[..., 0] > 127).astype(np.uint8))
    return sorted(tuple(c) for c in centres[1:n])


def test_crop_is_square_and_levels_tilted_eyes():
    import cv2

    # Two "eyes" on a line tilted by 20 degrees (the right one lower), the face box
    # around them; after alignment they must lie level, and turning the other way
    # (the sign bug this test guards against) would double the tilt instead.
    image = np.zeros((200, 200, 3), np.uint8)
    tilt = np.radians(20)
    left = np.array([100 - 30 * np.cos(tilt), 95 - 30 * np.sin(tilt)])
    right = np.array([100 + 30 * np.cos(tilt), 95 + 30 * np.sin(tilt)])
    for x, y in (left, right):
        cv2.circle(image, (round(x), round(y)), 4, (255, 255, 255), -1)
    face = Face((50, 50, 100, 100), 1.0, np.array([left, right], np.float32))

    crop = crop_face(image, face, size=128, margin=0.2, align=True)
    assert crop.shape == (128, 128, 3)
    (lx, ly), (rx, ry) = _dots(crop)
    assert abs(ly - ry) < 1.5 and rx - lx > 40  # level, and still two eyes apart

    unaligned = _dots(crop_face(image, face, size=128, margin=0.2, align=False))
    assert unaligned[1][1] - unaligned[0][1] > 15  # the tilt is really there without alignment
    reversed_turn = crop_square(image, (100, 100), 140, 128, angle=-eye_angle(face))
    (_, ly2), (_, ry2) = _dots(reversed_turn)
    assert ry2 - ly2 > 30  # the opposite rotation would not level them


def test_centre_crop_fallback_takes_the_central_part():
    image = np.full((200, 300, 3), 40, np.uint8)
    image[45:155, 95:205] = 220  # a little more than the central 50% of the shorter side
    assert (centre_crop(image, size=32, fraction=0.5) == 220).all()
    whole = centre_crop(image, size=32, fraction=1.0)
    assert (whole == 40).any() and (whole == 220).any()


# ----------------------------------------------------------------- the crop policy


@pytest.fixture(scope="module")
def policy():
    settings = CropSettings()
    return settings, settings.make_detector()


@pytest.mark.parametrize("value", [0, 128, 255])
def test_the_policy_falls_back_to_the_central_half_when_there_is_no_face(policy, value):
    settings, detector = policy
    image = np.full((200, 300, 3), value, np.uint8)
    image[45:155, 95:205] = 255 - value  # a little more than the central 50% of the shorter side
    crop, info = crop_picture(image, detector, settings)
    assert info.face is None and info.faces_found == 0 and not info.padded
    assert crop.shape == (settings.size, settings.size, 3) and (crop == 255 - value).all()


def test_a_small_face_in_a_large_picture_is_found(sample_jpeg):
    rgb = load_image(sample_jpeg)
    x, y, w, h = choose_face(HaarDetector().detect(rgb), rgb.shape).box
    canvas = np.full((1200, 1600, 3), (90, 110, 130), np.uint8)
    canvas[300:550, 900:1150] = rgb  # a 115 px face: under 10% of the shorter side
    (fx, fy, fw, fh), *_ = [f.box for f in HaarDetector().detect(canvas)]
    assert abs(fx + fw / 2 - (900 + x + w / 2)) < 8 and abs(fy + fh / 2 - (300 + y + h / 2)) < 8
    assert HaarDetector(min_face_px=10_000).detect(canvas) == []  # a fraction of the side alone misses it


def test_a_picture_larger_than_the_search_size_maps_faces_back(sample_jpeg, policy):
    settings, detector = policy
    rgb = load_image(sample_jpeg)
    x, y, w, h = choose_face(detector.detect(rgb), rgb.shape).box
    big = np.full((2400, 3200, 3), 120, np.uint8)
    big[900:1400, 1800:2300] = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)  # the face twice as big
    assert max(big.shape) > DETECT_MAX_SIDE
    crop, info = crop_picture(big, detector, settings)
    fx, fy, fw, fh = info.face.box
    assert (
        abs(fx + fw / 2 - (1800 + 2 * (x + w / 2))) < 16 and abs(fy + fh / 2 - (900 + 2 * (y + h / 2))) < 16
    )
    assert 0.8 < fw / (2 * w) < 1.25
    assert (
        np.abs(
            crop.astype(int) - crop_face(rgb, choose_face(detector.detect(rgb), rgb.shape)).astype(int)
        ).mean()
        < 12
    )


def test_a_tight_face_crop_is_found_on_a_padded_copy(sample_jpeg, policy):
    settings, detector = policy
    rgb = load_image(sample_jpeg)
    x, y, w, h = choose_face(detector.detect(rgb), rgb.shape).box
    d = int(0.15 * w)  # an ID-photo-like crop: the face fills the frame
    tight = np.ascontiguousarray(rgb[y + d : y + h - d, x + d : x + w - d])
    assert detector.detect(tight) == []  # plain detection gives up

    crop, info = crop_picture(tight, detector, settings)
    assert info.padded and info.face is not None
    tx, ty, tw, th = info.face.box
    assert tx < 0 and ty < 0 and tw > tight.shape[1]  # the face runs past the tight picture's edges
    # In the original picture's pixels it is the face found there.
    ox, oy = tx + x + d, ty + y + d
    assert abs(ox + tw / 2 - (x + w / 2)) < 0.1 * w and abs(oy + th / 2 - (y + h / 2)) < 0.1 * w
    assert 0.75 < tw / w < 1.25
    # The middle of the crop (inside the tight picture) matches the crop of the original.
    same_face = crop_face(rgb, Face((ox, oy, tw, th), 1.0), settings.size, settings.margin, align=False)
    middle = slice(settings.size // 3, 2 * settings.size // 3)
    assert np.abs(crop[middle, middle].astype(int) - same_face[middle, middle].astype(int)).mean() < 4

    no_retry = CropSettings(pad_retry=0)
    assert crop_picture(tight, no_retry.make_detector(), no_retry)[1].face is None


def test_a_sideways_phone_picture_is_found_only_once_turned_upright(sample_jpeg, tmp_path):
    import io

    from PIL import Image

    haar = HaarDetector()
    rgb = load_image(sample_jpeg)
    for orientation, stored_as in [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]:
        exif = Image.Exif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        Image.fromarray(rgb).transpose(stored_as).save(buffer, "JPEG", quality=95, exif=exif)
        stored = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        assert haar.detect(np.ascontiguousarray(stored)) == []  # as stored: on its side, no face
        faces = haar.detect(load_image(buffer.getvalue()))
        assert len(faces) == 1
        assert np.allclose(faces[0].box, choose_face(haar.detect(rgb), rgb.shape).box, atol=6)


def test_crop_settings_from_an_older_file_or_card():
    old = {"variant": "lfw-deepfunneled", "detector": "haar", "size": 160, "margin": 0.2, "align": True}
    old |= {"no_face": "fallback", "min_face": 0.3}
    assert CropSettings.from_dict(old) == CropSettings()
    assert CropSettings.from_dict({**old, "margin": 0.3}).margin == 0.3
    with pytest.raises(ConfigError, match="pad_retry"):
        CropSettings(pad_retry=2)
    with pytest.raises(ConfigError, match="fallback_fraction"):
        CropSettings.from_dict({**old, "fallback_fraction": 0})


def test_a_big_face_is_shrunk_by_averaging_not_aliased(sample_jpeg):
    import cv2

    # The same face 6 times larger (a phone photo's face is often over 1,000 px), with
    # pixel-fine texture (hair, sensor noise) that averages out at the crop's scale:
    # its crop must be the 250 px picture's. Bilinear warping alone missed by 7 levels.
    rgb = load_image(sample_jpeg)
    big = cv2.resize(rgb, None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC).astype(int)
    rows, cols = np.indices(big.shape[:2])
    big = np.clip(big + np.where((rows + cols) % 2 == 0, 30, -30)[..., None], 0, 255).astype(np.uint8)
    expected = crop_square(rgb, (127.5, 122.5), 161, 160, angle=10)
    crop = crop_square(big, (128 * 6 - 0.5, 123 * 6 - 0.5), 161 * 6, 160, angle=10)
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 1.5


def test_five_point_alignment_puts_the_landmarks_on_the_template():
    """Landmarks that are a rotated, scaled, shifted copy of the template go back onto
    it; a face without 5 landmarks has no five-point crop (the box crop is used)."""
    import math

    from facelib.data.crop import FIVE_POINT_TEMPLATE_112, crop_five_point, five_point_matrix
    from facelib.data.detection import Face

    angle, scale, shift = math.radians(17), 1.8, np.array([40.0, 25.0])
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = (FIVE_POINT_TEMPLATE_112 @ rotation.T + shift).astype(np.float32)
    size, margin = 160, 0.2
    matrix = five_point_matrix(landmarks, size, margin)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    expected = (FIVE_POINT_TEMPLATE_112 + 112 * margin) * size / (112 * (1 + 2 * margin))
    assert np.allclose(mapped, expected, atol=0.05)

    picture = np.zeros((400, 400, 3), np.uint8)
    for x, y in landmarks:  # a dot on each landmark: each must come out on its template point
        cv2.circle(picture, (round(x), round(y)), 3, (255, 255, 255), -1)
    crop = crop_five_point(picture, Face((0, 0, 10, 10), 1.0, landmarks), size, margin)
    for x, y in expected:
        assert crop[round(y), round(x)].mean() > 100
    assert crop_five_point(picture, Face((0, 0, 10, 10), 1.0, landmarks[:2]), size, margin) is None


def test_five_point_alignment_is_refused_without_a_landmark_detector():
    from facelib.core.errors import ConfigError
    from facelib.data.crop import CropSettings

    with pytest.raises(ConfigError, match="yunet"):
        CropSettings(detector="haar", five_point=True)
    assert CropSettings(detector="yunet", five_point=True).five_point


def _shaded(rgb: np.ndarray) -> np.ndarray:
    """The picture with its right half in shadow (a quarter of the light)."""
    shaded = rgb.astype(np.float32)
    shaded[:, rgb.shape[1] // 2 :] *= 0.25
    return shaded.astype(np.uint8)


def _halves(crop: np.ndarray) -> tuple[float, float]:
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    half = grey.shape[1] // 2
    return float(grey[:, :half].std()), float(grey[:, half:].std())


def test_the_equalising_policy_gives_the_face_in_shadow_its_detail(sample_jpeg):
    shaded = _shaded(load_image(sample_jpeg))
    plain, equalizing = CropSettings(), CropSettings(equalize=True)
    detector = plain.make_detector()
    raw, info = crop_picture(shaded, detector, plain)
    finished, same_info = crop_picture(shaded, detector, equalizing)
    assert info == same_info  # the same face, cropped alike; only the last step differs
    assert np.array_equal(crop_picture(shaded, detector, equalizing, finish=False)[0], raw)
    assert np.array_equal(finish_crop(raw, equalizing), finished)
    assert finish_crop(raw, plain) is raw
    lit, dark = _halves(raw)
    lit_eq, dark_eq = _halves(finished)
    assert dark < 0.3 * lit  # the shadow hides the detail…
    assert dark_eq > 1.7 * dark  # …the equalised crop brings it back, more than on the lit side
    assert dark_eq / lit_eq > 1.4 * dark / lit
    # Colour is kept: the lit half's hue barely moves.
    lit_half = (slice(None), slice(0, raw.shape[1] // 2))
    chroma = lambda c: cv2.cvtColor(c, cv2.COLOR_RGB2LAB)[lit_half][..., 1:].astype(float).mean()  # noqa: E731
    assert abs(chroma(finished) - chroma(raw)) < 4


@pytest.mark.tensorflow  # training_data imports it
def test_an_equalised_crop_folder_is_named_and_read_back_as_such():
    from facelib.core import config
    from facelib.data.preprocess import output_dir
    from facelib.training.training_config import TrainConfig
    from facelib.training.training_data import crop_policy

    settings = CropSettings(detector="yunet", equalize=True)
    assert output_dir("lfw-deepfunneled", settings).name == "lfw-deepfunneled-yunet-160-eq"
    assert config.crops_folder("x", "yunet", 160, five_point=True, equalize=True) == "x-yunet-160-5pt-eq"
    for name, expected in [
        ("lfw-deepfunneled-yunet-160-eq", settings),
        ("lfw-deepfunneled-yunet-160-5pt-eq", CropSettings(detector="yunet", five_point=True, equalize=True)),
        ("lfw-deepfunneled-yunet-160", CropSettings(detector="yunet")),
    ]:
        assert crop_policy(TrainConfig(crops=name)) == expected, name
