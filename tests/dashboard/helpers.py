"""What the dashboard's test files share: a stand-in for FaceVerifier, and the browser's
side of the page (a picked file, a camera frame). The names are those the tests had in
tests/test_dashboard.py, so that the tests moved from it read as they did."""

import numpy as np

from facelib.recognition.identification import DEFAULT_FPIR, FAR_GRID, ImpostorCurve, OpenSetRule
from facelib.recognition.verification import FaceVerifier


def _bytes(path):
    return path.read_bytes()


# A stand-in for FaceVerifier with what the controller asks of it, and an impostor curve
# whose every open-set threshold is 1.0: each embedding the tests choose gives a known
# distance and decision.
OPEN_SET_THRESHOLD = 1.0


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


def _distance(a, b):
    return float(np.linalg.norm(a - b))


# Driven as the browser drives it: a picked file arrives as the upload widget's new
# value, a camera frame arrives as the recorder's image followed by `recording`
# turning False. Each goes through the widget's deserialiser (set_state).
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
