import numpy as np
import pytest

from facelib.crop import centre_crop, choose_face, crop_face
from facelib.detection import Face, HaarDetector, YuNetDetector, make_detector
from facelib.errors import DetectorUnavailableError
from facelib.images import load_image


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


def test_crop_is_square_and_levels_tilted_eyes():
    image = np.zeros((200, 200, 3), np.uint8)
    image[90:110, :, :] = 255  # a white band, tilted below by the "eyes"
    level = Face((50, 50, 100, 100), 1.0, np.array([[70, 100], [130, 100]], np.float32))
    tilted = Face((50, 50, 100, 100), 1.0, np.array([[70, 90], [130, 110]], np.float32))
    assert crop_face(image, level, size=64).shape == (64, 64, 3)
    straight = crop_face(image, level, size=64, align=True)
    rotated = crop_face(image, tilted, size=64, align=True)
    assert not np.array_equal(straight, rotated)  # alignment used the eyes
    assert np.array_equal(straight, crop_face(image, level, size=64, align=False))
    assert centre_crop(image, size=32).shape == (32, 32, 3)
