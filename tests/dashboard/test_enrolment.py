"""Enrolling people in the gallery, deleting them, and the thumbnails kept: through the
controller, then on the page."""

import json

from facelib.app.dashboard import Dashboard
from facelib.app.dashboard_controller import DashboardController, Person
from facelib.recognition.gallery import THUMBNAILS, Gallery

from .helpers import MODEL, _bytes, _capture, _upload


def test_enrolling_needs_a_name_before_the_camera_is_asked(controller, bush):
    refusal = controller.ask_for_frame("enroll", enroll_name="  ")
    assert refusal.is_error and "name" in refusal.message and controller.pending is None
    outcome = controller.handle_picture("enroll", _bytes(bush[0]), enroll_name="")
    assert outcome.is_error and controller.gallery.names() == []


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


# ===================================================================== the page


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


# ------------------------------------------------- the quality check at enrolment


def _blurred_jpeg(picture, sigma=4.0) -> bytes:
    import cv2

    return cv2.imencode(".jpg", cv2.GaussianBlur(cv2.imread(str(picture)), (0, 0), sigma))[1].tobytes()


def test_a_blurred_face_is_not_enrolled_and_the_page_says_why_and_how_to_do_better(board, bush):
    outcome = board.controller.handle_picture("enroll", _blurred_jpeg(bush[0]), enroll_name="George")
    assert outcome.is_error and not outcome.gallery_changed and board.controller.gallery.names() == []
    assert outcome.message.startswith("Not enrolled: the face is blurred (sharpness ")
    assert outcome.message.endswith("For a better capture: hold still, and focus.")
    board.show(outcome)
    assert 'class="facelib-quality" data-status="fail"' in board.message.value
    assert (
        "<li>the face is blurred" in board.message.value
        and "a better capture: hold still" in board.message.value
    )
    # the sharp picture of the same face is enrolled, with no quality note
    outcome = board.controller.handle_picture("enroll", _bytes(bush[0]), enroll_name="George")
    assert not outcome.is_error and outcome.message == "Enrolled George (first template)."
    board.show(outcome)
    assert "facelib-quality" not in board.message.value


def test_the_verdict_names_the_calibration_of_its_confidence(board, bush):
    controller = board.controller
    controller.handle_picture("reference", _bytes(bush[0]))
    outcome = controller.handle_picture("probe", _bytes(bush[1]))
    verdict = outcome.verdict
    assert verdict.calibration == "lfw"
    calibration = controller.verifier.calibration
    if calibration.confidence is not None:
        assert verdict.confidence == calibration.confidence(verdict.distance)
    else:
        assert verdict.confidence is None and verdict.confidence_note == calibration.confidence_note
    board.show(outcome)
    assert 'class="facelib-confidence"' in board.result.value
