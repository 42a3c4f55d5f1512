"""The dashboard without a browser: the controller (bytes in, verdicts out) and the page
over it (widget values)."""

import html
import json
import logging
import re
import shutil
import subprocess
import time
from types import SimpleNamespace

import cv2
import ipywidgets as w
import numpy as np
import pytest

from facelib import dashboard_controller
from facelib.calibration import (
    Calibration,
    calibration_from_embeddings,
    calibration_path,
    load_calibration,
    save_calibration,
)
from facelib.dashboard import SNAPSHOT_JS, Dashboard
from facelib.dashboard_controller import DashboardController, Person, Verdict
from facelib.decision import same_person
from facelib.evaluate import save_view1_distances
from facelib.gallery import THUMBNAILS, Gallery, model_id
from facelib.identification import DEFAULT_FPIR, FAR_GRID, ImpostorCurve, OpenSetRule
from facelib.verification import FaceVerifier


def _bytes(path):
    return path.read_bytes()


def _wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.fixture(scope="module")
def verifier(smoke_model):
    return FaceVerifier(smoke_model, no_face="error")


@pytest.fixture
def gallery_dir(tmp_path):
    return tmp_path / "gallery"


@pytest.fixture
def controller(verifier, gallery_dir):
    return DashboardController(verifier, Gallery.load(model_id(verifier.folder, verifier.card), gallery_dir))


@pytest.fixture
def board(smoke_model, gallery_dir):
    return Dashboard(smoke_model, gallery_folder=gallery_dir)


@pytest.fixture
def bush(lfw_root):
    return [lfw_root / "George_W_Bush" / f"George_W_Bush_{n:04d}.jpg" for n in (1, 2, 3)]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


# ===================================================================== controller


def test_reference_then_probe_gives_a_verdict(controller, verifier, bush):
    first = controller.handle_picture("reference", _bytes(bush[0]), source="a.jpg")
    assert first.verdict is None and not first.is_error and first.message == "a.jpg: face found."
    second = controller.handle_picture("probe", _bytes(bush[1]), source="b.jpg")
    verdict = second.verdict
    expected = float(np.linalg.norm(controller.reference.embedding - controller.probe.embedding))
    assert verdict == Verdict(
        pytest.approx(expected, abs=1e-6),
        verifier.threshold,
        same_person(expected, verifier.threshold),
        pytest.approx(verdict.elapsed_ms),
    )
    assert 0 < expected and verdict.elapsed_ms > 0
    assert controller.verdicts == 1


def test_a_new_reference_is_compared_with_the_probe_kept(controller, bush, lfw_root):
    controller.handle_picture("reference", _bytes(bush[0]))
    controller.handle_picture("probe", _bytes(bush[1]))
    serena = _bytes(lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg")
    outcome = controller.handle_picture("reference", serena)
    assert outcome.verdict.distance == pytest.approx(
        np.linalg.norm(controller.reference.embedding - controller.probe.embedding), abs=1e-6
    )
    assert controller.verdicts == 2


def test_a_frame_that_never_comes_is_dropped_and_live_mode_asks_again():
    clock = FakeClock()
    controller = DashboardController(
        SimpleNamespace(threshold=1.0), gallery=None, frame_timeout_s=5.0, clock=clock
    )
    assert controller.ask_for_live_frame() is True
    clock.now += 4.9
    assert controller.drop_stale_request() is None  # not late yet
    assert controller.ask_for_live_frame() is False and controller.live_skipped == 1
    clock.now += 0.2
    dropped = controller.drop_stale_request()
    assert dropped.is_error and "no frame within 5 s" in dropped.message
    assert "live mode asks again" in dropped.message and controller.pending is None
    assert controller.ask_for_live_frame() is True  # recovered
    assert controller.pending.target == "live" and controller.pending.asked_at == clock.now


def test_a_capture_that_never_comes_says_to_retry_and_a_late_frame_is_ignored():
    clock = FakeClock()
    controller = DashboardController(SimpleNamespace(threshold=1.0), gallery=None, clock=clock)
    assert controller.ask_for_frame("reference") is None
    clock.now += dashboard_controller.FRAME_TIMEOUT_S
    assert "click again to retry" in controller.drop_stale_request().message
    assert controller.frame_arrived(b"late frame") is None  # nobody waits for it: not analysed


def test_enrolling_needs_a_name_before_the_camera_is_asked(controller, bush):
    refusal = controller.ask_for_frame("enroll", enroll_name="  ")
    assert refusal.is_error and "name" in refusal.message and controller.pending is None
    outcome = controller.handle_picture("enroll", _bytes(bush[0]), enroll_name="")
    assert outcome.is_error and controller.gallery.names() == []


def test_gallery_identifies_another_picture_of_the_enrolled_person_not_someone_else(
    controller, verifier, lfw_root
):
    # Pictures the smoke model (on YuNet crops) tells apart with the most room among the
    # first 40 people with two pictures: the threshold was 0.057, Adrien to Adrien
    # 0.049, Adrien to Serena 0.110 (one training, oneDNN and 2 threads).
    enrolled = lfw_root / "Adrien_Brody" / "Adrien_Brody_0002.jpg"
    same = lfw_root / "Adrien_Brody" / "Adrien_Brody_0003.jpg"
    other = lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"
    assert _bytes(same) != _bytes(enrolled)
    assert controller.handle_picture("enroll", _bytes(enrolled), enroll_name="Adrien").gallery_changed

    known = controller.handle_picture("probe", _bytes(same)).identity
    unknown = controller.handle_picture("probe", _bytes(other)).identity
    embeddings = verifier.embed([enrolled, same, other])
    assert known.distance == pytest.approx(np.linalg.norm(embeddings[0] - embeddings[1]), abs=1e-5)
    assert unknown.distance == pytest.approx(np.linalg.norm(embeddings[0] - embeddings[2]), abs=1e-5)
    assert known.name == "Adrien" and known.reason == "match"
    assert unknown.name is None and unknown.reason == "too far"
    # The open-set threshold, for strangers named at the FPIR target, is what decided.
    assert known.fpir == DEFAULT_FPIR and known.threshold == unknown.threshold
    assert 0 < known.distance < known.threshold <= unknown.distance
    assert [c.name for c in known.candidates] == ["Adrien"]


# ------------------------------------------------- identification, on chosen embeddings
# A stand-in for FaceVerifier with what the controller asks of it, and an impostor curve
# whose every open-set threshold is 1.0: each embedding below is chosen, so each
# distance and each decision is known.

OPEN_SET_THRESHOLD = 1.0
THUMBNAIL = np.full((8, 8, 3), 128, np.uint8)


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, np.float64)
    return vector / np.linalg.norm(vector)


class FakeVerifier:
    def __init__(self, folder):
        self.folder, self.threshold, self.threshold_source, self.calibration = folder, 0.9, "card", None
        self.tta = False  # as FaceVerifier's default
        self.curve = ImpostorCurve(FAR_GRID, (OPEN_SET_THRESHOLD,) * len(FAR_GRID), 1000, "chosen")

    @property
    def calibration_name(self):  # as FaceVerifier's
        return self.calibration.name if self.calibration is not None else "lfw"

    def open_set_rule(self, fpir=None, margin=0.0, mode="min"):  # as FaceVerifier's
        curve = self.calibration.curve if self.calibration is not None else self.curve
        return OpenSetRule(curve, fpir or DEFAULT_FPIR, margin, mode)

    use_calibration = FaceVerifier.use_calibration  # the real one


MODEL = "chosen-model@2024"


@pytest.fixture
def chosen(tmp_path):
    """A controller over a gallery of four people at right angles, Ada with two templates."""
    controller = DashboardController(FakeVerifier(tmp_path / "model"), Gallery.load(MODEL, tmp_path / "g"))
    gallery = controller.gallery
    gallery.enroll("Ada", _unit(1, 0, 0, 0, 0), THUMBNAIL)
    gallery.enroll("Ada", _unit(1, 0, 0, 0, 0.2), THUMBNAIL)
    for name, vector in [("Grace", (0, 1, 0, 0, 0)), ("Linus", (0, 0, 1, 0, 0)), ("Ken", (0, 0, 0, 1, 0))]:
        gallery.enroll(name, _unit(*vector), THUMBNAIL)
    return controller


def _distance(a, b):
    return float(np.linalg.norm(a - b))


def test_identification_names_the_nearest_and_lists_the_three_nearest(chosen):
    probe = _unit(1, 0.3, 0.1, 0, 0.2)
    decision = chosen.identify(probe)
    expected = {
        "Ada": _distance(probe, _unit(1, 0, 0, 0, 0.2)),  # the nearer of Ada's two templates
        "Grace": _distance(probe, _unit(0, 1, 0, 0, 0)),
        "Linus": _distance(probe, _unit(0, 0, 1, 0, 0)),
    }
    assert expected["Ada"] < _distance(probe, _unit(1, 0, 0, 0, 0))
    assert [c.name for c in decision.candidates] == ["Ada", "Grace", "Linus"]  # Ken is 4th
    assert [c.distance for c in decision.candidates] == [pytest.approx(expected[n]) for n in expected]
    assert decision.name == "Ada" and decision.reason == "match"
    assert decision.threshold == OPEN_SET_THRESHOLD and decision.fpir == DEFAULT_FPIR


def test_unknown_says_whether_too_far_from_everyone_or_too_close_to_two(chosen):
    stranger = _unit(0, 0, 0, 0, 1)  # far from all but Ada's second template
    far = chosen.identify(stranger)
    assert far.name is None and far.reason == "too far"
    assert far.distance == pytest.approx(_distance(stranger, _unit(1, 0, 0, 0, 0.2)))
    assert far.distance > OPEN_SET_THRESHOLD
    assert far.explain().startswith("unknown: too far from everyone (nearest Ada")

    between = _unit(1, 0.9, 0, 0, 0)  # within the threshold of Ada (0.72) and Grace (0.81)
    d_ada, d_grace = _distance(between, _unit(1, 0, 0, 0, 0)), _distance(between, _unit(0, 1, 0, 0, 0))
    assert d_ada < d_grace < OPEN_SET_THRESHOLD and d_grace - d_ada < 0.2
    assert chosen.identify(between).name == "Ada"  # no margin asked: the nearer one
    outcome = chosen.set_identification(margin=0.2)
    assert not outcome.is_error and "ahead of the next by 0.2" in outcome.message
    ambiguous = chosen.identify(between)
    assert ambiguous.name is None and ambiguous.reason == "ambiguous" and ambiguous.margin == 0.2
    assert ambiguous.explain().startswith("unknown: too close to two people (Ada")
    assert chosen.identify(_unit(1, 0, 0, 0, 0.1)).name == "Ada"  # a clear lead still names


def test_identification_settings_are_checked_and_reach_the_rule(chosen):
    assert chosen.set_identification(fpir=1.5).is_error and chosen.fpir == DEFAULT_FPIR
    assert chosen.set_identification(margin=-0.1).is_error and chosen.margin == 0.0
    chosen.set_identification(fpir=0.1)
    assert chosen.identify(_unit(1, 0, 0, 0, 0)).fpir == 0.1


def test_nobody_enrolled_with_this_model_identifies_nobody(tmp_path):
    Gallery.load("other-model@2020", tmp_path / "g").enroll("Ada", _unit(1, 0), THUMBNAIL)
    controller = DashboardController(FakeVerifier(tmp_path / "model"), Gallery.load(MODEL, tmp_path / "g"))
    assert controller.identify(_unit(1, 0)) is None  # distance 0, yet made by another model
    assert controller.people() == [Person("Ada", 0, 1)]


def test_people_are_listed_once_with_their_templates_and_those_of_another_model(chosen, tmp_path):
    chosen.gallery.entries[1].model_id = "other-model@2020"  # Ada's second template
    assert chosen.people() == [
        Person("Ada", 1, 1),
        Person("Grace", 1, 0),
        Person("Linus", 1, 0),
        Person("Ken", 1, 0),
    ]
    assert chosen.delete("Ada").gallery_changed
    assert [p.name for p in chosen.people()] == ["Grace", "Linus", "Ken"]
    assert Gallery.load(MODEL, tmp_path / "g").names() == ["Grace", "Linus", "Ken"]


# ------------------------------------------------- a distance among LFW View 1 pairs

SAME = [0.1, 0.2, 0.3, 0.4]
DIFFERENT = [0.3, 0.5, 0.6, 0.7, 0.8]


def _evaluated(folder):
    """A model folder with View 1 distances written as `facelib evaluate` writes them."""
    distances = np.array(SAME + DIFFERENT)
    same = np.array([True] * len(SAME) + [False] * len(DIFFERENT))
    order = np.random.default_rng(0).permutation(len(distances))  # the file is not sorted by class
    save_view1_distances(folder / "eval", distances[order], same[order])
    return folder


def test_a_distance_is_placed_among_the_models_lfw_pairs(tmp_path):
    controller = DashboardController(FakeVerifier(_evaluated(tmp_path / "model")), gallery=None)
    evidence = controller.explain_distance(0.35)
    assert evidence.available
    assert sorted(evidence.same) == SAME and sorted(evidence.different) == DIFFERENT
    assert evidence.same_at_least == 1 / 4  # 0.4
    assert evidence.different_closer == 1 / 5  # 0.3
    assert evidence.sentence() == (
        "On LFW View 1 (people this model never trained on), 25% of 4 same-person pairs were at "
        "least 0.350 apart, and 20% of 5 different-person pairs were closer."
    )
    at = controller.explain_distance(0.3)  # at least as far: 0.3 counts; closer: 0.3 does not
    assert (at.same_at_least, at.different_closer) == (2 / 4, 0.0)
    edges, same, different = controller.explain_distance(0.9).histogram(bins=8)
    assert edges[0] == 0.1 and edges[-1] == 0.9  # the distance itself is on the scale
    assert same.sum() == 4 and different.sum() == 5


def test_a_model_never_evaluated_says_so_instead(tmp_path):
    controller = DashboardController(FakeVerifier(tmp_path / "run-a"), gallery=None)
    evidence = controller.explain_distance(0.35)
    assert not evidence.available
    assert "has not been evaluated" in evidence.note and "facelib evaluate --model run-a" in evidence.note
    (tmp_path / "run-a" / "eval").mkdir(parents=True)
    (tmp_path / "run-a" / "eval" / "metrics.json").write_text("{}")  # evaluated before the file
    assert "evaluated before its View 1 distances were kept" in controller.explain_distance(0.35).note
    _evaluated(tmp_path / "run-a")
    assert controller.explain_distance(0.35).available  # read when it appears


def test_every_verdict_comes_with_its_lfw_evidence(controller, bush, tmp_path):
    controller.lfw_distances_path = _evaluated(tmp_path / "model") / "eval" / "view1_distances.npz"
    controller.handle_picture("reference", _bytes(bush[0]))
    outcome = controller.handle_picture("probe", _bytes(bush[1]))
    distance = outcome.verdict.distance
    assert outcome.evidence.distance == distance
    assert outcome.evidence.same_at_least == np.mean(np.array(SAME) >= distance)


# ------------------------------------------------- several captures, thumbnails


def _thumbnails_match_the_entries(folder):
    referenced = {e.thumbnail for e in Gallery.load(MODEL, folder).entries}
    on_disk = {f"{THUMBNAILS}/{p.name}" for p in (folder / THUMBNAILS).glob("*")}
    assert referenced == on_disk, (referenced, on_disk)
    assert not list(folder.glob("*.jpg"))  # nothing beside gallery.json either
    return on_disk


def test_several_captures_of_one_person_each_add_a_template(controller, bush):
    for n, picture in enumerate(bush, 1):
        outcome = controller.handle_picture("enroll", _bytes(picture), enroll_name="George ")
        assert not outcome.is_error and outcome.gallery_changed
        assert controller.people() == [Person("George", n, 0)]
    assert outcome.message == "Enrolled George (3rd template)."
    assert len(controller.gallery.templates()["George"]) == 3
    assert controller.delete("George").message == "Deleted George." and controller.people() == []


def test_enroll_delete_and_re_enroll_leave_exactly_the_thumbnails_referred_to(
    verifier, gallery_dir, bush, lfw_root
):
    controller = DashboardController(verifier, Gallery.load(MODEL, gallery_dir))
    serena = lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"

    def enroll(name, picture):
        assert not controller.handle_picture("enroll", _bytes(picture), enroll_name=name).is_error
        return _thumbnails_match_the_entries(gallery_dir)

    enroll("George", bush[0])
    enroll("George", bush[1])
    first = enroll("Ann Lee", serena)
    controller.delete("George")
    kept = _thumbnails_match_the_entries(gallery_dir)
    assert len(kept) == 1 and kept < first  # Ann Lee's
    again = enroll("George", bush[0])  # re-enrolled: a fresh file name, no deleted one reused
    assert len(again) == 2 and kept < again and not (again - kept) & first
    assert len(enroll("Ann_Lee", bush[2])) == 3  # the same safe file name as "Ann Lee"
    controller.delete("Ann Lee")
    assert [p.name for p in controller.people()] == ["George", "Ann_Lee"]
    _thumbnails_match_the_entries(gallery_dir)
    (gallery_dir / THUMBNAILS / "Ada-0123456789ab.jpg").write_bytes(b"x")  # a write that died midway
    enroll("George", bush[1])  # the next save clears it
    assert len(_thumbnails_match_the_entries(gallery_dir)) == 3


# ------------------------------------------------- calibrate on my gallery


def _enroll_chosen(controller, people):
    for name, vectors in people.items():
        for vector in vectors:
            controller.gallery.enroll(name, _unit(*vector), THUMBNAIL)


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
    rows = [(name, _unit(*v)) for name, vectors in CALIBRATION_PEOPLE.items() for v in vectors]
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
    before = controller.identify(_unit(1, 0, 0, 0, 0))
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
    after = controller.identify(_unit(1, 0, 0, 0, 0))
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
            controller.gallery.enroll(name, _unit(*vector, *[0] * (dimension - 5)), THUMBNAIL)
    assert controller.calibrate_on_gallery().calibration_changed
    loaded = FaceVerifier(model, no_face="error", calibration="gallery")
    assert (verifier.threshold, verifier.threshold_source) == (loaded.threshold, loaded.threshold_source)
    assert verifier.calibration_name == loaded.calibration_name == "gallery"
    assert verifier.open_set_rule() == loaded.open_set_rule()


# ===================================================================== the page
# Driven as the browser drives it: a picked file arrives as the upload widget's new
# value, a button is clicked, a camera frame arrives as the recorder's image followed
# by `recording` turning False. Each goes through the widget's deserialiser (set_state).


def _upload(board, target, data, name="upload.jpg", claimed_size=None):
    """What the browser sends when a file is picked on board's `Upload <target>` button."""
    size = len(data) if claimed_size is None else claimed_size
    picked = {
        "name": name,
        "type": "image/jpeg",
        "size": size,
        "content": memoryview(data),
        "last_modified": 0,
    }
    board.uploads[target].set_state({"value": [picked]})


def _frame(board, data):
    """The browser answering a frame request: the picture, then `recording` off."""
    assert board.recorder.recording, "no frame was asked for"
    board.recorder.image.set_state({"value": memoryview(data)})
    board.recorder.set_state({"recording": False})


def _capture(board, target, data):
    """Click `Capture <target>`, and the camera sends `data`."""
    board.capture_buttons[target].click()
    _frame(board, data)


def test_reference_then_probe_shows_distance_and_verdict(board, bush):
    _capture(board, "reference", _bytes(bush[0]))
    assert "camera: face found" in board.message.value
    assert "Capture or upload" in board.result.value  # nothing to compare yet
    _upload(board, "probe", _bytes(bush[1]), name="b.jpg")
    controller = board.controller
    distance = float(board.result.value.split('facelib-distance">')[1].split("<")[0])
    expected = float(np.linalg.norm(controller.reference.embedding - controller.probe.embedding))
    assert distance == pytest.approx(expected, abs=1e-3)
    words = "same person" if same_person(expected, board.verifier.threshold) else "different people"
    assert f'class="facelib-verdict">{words}<' in board.result.value
    assert 'data-seq="1"' in board.result.value
    assert board.reference_view.value and board.probe_crop.value
    assert "b.jpg: face found" in board.message.value and "#b00020" not in board.message.value
    assert board.uploads["probe"].value == ()  # cleared, so the same file can be picked again


def test_bad_pictures_give_messages_not_tracebacks(board, bush):
    _upload(board, "reference", _bytes(bush[0]))
    before = board.result.value
    blank = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    _upload(board, "probe", blank, name="wall.jpg")
    assert "wall.jpg" in board.message.value and "no face found" in board.message.value
    _upload(board, "probe", b"GIF89a this is no image", name="notes.txt")
    assert "notes.txt" in board.message.value and "not an image" in board.message.value
    _upload(board, "probe", _bytes(bush[1])[:2000], name="cut.jpg")
    assert "truncated" in board.message.value
    _capture(board, "probe", blank)
    assert "camera" in board.message.value and "no face found" in board.message.value
    assert board.result.value == before and board.controller.probe is None


def test_upload_limit_counts_the_bytes_received_not_the_size_claimed(board, bush, monkeypatch):
    monkeypatch.setattr(dashboard_controller, "MAX_UPLOAD_BYTES", 4_000)
    analysed = []
    face_crop = board.verifier.face_crop
    monkeypatch.setattr(board.verifier, "face_crop", lambda *a: analysed.append(a) or face_crop(*a))
    jpeg = _bytes(bush[0])
    assert len(jpeg) > 4_000
    _upload(board, "probe", jpeg, name="huge.jpg", claimed_size=10)
    assert "huge.jpg is too large" in board.message.value and "limit is 0.004 MB" in board.message.value
    assert analysed == [] and board.controller.probe is None and not board.probe_view.value
    assert board.uploads["probe"].value == ()  # cleared, so the same file can be tried again


def test_the_upload_limit_stays_below_what_the_kernel_websocket_carries(board):
    # tornado closes a websocket on a message over 10 MiB; above that, an upload would
    # never reach the check (tests/test_dashboard_browser.py sends one just over the limit).
    assert dashboard_controller.MAX_UPLOAD_BYTES <= 10 * 1024 * 1024 - 100_000
    assert f"Pictures up to {dashboard_controller.MAX_UPLOAD_BYTES / 1e6:g} MB" in _texts(board.widget)


def _texts(widget) -> str:
    """Every HTML widget's text under `widget`."""
    own = widget.value if isinstance(widget, w.HTML) else ""
    return own + "".join(_texts(child) for child in getattr(widget, "children", ()))


def test_an_upload_claiming_too_much_is_still_analysed(board, bush):
    _upload(board, "reference", _bytes(bush[0]), name="ref.jpg", claimed_size=50_000_000)
    assert board.controller.reference is not None and "ref.jpg: face found" in board.message.value


def test_unexpected_errors_are_shown_and_logged_with_their_traceback(board, bush, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(board.verifier, "face_crop", broken)
    with caplog.at_level(logging.ERROR, logger="facelib"):
        _upload(board, "probe", _bytes(bush[0]), name="a.jpg")
    assert (
        "Something went wrong: RuntimeError: detector exploded; details in the server log."
        in board.message.value
    )
    assert "Traceback" in caplog.text and 'raise RuntimeError("detector exploded")' in caplog.text
    assert board.controller.probe is None and not board.controller.busy.locked()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="facelib"):
        _capture(board, "probe", _bytes(bush[0]))
    assert "RuntimeError: detector exploded" in board.message.value and "Traceback" in caplog.text
    assert not board.controller.busy.locked() and board.controller.pending is None


def test_unexpected_errors_outside_the_controller_are_shown_too(board, monkeypatch, caplog):
    def broken(name):
        raise OSError("disk gone")

    monkeypatch.setattr(board.controller, "delete", broken)
    with caplog.at_level(logging.ERROR, logger="facelib"):
        board.delete_button.click()
    assert "Something went wrong: OSError: disk gone" in board.message.value
    assert "Traceback" in caplog.text


def test_gallery_enroll_identify_delete_and_persist(smoke_model, gallery_dir, lfw_root):
    enrolled = lfw_root / "Adrien_Brody" / "Adrien_Brody_0002.jpg"
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    _upload(board, "probe", _bytes(enrolled))
    assert "Gallery empty" in board.identity.value
    board.name.value = "Adrien"
    _capture(board, "enroll", _bytes(enrolled))
    assert "Enrolled Adrien (first template)" in board.message.value
    assert board.people.options == (("Adrien · 1 template", "Adrien"),)
    _upload(board, "probe", _bytes(lfw_root / "Adrien_Brody" / "Adrien_Brody_0003.jpg"))
    assert '<b style="color:#2e7d32">Adrien</b>' in board.identity.value
    _capture(board, "probe", _bytes(lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"))
    assert ">unknown</b>" in board.identity.value and "too far from everyone" in board.identity.value
    board.name.value = "Serena"
    _upload(board, "enroll", _bytes(lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"))
    assert "Enrolled Serena" in board.message.value and board.gallery.names() == ["Adrien", "Serena"]

    again = Dashboard(smoke_model, gallery_folder=gallery_dir)  # loaded from disk
    assert again.gallery.names() == ["Adrien", "Serena"] and again.people.options[0][1] == "Adrien"
    again.people.value = "Adrien"
    again.delete_button.click()
    assert again.gallery.names() == ["Serena"] and len(list((gallery_dir / THUMBNAILS).glob("*.jpg"))) == 1
    assert "Deleted Adrien" in again.message.value
    assert again.people.options == (("Serena · 1 template", "Serena"),)
    assert Dashboard(smoke_model, gallery_folder=gallery_dir).gallery.names() == ["Serena"]


def test_enroll_needs_a_name(board, bush):
    board.name.value = "  "
    board.capture_buttons["enroll"].click()
    assert "name" in board.message.value and board.controller.pending is None
    assert not board.recorder.recording  # the browser was not asked for a frame
    _upload(board, "enroll", _bytes(bush[0]))
    assert "name" in board.message.value and board.gallery.names() == []


def test_gallery_of_another_model_is_flagged_not_mixed(smoke_model, gallery_dir, bush):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    board.name.value = "George"
    _upload(board, "enroll", _bytes(bush[0]))
    index = gallery_dir / "gallery.json"
    data = json.loads(index.read_text())
    data["entries"][0]["model_id"] = "some-other-model@2020"
    index.write_text(json.dumps(data))
    other = Dashboard(smoke_model, gallery_folder=gallery_dir)
    assert other.people.options == (("George · 1 template made by another model: not used", "George"),)
    _capture(other, "probe", _bytes(bush[0]))  # distance 0 to George's entry, were it used
    assert "George" not in other.identity.value
    assert "Gallery empty (1 enrolled with another model, not comparable)" in other.identity.value


def test_camera_frames_arrive_when_recording_stops(board, bush):
    board.capture_buttons["probe"].click()
    assert board.recorder.recording and board.controller.pending.target == "probe"
    board.recorder.image.set_state({"value": memoryview(_bytes(bush[2]))})
    assert board.controller.probe is None  # the picture alone is not the answer yet
    board.recorder.set_state({"recording": False})
    assert board.controller.probe is not None and board.controller.pending is None
    assert "camera: face found" in board.message.value and board.probe_view.value


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_the_camera_page_installs_a_snapshot_that_keeps_one_player(board, smoke_model, gallery_dir, tmp_path):
    # ipywebrtc's own snapshot leaves a playing <video> behind per frame, and Chromium then
    # hands out camera frames 1.1-1.6 s apart: the page's hidden handler replaces it.
    (patch,) = [
        widget
        for widget in _widgets(board.widget)
        if isinstance(widget, w.HTML) and "facelib-snapshot-patch" in widget.value
    ]
    assert patch.layout.display == "none"
    handler = html.unescape(re.search(r'onerror="([^"]*)"', patch.value).group(1))
    assert handler == SNAPSHOT_JS
    for step in (
        "window.last_image_recorder",  # how ipywebrtc 0.6 exposes the recorder's class
        "image.save_changes()",  # the picture first…
        "this.set('recording', false)",  # …then recording off, which the kernel waits for
        "window.URL.createObjectURL",  # in an onerror handler a bare URL is document.URL
        "original.call(self)",  # ipywebrtc's snapshot when this one fails
    ):
        assert step in SNAPSHOT_JS, step
    if shutil.which("node"):
        script = tmp_path / "snapshot.js"
        script.write_text(SNAPSHOT_JS)
        subprocess.run(["node", "--check", str(script)], check=True)
    no_camera = Dashboard(smoke_model, gallery_folder=gallery_dir, camera=False)
    htmls = [x.value for x in _widgets(no_camera.widget) if isinstance(x, w.HTML)]
    assert htmls and not any("facelib-snapshot-patch" in value for value in htmls)


def test_live_mode_skips_frames_while_busy(board):
    with board.controller.busy:
        assert board.live_tick() is False
    assert board.controller.live_skipped == 1 and board.controller.pending is None
    assert board.live_tick() is True and board.controller.pending.target == "live"
    assert board.recorder.recording
    assert board.live_tick() is False  # the frame asked for has not arrived yet
    assert board.controller.live_skipped == 2


def test_live_mode_recovers_when_the_camera_never_answers(smoke_model, gallery_dir):
    # Without a browser the recorder never answers: every request times out.
    board = Dashboard(smoke_model, gallery_folder=gallery_dir, frame_timeout_s=0.3)
    asks = []
    board.recorder.observe(lambda change: asks.append(change["new"]), names="recording")
    assert board.live_tick() is True and board.live_tick() is False
    time.sleep(0.35)
    assert board.live_tick() is True  # the stale request dropped, a new one asked
    assert asks == [True, False, True]  # recording reset, so the browser sees the new ask
    assert "no frame within 0.3 s" in board.message.value and "asks again" in board.message.value

    board.live_interval_ms = 50
    board.live.value = True  # the real loop, in its thread
    try:
        assert _wait_for(lambda: asks.count(True) >= 4), asks
    finally:
        board.live.value = False
        board._live_thread.join(timeout=5)
    assert not board._live_thread.is_alive()


def test_a_capture_that_never_arrives_is_reported(smoke_model, gallery_dir):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir, frame_timeout_s=0.2)
    board.capture_buttons["reference"].click()
    assert _wait_for(lambda: "no frame within 0.2 s" in board.message.value)
    assert "click again" in board.message.value
    assert board.controller.pending is None and board.recorder.recording is False


def test_a_probe_shows_the_three_nearest_people_and_why(smoke_model, gallery_dir, lfw_root, bush):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    for name, picture in [
        ("George", bush[0]),
        ("George", bush[1]),
        ("Serena", lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"),
        ("Adel", lfw_root / "Adel_Al-Jubeir" / "Adel_Al-Jubeir_0001.jpg"),
        ("Colin", lfw_root / "Colin_Powell" / "Colin_Powell_0001.jpg"),
    ]:
        board.name.value = name
        _upload(board, "enroll", _bytes(picture))
    assert [label for label, _ in board.people.options][:2] == ["George · 2 templates", "Serena · 1 template"]
    _upload(board, "probe", _bytes(bush[2]))
    decision = board.controller.identify(board.controller.probe.embedding)
    text = board.identity.value
    assert text.count('class="facelib-candidate"') == 3 and len(decision.candidates) == 3
    for candidate in decision.candidates:
        assert f"<td>{candidate.name}</td>" in text and f">{candidate.distance:.3f}</td>" in text
    assert decision.explain() in text and f'data-reason="{decision.reason}"' in text
    assert f"a name needs distance &lt; {decision.threshold:.3f}" in text
    assert "at most 1% of strangers named (FPIR target), calibration <b>lfw</b>" in text

    board.fpir.value = 0.1  # the page's setting reaches the rule, and the probe shown
    assert board.controller.fpir == 0.1 and "10% of strangers named" in board.identity.value


def test_a_verdict_shows_where_its_distance_falls_among_lfw_pairs(board, bush, tmp_path):
    _upload(board, "reference", _bytes(bush[0]))
    _upload(board, "probe", _bytes(bush[1]))
    assert (
        "has not been evaluated" in board.evidence.value
        and "facelib evaluate --model" in board.evidence.value
    )

    board.controller.lfw_distances_path = _evaluated(tmp_path / "model") / "eval" / "view1_distances.npz"
    _upload(board, "probe", _bytes(bush[2]))
    distance = board.controller.compare(time.perf_counter()).distance
    same_share = np.mean(np.array(SAME) >= distance)
    different_share = np.mean(np.array(DIFFERENT) < distance)
    text = board.evidence.value
    assert "<svg" in text and 'class="facelib-evidence-mark"' in text
    assert f'data-same-at-least="{same_share:.4f}"' in text
    assert f'data-different-closer="{different_share:.4f}"' in text
    assert f"{100 * same_share:.0f}% of 4 same-person pairs were at least {distance:.3f} apart" in text


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
            board.controller.gallery.enroll(name, _unit(*vector, *[0] * (dimension - 5)), THUMBNAIL)
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


# ===================================================================== which model


def test_displayed_the_page_names_the_model_it_serves(board, smoke_model):
    bundle = board._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == board.widget.model_id
    assert bundle["text/plain"] == (
        f"facelib dashboard: model {smoke_model.name} ({smoke_model}), threshold {board.verifier.threshold:.3f}"
    )


def _fake_runs(home, *names):
    for name in names:
        (home / "models" / name).mkdir(parents=True)
        (home / "models" / name / "model.keras").write_bytes(b"")


def test_without_any_model_the_page_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    for model in (None, "cpu-batch_hard-112"):
        board = Dashboard(model, gallery_folder=tmp_path / "g")
        assert (
            "No trained model yet" in board.message.value and "<code>make run</code>" in board.message.value
        )
        assert board.controller is None and board.verifier is None
        assert board._repr_mimebundle_()["text/plain"].startswith("facelib dashboard: no model. No trained")


def test_a_model_asked_for_that_does_not_exist_is_named_with_the_runs_there_are(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _fake_runs(home, "run-b", "run-a")
    monkeypatch.setenv("FACELIB_HOME", str(home))
    board = Dashboard("typo-run", gallery_folder=tmp_path / "g")
    text = board.message.value
    assert "No trained model" not in text and board.controller is None
    assert "Model <code>typo-run</code> was asked for (FACELIB_MODEL) but there is no such run" in text
    assert f"Trained runs in {home / 'models'}: <code>run-a</code>, <code>run-b</code>." in text
    assert "<code>make dashboard RUN=&lt;name&gt;</code>" in text
    assert "typo-run" in board.summary() and "run-a" in board.summary()


def test_a_model_that_cannot_be_loaded_says_why(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _fake_runs(home, "run-a", "run-b")  # model.keras but no card.json
    monkeypatch.setenv("FACELIB_HOME", str(home))
    board = Dashboard("run-a", gallery_folder=tmp_path / "g")
    text = board.message.value
    assert "No trained model" not in text and "was asked for" not in text
    assert "Model <code>run-a</code> cannot be used:" in text and "no card.json" in text
    assert "<code>run-a</code>, <code>run-b</code>" in text and "make dashboard RUN=" in text
