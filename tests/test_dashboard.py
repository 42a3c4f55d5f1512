"""The dashboard without a browser: image bytes in, widget values out."""

import json

import cv2
import numpy as np
import pytest

from facelib.dashboard import Dashboard


def _bytes(path):
    return path.read_bytes()


@pytest.fixture
def gallery_dir(tmp_path):
    return tmp_path / "gallery"


@pytest.fixture
def board(smoke_model, gallery_dir):
    return Dashboard(smoke_model, gallery_folder=gallery_dir)


@pytest.fixture
def bush(lfw_root):
    return [lfw_root / "George_W_Bush" / f"George_W_Bush_{n:04d}.jpg" for n in (1, 2, 3)]


def test_reference_then_probe_shows_distance_and_verdict(board, bush):
    board.handle_image("reference", _bytes(bush[0]), source="a.jpg")
    assert "Capture or upload" in board.result.value  # nothing to compare yet
    board.handle_image("probe", _bytes(bush[1]), source="b.jpg")
    assert "facelib-distance" in board.result.value and "threshold" in board.result.value
    assert ("same person" in board.result.value) or ("different people" in board.result.value)
    distance = float(board.result.value.split('facelib-distance">')[1].split("<")[0])
    expected = float(np.linalg.norm(board.reference.embedding - board.probe.embedding))
    assert distance == pytest.approx(expected, abs=1e-3)
    assert board.reference_view.value and board.probe_crop.value
    assert "error" not in board.message.value.lower()


def test_bad_pictures_give_messages_not_tracebacks(board, bush, tmp_path):
    board.handle_image("reference", _bytes(bush[0]))
    before = board.result.value
    blank = cv2.imencode(".jpg", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    board.handle_image("probe", blank, source="wall.jpg")
    assert "wall.jpg" in board.message.value and "no face found" in board.message.value
    board.handle_image("probe", b"GIF89a this is no image", source="notes.txt")
    assert "not an image" in board.message.value
    board.handle_image("probe", _bytes(bush[1])[:2000], source="cut.jpg")
    assert "truncated" in board.message.value
    assert board.result.value == before  # a bad probe changes no verdict


def test_too_large_upload_is_refused(board):
    board._on_upload("probe", {"new": ({"name": "huge.jpg", "size": 50_000_000, "content": b""},)})
    assert "too large" in board.message.value


def test_upload_goes_through_the_same_handler(board, bush):
    board._on_upload(
        "reference", {"new": ({"name": "ref.jpg", "size": 9000, "content": memoryview(_bytes(bush[0]))},)}
    )
    assert board.reference is not None and "ref.jpg" in board.message.value


def test_gallery_enroll_identify_delete_and_persist(smoke_model, gallery_dir, bush, lfw_root):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    board.name.value = "George"
    board.handle_image("enroll", _bytes(bush[0]))
    assert "Enrolled" in board.message.value and board.gallery.names() == ["George"]
    board.handle_image("probe", _bytes(bush[0]))  # the enrolled picture itself: distance 0
    assert "<b>George</b>" in board.identity.value

    again = Dashboard(smoke_model, gallery_folder=gallery_dir)  # loaded from disk
    assert again.gallery.names() == ["George"] and again.people.options[0][1] == "George"
    again.delete("George")
    assert again.gallery.names() == [] and not list(gallery_dir.glob("*.jpg"))
    assert Dashboard(smoke_model, gallery_folder=gallery_dir).gallery.names() == []


def test_enroll_needs_a_name(board, bush):
    board.name.value = "  "
    board.handle_image("enroll", _bytes(bush[0]))
    assert "name" in board.message.value and board.gallery.names() == []


def test_gallery_of_another_model_is_flagged_not_mixed(smoke_model, gallery_dir, bush):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    board.name.value = "George"
    board.handle_image("enroll", _bytes(bush[0]))
    index = gallery_dir / "gallery.json"
    data = json.loads(index.read_text())
    data["entries"][0]["model_id"] = "some-other-model@2020"
    index.write_text(json.dumps(data))
    other = Dashboard(smoke_model, gallery_folder=gallery_dir)
    assert "another model" in other.people.options[0][0]
    other.handle_image("probe", _bytes(bush[0]))
    assert "George" not in other.identity.value  # not compared


def test_camera_frames_arrive_when_recording_stops(board, bush):
    board._pending = "probe"
    board.recorder.image.value = _bytes(bush[2])
    board._on_recording({"old": True, "new": False})
    assert board.probe is not None and board._pending is None


def test_live_mode_skips_frames_while_busy(board):
    with board.busy:
        assert board.live_tick() is False
    assert board.live_skipped == 1 and board._pending is None
    assert board.live_tick() is True and board._pending == "live" and board.recorder.recording
    assert board.live_tick() is False  # the frame asked for has not arrived yet
    assert board.live_skipped == 2


def test_without_a_model_the_page_says_how_to_make_one(tmp_path):
    board = Dashboard(tmp_path / "no-model-here", gallery_folder=tmp_path / "g")
    assert "No trained model yet" in board.message.value and "make run" in board.message.value
