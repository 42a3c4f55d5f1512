"""The controller alone, without the page: pictures in, verdicts out, and frames asked of
the camera that never come."""

from types import SimpleNamespace

import numpy as np
import pytest

from facelib.app import dashboard_controller
from facelib.app.dashboard_controller import DashboardController, Verdict
from facelib.core.decision import same_person

from .helpers import _bytes


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


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
        # P(same person) by the card's calibration (its mapping, when training fitted one)
        verifier.calibration.confidence_of(verdict.distance),
        "lfw",
        verifier.calibration.confidence_note,
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
