"""The page driven as the browser drives it (tests/dashboard/helpers.py): pictures
uploaded and captured, a verdict shown, and what goes wrong said in words."""

import logging

import cv2
import ipywidgets as w
import numpy as np
import pytest

from facelib.app import dashboard_controller
from facelib.core.decision import same_person

from .helpers import _bytes, _capture, _upload


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
    # never reach the check (tests/dashboard/test_browser.py sends one just over the limit).
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
