"""Face detectors behind one small interface: `detector.detect(rgb) -> list[Face]`.

    from facelib.data.detection import make_detector
    faces = make_detector("haar").detect(rgb_image)

- `haar`: OpenCV's Haar frontal-face cascade, shipped inside opencv (default:
  offline, no download). Eyes for alignment come from OpenCV's eye cascade.
- `yunet`: OpenCV's DNN detector YuNet (`cv2.FaceDetectorYN`) with 5 landmarks.
  Its ONNX file is taken from `$FACELIB_MIRROR/models/` or downloaded once from
  the OpenCV model zoo into `models/detectors/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facelib.core import config
from facelib.core.errors import DetectorUnavailableError
from facelib.data.datasets import Remote, _check_hash, _download


@dataclass(frozen=True)
class Face:
    """A detected face: box (x, y, w, h) in pixels, a score, and landmarks when the
    detector gives them: rows right eye, left eye (as seen in the picture: the
    subject's right eye is on the image's left), nose tip, mouth corners."""

    box: tuple[int, int, int, int]
    score: float
    landmarks: np.ndarray | None = field(default=None, compare=False)

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.landmarks is None or len(self.landmarks) < 2:
            return None
        return self.landmarks[0], self.landmarks[1]


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


# The smallest face searched for: a fraction of the picture's shorter side (LFW's faces
# are larger, and small ones are the slow part of Haar's search: docs/benchmarks.md,
# "Figures once quoted in the code"), but never more than DEFAULT_MIN_FACE_PX pixels,
# so that a small face in a large picture is found.
DEFAULT_MIN_FACE = 0.3
DEFAULT_MIN_FACE_PX = 80


class HaarDetector:
    """Viola-Jones frontal faces. The smallest face searched for is `min_face` of the
    image's shorter side or `min_face_px` pixels, whichever is smaller: small faces are
    the slow part of the search, and a fraction alone would skip a face that is small
    in a large picture."""

    name = "haar"

    def __init__(
        self,
        min_face: float = DEFAULT_MIN_FACE,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_px: int = DEFAULT_MIN_FACE_PX,
    ):
        self.faces = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.eyes_cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
        if self.faces.empty() or self.eyes_cascade.empty():
            raise DetectorUnavailableError("OpenCV's Haar cascade files could not be loaded")
        self.min_face, self.scale_factor, self.min_neighbors = min_face, scale_factor, min_neighbors
        self.min_face_px = min_face_px

    def min_side(self, shape: tuple[int, ...]) -> int:
        """The smallest face side searched for in a picture of `shape`, in pixels
        (24: the cascade's own window)."""
        return max(24, min(int(self.min_face * min(shape[:2])), self.min_face_px))

    def detect(self, rgb: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        side = self.min_side(gray.shape)
        boxes, _, weights = self.faces.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        return [
            Face(tuple(int(v) for v in box), float(w), self._eyes(gray, box))
            for box, w in zip(boxes, np.ravel(weights), strict=True)
        ]

    def _eyes(self, gray: np.ndarray, box) -> np.ndarray | None:
        """Two eye centres from the upper half of the face, ordered left to right in
        the image (the same order as YuNet's landmarks), or None."""
        x, y, w, h = (int(v) for v in box)
        upper = gray[y : y + h // 2, x : x + w]
        found = self.eyes_cascade.detectMultiScale(upper, 1.1, 5, minSize=(w // 8, w // 8))
        if len(found) < 2:
            return None
        two = sorted(found, key=lambda e: -e[2] * e[3])[:2]
        centres = sorted((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in two)
        return np.array(centres, dtype=np.float32)


# --------------------------------------------------------------------------- YuNet

YUNET_URL = (
    "https://media.githubusercontent.com/media/opencv/opencv_zoo/main/models/"
    "face_detection_yunet/face_detection_yunet_2023mar.onnx"
)
# Known-good YuNet files by name: the model zoo's, and the one on this workplace's mirror.
YUNET_SHA256 = {
    "face_detection_yunet_2023mar.onnx": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    "face_detection_yunet_2026may.onnx": "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
}


def yunet_model_path() -> Path:
    """A verified YuNet ONNX file: from the mirror if set, else downloaded once."""
    mirror = config.mirror()
    if mirror is not None:
        for name, sha in YUNET_SHA256.items():
            path = mirror / "models" / name
            if path.is_file():
                _check_hash(path, f"sha256:{sha}")
                return path
        raise DetectorUnavailableError(
            f"no YuNet model under {mirror / 'models'} (looked for {', '.join(YUNET_SHA256)})"
        )
    name = "face_detection_yunet_2023mar.onnx"
    remote = Remote(name, YUNET_URL, f"sha256:{YUNET_SHA256[name]}")
    try:
        return _download(remote, config.models_dir() / "detectors")
    except Exception as exc:
        raise DetectorUnavailableError(
            f"YuNet is unavailable: {exc}; crop with the `haar` detector instead "
            "(the cpu-v1 preset, or facelib preprocess --detector haar, then train --crops "
            "lfw-deepfunneled-haar-160)"
        ) from exc


class YuNetDetector:
    """OpenCV's DNN face detector: boxes, scores and 5 landmarks."""

    name = "yunet"

    def __init__(self, model_path: Path | None = None, score_threshold: float = 0.7):
        path = Path(model_path) if model_path else yunet_model_path()
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, 0.3, 50)
        except cv2.error as exc:
            raise DetectorUnavailableError(f"{path} is not a YuNet model OpenCV can load: {exc}") from exc

    def detect(self, rgb: np.ndarray) -> list[Face]:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        self.net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self.net.detect(bgr)
        if rows is None:
            return []
        return [
            Face(tuple(int(round(v)) for v in row[:4]), float(row[14]), row[4:14].reshape(5, 2).copy())
            for row in rows
        ]


DETECTORS = {"haar": HaarDetector, "yunet": YuNetDetector}


def make_detector(
    name: str = "haar", min_face: float | None = None, min_face_px: int | None = None
) -> Detector:
    """A detector by name; `min_face` and `min_face_px` (Haar only) override its
    smallest face size."""
    if name not in DETECTORS:
        raise DetectorUnavailableError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == "haar":
        return HaarDetector(
            min_face=DEFAULT_MIN_FACE if min_face is None else min_face,
            min_face_px=DEFAULT_MIN_FACE_PX if min_face_px is None else min_face_px,
        )
    return DETECTORS[name]()
