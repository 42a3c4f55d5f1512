"""The page's camera: frames asked of the browser, the snapshot it installs, live mode, and
frames that never come."""

import html
import re
import shutil
import subprocess
import time

import ipywidgets as w

from facelib.app.dashboard import SNAPSHOT_JS, Dashboard

from .helpers import _bytes


def _wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


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
