"""Picture conditions: when a face is outside the conditions the threshold was
measured in, verify and the dashboard say so."""

import numpy as np
import pytest

from facelib.data.detection import Face
from facelib.data.images import load_image
from facelib.data.quality import (
    LIMITS,
    QUALITY_LIMITS,
    curve_per_half,
    face_conditions,
    face_quality,
    light_corrected,
    one_curve,
    rate,
    sharpness,
)
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


def test_a_face_lit_from_one_side_gets_a_curve_per_half():
    crop = _crop(170)
    crop[:, :80] = 45  # the left half in shadow
    conditions = face_conditions(crop, _face())
    corrected = light_corrected(crop, conditions).astype(float)
    assert conditions.halves == (45.0, 170.0)
    # each half's middle to mid-grey: the shadow lifted, the lit side darkened
    assert abs(corrected[:, :60].mean() - 127) < 2 and abs(corrected[:, 100:].mean() - 127) < 2
    one = one_curve(crop, conditions.brightness).astype(float)  # verify's curve before
    assert one[:, 100:].mean() - one[:, :60].mean() > 60  # leaves the two sides far apart


def test_the_two_halves_curves_blend_evenly_across_the_middle_fifth():
    flat = _crop(100, side=50)
    assert np.array_equal(curve_per_half(flat, (60.0, 60.0)), one_curve(flat, 60.0))  # even: one curve
    across = curve_per_half(flat, (60.0, 200.0))[0, :, 0].astype(float)
    left, right = float(one_curve(flat, 60.0)[0, 0, 0]), float(one_curve(flat, 200.0)[0, 0, 0])
    assert np.all(across[:20] == left) and np.all(across[30:] == right)  # outside the middle fifth
    assert np.all(np.diff(across) <= 0)  # from the left curve to the right one, never back
    assert np.abs(np.diff(across)).max() < (left - right) / 5 + 1  # in ten even steps, no edge
    assert abs(across[24:26].mean() - (left + right) / 2) < 1.5  # half of each in the middle


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


def test_an_equalising_crop_policy_is_applied_after_the_light_is_measured_and_corrected(
    smoke_model, lfw_root, tmp_path
):
    from facelib.data.crop import finish_crop
    from facelib.recognition.card import ModelCard

    equalizing = tmp_path / "equalizing"
    equalizing.mkdir()
    (equalizing / "model.keras").symlink_to(smoke_model / "model.keras")
    card = ModelCard.load(smoke_model)
    card.crop_settings["equalize"] = True
    card.save(equalizing)

    picture = load_image(lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg")
    shaded = side_light(picture, np.random.default_rng(0), darkest=0.05)
    plain_crop, plain_found = FaceVerifier(smoke_model, no_face="whole").face_crop(shaded)
    verifier = FaceVerifier(equalizing, no_face="whole")
    assert verifier.crop_settings.equalize
    crop, found = verifier.face_crop(shaded)
    # The warning and the correction see the light the picture was taken in…
    assert "lit from one side" in found.conditions and found.light_corrected
    assert found.conditions == plain_found.conditions and found.quality == plain_found.quality
    # …and the policy's last step comes after them, as training's crops had it.
    assert np.array_equal(crop, finish_crop(plain_crop, verifier.crop_settings))
    assert not np.array_equal(crop, plain_crop)


# ------------------------------------------------------------------ enrolment quality


def _textured(level: float = 128.0, side: int = 160, seed: int = 0) -> np.ndarray:
    """A generated crop with detail at the scale of a face's (skin, hair, eyes): noise
    smoothed over ~1 px around `level`."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (side, side)).astype(np.float32)
    detail = cv2.GaussianBlur(noise, (0, 0), 1.0)
    grey = np.clip(level + 30.0 * detail / detail.std(), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


LEVEL_EYES = [[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]]


def test_a_sharp_well_lit_large_frontal_face_passes():
    report = face_quality(_textured(), _face(120, LEVEL_EYES))
    assert report.status == "pass" and report.reasons == [] and report.advice == []
    assert report.value("eye_angle") == pytest.approx(0.0) and report.value("face_px") == 120
    assert report.summary() == "pass"


def test_sharp_against_blurred():
    import cv2

    crop = _textured()
    sharp, blurred = sharpness(crop), sharpness(cv2.GaussianBlur(crop, (0, 0), 3.0))
    warn, fail = QUALITY_LIMITS["sharpness"]["low"]
    assert sharp > warn > fail > blurred
    report = face_quality(cv2.GaussianBlur(crop, (0, 0), 3.0), _face(120, LEVEL_EYES))
    assert report.status == "fail" and report.reasons == [f"the face is blurred (sharpness {blurred:.0f})"]
    assert report.advice == ["hold still, and focus"]


def test_bright_against_dark():
    dark = face_quality(_textured(25.0), _face(120, LEVEL_EYES))
    assert dark.status == "fail" and dark.advice == ["face the light"]
    assert dark.reasons[0].startswith("the face is dark (brightness ")
    warn, fail = QUALITY_LIMITS["brightness"]["low"]
    dim = face_quality(_textured((warn + fail) / 2), _face(120, LEVEL_EYES))  # between the two
    assert dim.status == "warn" and [m.name for m in dim.measures if m.status == "warn"] == ["brightness"]
    washed = face_quality(_textured(240.0), _face(120, LEVEL_EYES))
    assert washed.status == "fail" and washed.advice == ["step out of direct light"]
    assert face_quality(_textured(128.0), _face(120, LEVEL_EYES)).status == "pass"


def test_large_against_small():
    crop = _textured()
    assert face_quality(crop, _face(200)).value("face_px") == 200
    small = face_quality(crop, _face(28))
    assert small.status == "warn" and small.reasons == ["the face is small (28 px)"]
    tiny = face_quality(crop, _face(20))
    assert tiny.status == "fail" and tiny.advice == ["move closer to the camera"]


def test_a_tilted_head_and_a_turned_face_are_named_and_a_missing_face_fails():
    tilted = [[40, 40], [80, 80], [60, 60], [45, 90], [75, 90]]  # eye line at 45°
    report = face_quality(_textured(), _face(120, tilted))
    assert report.value("eye_angle") == pytest.approx(45.0) and report.status == "fail"
    assert "hold the head level" in report.advice
    turned = [[40, 50], [80, 50], [92, 70], [45, 90], [75, 90]]  # nose far off the eyes' middle
    assert "look straight at the camera" in face_quality(_textured(), _face(120, turned)).advice
    # no landmarks (Haar): pose is not measured, so it cannot fail the face
    assert face_quality(_textured(), _face(120)).value("eye_angle") is None
    nothing = face_quality(_textured(), None)
    assert nothing.status == "fail" and nothing.reasons[0] == "no face was found"


def test_the_limits_are_data_a_caller_can_change():
    crop, face = _textured(), _face(28)
    assert face_quality(crop, face).status == "warn"
    relaxed = {**QUALITY_LIMITS, "face_px": {"low": (25, 20)}}
    assert face_quality(crop, face, relaxed).status == "pass"
    assert rate("face_px", None).status == "pass"  # not measurable: not held against the face
    as_json = face_quality(_textured(25.0), face).to_dict()
    assert as_json["status"] == "fail" and as_json["measures"]["brightness"]["status"] == "fail"
    assert as_json["reasons"][0].startswith("the face is dark") and "face the light" in as_json["advice"]
