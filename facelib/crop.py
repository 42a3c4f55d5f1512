"""From detections to a uniform face crop: pick one face, add a margin, level the
eyes (optional), resize. One affine warp does rotation, crop and resize together,
and replicates the border where the margin runs off the picture."""

from __future__ import annotations

import math

import cv2
import numpy as np

from facelib.detection import Face


def choose_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The largest, most central face: area weighted down by distance from the centre,
    so a big face at the edge does not beat the subject in the middle."""
    if not faces:
        return None
    height, width = image_shape[:2]
    half_diagonal = math.hypot(width, height) / 2

    def weight(face: Face) -> float:
        x, y, w, h = face.box
        off_centre = math.hypot(x + w / 2 - width / 2, y + h / 2 - height / 2) / half_diagonal
        return w * h * (1.0 - 0.5 * off_centre)

    return max(faces, key=weight)


def eye_angle(face: Face) -> float:
    """Degrees to rotate so that the eyes lie level (0 when no eyes are known)."""
    if face.eyes is None:
        return 0.0
    (lx, ly), (rx, ry) = face.eyes
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    return angle if abs(angle) <= 30 else 0.0  # larger means the eyes were misdetected


def crop_square(
    rgb: np.ndarray,
    centre: tuple[float, float],
    side: float,
    size: int,
    angle: float = 0.0,
) -> np.ndarray:
    """The square of `side` pixels around `centre`, rotated by `angle` degrees,
    resized to `size`x`size`."""
    scale = size / side
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def crop_face(
    rgb: np.ndarray, face: Face, size: int = 160, margin: float = 0.2, align: bool = True
) -> np.ndarray:
    """Square crop of `face` with `margin` (a fraction of the box side) on every side."""
    x, y, w, h = face.box
    side = max(w, h) * (1 + 2 * margin)
    angle = eye_angle(face) if align else 0.0
    return crop_square(rgb, (x + w / 2, y + h / 2), side, size, angle)


def centre_crop(rgb: np.ndarray, size: int = 160, fraction: float = 0.5) -> np.ndarray:
    """The fallback when no face is found: the central `fraction` of the picture,
    which is where LFW (and most portraits) put the face."""
    height, width = rgb.shape[:2]
    return crop_square(rgb, (width / 2, height / 2), fraction * min(width, height), size)
