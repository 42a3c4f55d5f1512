"""Picture conditions: when a face is outside the conditions the threshold was
measured in, verify and the dashboard say so."""

import numpy as np
import pytest

from facelib.data.detection import Face
from facelib.data.images import load_image
from facelib.data.quality import LIMITS, face_conditions, light_corrected
from facelib.evaluation.robustness import side_light
from facelib.recognition.verification import FaceVerifier


def _crop(value: float = 128.0, side: int = 160) -> np.ndarray:
    return np.full((side, side, 3), value, np.uint8)


def _face(side: int = 110, landmarks=None) -> Face:
    return Face((20, 20, side, side), 1.0, None if landmarks is None else np.array(landmarks, np.float32))


def test_an_even_mid_grey_frontal_face_is_within_the_conditions():
    level = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]])  # nose under the eyes' middle
    assert face_conditions(_crop(), _face(landmarks=level)).warnings() == []


@pytest.mark.parametrize(
    ("crop", "expected"),
    [
        (_crop(LIMITS["darkest_brightness"] - 20), "dark"),
        (_crop(LIMITS["brightest_brightness"] + 20), "washed out"),
    ],
)
def test_dark_and_washed_out_faces_are_named(crop, expected):
    assert face_conditions(crop, _face()).warnings() == [expected]


def test_a_face_lit_from_one_side_is_named():
    crop = _crop(180)
    crop[:, :80] = 40
    assert "lit from one side" in face_conditions(crop, _face()).warnings()


def test_a_small_face_is_named_with_its_size():
    assert face_conditions(_crop(), _face(side=30)).warnings() == ["small face (30 px)"]
    assert face_conditions(_crop(), None).warnings() == []  # no face: nothing to measure


def test_a_turned_head_is_named_but_a_tilted_one_is_not():
    turned = [[40, 50], [80, 50], [78, 70], [50, 90], [80, 90]]  # nose near one eye
    assert face_conditions(_crop(), _face(landmarks=turned)).warnings() == ["turned"]
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    level = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], float)
    tilted = (level - 60) @ rotation.T + 60
    assert face_conditions(_crop(), _face(landmarks=tilted)).warnings() == []


def test_verify_names_the_picture_outside_the_conditions(smoke_model, lfw_root):
    verifier = FaceVerifier(smoke_model)
    picture = load_image(lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg")
    clean = verifier.verify(picture, picture)
    assert clean.caveats == [] and clean.to_dict()["caveats"] == []
    shaded = side_light(picture, np.random.default_rng(0), darkest=0.05)
    result = FaceVerifier(smoke_model, no_face="whole").verify(picture, shaded)
    assert result.faces[1].conditions and result.caveats[0].startswith("image 2: ")


def test_light_correction_brings_a_dark_face_to_mid_grey_and_leaves_others_alone():
    dark = _crop(30)
    dark[:, :, 0] = 40  # a colour, so the curve is seen per channel
    corrected = light_corrected(dark, face_conditions(dark, _face()))
    assert abs(float(corrected.mean()) - 128) < 20 and corrected.mean() > 3 * dark.mean()
    even = _crop(128)
    assert light_corrected(even, face_conditions(even, _face())) is even
    small = _crop(128)
    assert light_corrected(small, face_conditions(small, _face(side=20))) is small  # not a light problem


def test_verify_corrects_the_light_of_a_shaded_face_unless_told_not_to(smoke_model, lfw_root):
    picture = load_image(lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg")
    shaded = side_light(picture, np.random.default_rng(0), darkest=0.05)
    corrected = FaceVerifier(smoke_model, no_face="whole")
    plain = FaceVerifier(smoke_model, no_face="whole", correct_light=False)
    crop, found = corrected.face_crop(shaded)
    as_is, found_as_is = plain.face_crop(shaded)
    assert found.light_corrected and not found_as_is.light_corrected
    assert crop.mean() > as_is.mean() + 10
    assert not corrected.face_crop(picture)[1].light_corrected  # LFW's own light: untouched
