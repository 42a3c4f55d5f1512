"""Calibrating on the gallery (calibrate on my gallery): in the controller, in a verifier
that loads the calibration by name, and with the page's button."""

import shutil

import numpy as np
import pytest
from helpers import THUMBNAIL, unit

from facelib.app.dashboard import Dashboard
from facelib.app.dashboard_controller import DashboardController
from facelib.recognition.calibration import (
    Calibration,
    calibration_from_embeddings,
    calibration_path,
    load_calibration,
    save_calibration,
)
from facelib.recognition.gallery import Gallery, model_id
from facelib.recognition.identification import DEFAULT_FPIR, ImpostorCurve
from facelib.recognition.verification import FaceVerifier

from .helpers import MODEL, FakeVerifier, _distance


def _enroll_chosen(controller, people):
    for name, vectors in people.items():
        for vector in vectors:
            controller.gallery.enroll(name, unit(*vector), THUMBNAIL)


# Three people with two templates each, and one with a single template: 3 same-person
# pairs (up to 0.28 apart) and 18 different-person pairs (from 1.04).
CALIBRATION_PEOPLE = {
    "Ada": [(1, 0.1, 0, 0, 0), (1, -0.1, 0, 0, 0)],
    "Grace": [(0.4, 1, 0.1, 0, 0), (0.4, 1, -0.1, 0, 0)],
    "Linus": [(0, 0, 1, 0.1, 0), (0, 0.2, 1, -0.1, 0)],
    "Ken": [(0, 0, 0, 0, 1)],
}


def _expected_calibration():
    """The threshold as `facelib calibrate` fits it on these templates (every same-person
    pair, a seeded sample of as many different-person ones), and every different distance."""
    rows = [(name, unit(*v)) for name, vectors in CALIBRATION_PEOPLE.items() for v in vectors]
    same, different = [], []
    for i, (a, x) in enumerate(rows):
        for b, y in rows[i + 1 :]:
            (same if a == b else different).append(_distance(x, y))
    labels = [name for name, _ in rows]
    fitted = calibration_from_embeddings(np.array([v for _, v in rows]), labels, "gallery", "x")
    assert max(same) < fitted.threshold < min(different)  # the embeddings were chosen so
    return fitted.threshold, np.array(different)


def test_calibrating_on_the_gallery_needs_three_people_with_two_templates(tmp_path):
    controller = DashboardController(FakeVerifier(tmp_path / "model"), Gallery.load(MODEL, tmp_path / "g"))
    _enroll_chosen(controller, {k: CALIBRATION_PEOPLE[k] for k in ("Ada", "Grace", "Ken")})
    ready, note = controller.gallery_calibration_readiness()
    assert not ready and note.startswith("Needs 3 people with at least 2 templates each (now 2)")
    refused = controller.calibrate_on_gallery()
    assert refused.is_error and "Needs 3 people" in refused.message
    assert not (tmp_path / "model" / "calibrations").exists() and controller.verifier.threshold == 0.9


def test_calibrating_on_the_gallery_saves_and_switches_to_it(tmp_path):
    verifier = FakeVerifier(tmp_path / "model")
    controller = DashboardController(verifier, Gallery.load(MODEL, tmp_path / "g"))
    _enroll_chosen(controller, CALIBRATION_PEOPLE)
    assert controller.gallery_calibration_readiness()[0]
    before = controller.identify(unit(1, 0, 0, 0, 0))
    outcome = controller.calibrate_on_gallery()

    threshold, different = _expected_calibration()
    assert not outcome.is_error and outcome.calibration_changed
    assert "Calibrated on your gallery: verification threshold" in outcome.message
    assert f"{threshold:.3f} (was 0.900)" in outcome.message
    saved = load_calibration(tmp_path / "model", "gallery")
    assert str(calibration_path(tmp_path / "model", "gallery")) in outcome.message
    assert saved.threshold == pytest.approx(threshold) and saved.curve.pairs == len(different) == 18
    counts = "4 people, 7 pictures; 3 same-person and 3 different-person pairs"
    assert counts in saved.threshold_source and counts in outcome.message
    assert "18 different-person template pairs" in outcome.message
    assert "This page uses it until it is reloaded" in outcome.message and "replaced" not in outcome.message
    # 1% of strangers over 7 templates asks 0.0014 per comparison; 18 pairs measure 1/18 at best
    assert (
        "needs a false-accept rate of 0.0014 per comparison, below what calibration 'gallery' can measure "
        "(18 different-person pairs" in outcome.message
    )
    # The page now runs on it: verdicts and names.
    assert verifier.threshold == pytest.approx(threshold) and controller.calibration_name == "gallery"
    assert "calibration 'gallery'" in verifier.threshold_source
    after = controller.identify(unit(1, 0, 0, 0, 0))
    expected = ImpostorCurve.from_distances(different, "x").threshold_for(DEFAULT_FPIR, 7)
    assert after.threshold == pytest.approx(expected) and after.threshold != before.threshold


def test_calibrating_on_the_gallery_says_it_replaced_a_saved_one(tmp_path):
    model = tmp_path / "model"
    curve = ImpostorCurve.from_distances(np.linspace(0.5, 1.5, 100), "the folder")
    save_calibration(model, Calibration("gallery", 0.7, "facelib calibrate on /my/photos", curve))
    controller = DashboardController(FakeVerifier(model), Gallery.load(MODEL, tmp_path / "g"))
    _enroll_chosen(controller, CALIBRATION_PEOPLE)
    ready, note = controller.gallery_calibration_readiness()
    assert ready and "Calibrating replaces the saved calibration 'gallery'" in note
    outcome = controller.calibrate_on_gallery()
    assert not outcome.is_error
    assert "It replaced the one saved there before (facelib calibrate on /my/photos)" in outcome.message
    assert load_calibration(model, "gallery").threshold != 0.7


def test_a_rate_the_calibration_cannot_measure_is_warned_of(chosen):
    # the fake curve has 1,000 pairs; 5 templates: 0.1% needs 0.0002 per comparison, 10% needs 0.021
    assert "below what calibration 'lfw' can measure (1,000 different-person pairs" in (
        chosen.set_identification(fpir=0.001).message
    )
    assert "Warning" not in chosen.set_identification(fpir=0.1).message


def test_a_gallery_calibration_is_the_one_a_verifier_loads_by_name(smoke_model, tmp_path):
    model = tmp_path / "model"  # a copy: the calibration is saved into the model folder
    model.mkdir()
    (model / "model.keras").symlink_to(smoke_model / "model.keras")
    shutil.copy(smoke_model / "card.json", model / "card.json")
    verifier = FaceVerifier(model, no_face="error")
    controller = DashboardController(verifier, Gallery.load(model_id(model, verifier.card), tmp_path / "g"))
    dimension = verifier.model.output_shape[-1]
    for name, vectors in CALIBRATION_PEOPLE.items():
        for vector in vectors:
            controller.gallery.enroll(name, unit(*vector, *[0] * (dimension - 5)), THUMBNAIL)
    assert controller.calibrate_on_gallery().calibration_changed
    loaded = FaceVerifier(model, no_face="error", calibration="gallery")
    assert (verifier.threshold, verifier.threshold_source) == (loaded.threshold, loaded.threshold_source)
    assert verifier.calibration_name == loaded.calibration_name == "gallery"
    assert verifier.open_set_rule() == loaded.open_set_rule()


# ===================================================================== the page


def test_the_calibrate_button_waits_for_enough_templates_then_switches(smoke_model, tmp_path, monkeypatch):
    model = tmp_path / "model"  # a copy: the calibration is saved into the model folder
    model.mkdir()
    (model / "model.keras").symlink_to(smoke_model / "model.keras")
    shutil.copy(smoke_model / "card.json", model / "card.json")
    board = Dashboard(model, gallery_folder=tmp_path / "g", camera=False)
    assert board.calibrate_button.disabled and "Needs 3 people" in board.calibration_note.value
    dimension = board.verifier.model.output_shape[-1]
    for name, vectors in CALIBRATION_PEOPLE.items():
        for vector in vectors:
            board.controller.gallery.enroll(name, unit(*vector, *[0] * (dimension - 5)), THUMBNAIL)
    board._refresh_people()
    assert (
        not board.calibrate_button.disabled and "thresholds can be measured" in board.calibration_note.value
    )
    assert "calibration <b" in board.header.value and ">lfw</b>" in board.header.value
    board.calibrate_button.click()
    threshold, _ = _expected_calibration()
    assert "Calibrated on your gallery" in board.message.value
    assert f"threshold {threshold:.3f}" in board.header.value and ">gallery</b>" in board.header.value
    assert "on this page until it is reloaded" in board.header.value
    assert "Calibrating replaces the saved calibration &#x27;gallery&#x27;" in board.calibration_note.value
