"""Is a picture within the conditions the model's threshold was measured in?

The threshold comes from LFW: press photos, evenly lit, faces of about 100 px seen from
the front. Under side light, or with a turned head, the same threshold gives other
verdicts (`facelib evaluate --robustness` measures by how much), so `verify` and the
dashboard say when a face is outside those conditions instead of judging it silently.

    conditions = face_conditions(crop, face)     # the measures
    conditions.warnings()                        # ["dark", "lit from one side", ...]
    crop = light_corrected(crop, conditions)     # what verify embeds

The limits are data (LIMITS); `python bench/conditions.py` measures how many LFW
validation pictures and how many pictures of each row of the suite cross each one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelib.data.detection import Face

# A face is outside LFW's conditions past these. Each flags at most 2% of the clean
# validation pictures of LFW (bench/conditions.py, docs/benchmarks.md, "Picture conditions").
LIMITS = {
    "darkest_brightness": 70.0,  # mean grey level of the face (0–255) below this: dark
    "brightest_brightness": 195.0,  # above this: washed out
    "side_light_ratio": 0.5,  # the darker half of the face over the brighter half, below this
    "smallest_face_px": 40,  # face box side in the picture, below this: too small to verify well
    "turn": 0.35,  # nose off the eyes' midpoint, in eye distances (landmark detectors only)
}


@dataclass(frozen=True)
class Conditions:
    brightness: float  # mean grey level of the face's middle, 0–255
    side_light: float  # darker half over brighter half of the face's middle (1: even)
    face_px: int | None  # the face box's longer side in the picture; None: no face found
    turn: float | None  # None without landmarks (the Haar detector gives none)

    def warnings(self) -> list[str]:
        """What is outside the conditions of the threshold, in words."""
        found = []
        if self.brightness < LIMITS["darkest_brightness"]:
            found.append("dark")
        elif self.brightness > LIMITS["brightest_brightness"]:
            found.append("washed out")
        if self.side_light < LIMITS["side_light_ratio"]:
            found.append("lit from one side")
        if self.face_px is not None and self.face_px < LIMITS["smallest_face_px"]:
            found.append(f"small face ({self.face_px} px)")
        if self.turn is not None and self.turn > LIMITS["turn"]:
            found.append("turned")
        return found


LIGHT_WARNINGS = ("dark", "washed out", "lit from one side")


def light_corrected(crop: np.ndarray, conditions: Conditions) -> np.ndarray:
    """A face outside LFW's light (dark, washed out, lit from one side) brought back to
    mid-grey by one gamma curve over the crop; any other crop as it is. Tried on the
    robustness suite's side-light row (docs/recipes.md): it beat flattening the shadow
    (dividing by a blurred or a planar estimate of the light) there."""
    if not any(w in LIGHT_WARNINGS for w in conditions.warnings()):
        return crop
    level = min(max(conditions.brightness, 1.0), 254.0) / 255.0
    gamma = np.log(0.5) / np.log(level)
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return table[np.asarray(crop, np.uint8)]


def face_conditions(crop: np.ndarray, face: Face | None) -> Conditions:
    """The measures of one face: from its crop (the middle 60%, where the face is
    rather than its margin) and from where it was found in the picture."""
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = grey.shape[0]
    middle = grey[round(0.2 * side) : round(0.8 * side), round(0.2 * side) : round(0.8 * side)]
    half = middle.shape[1] // 2
    left, right = float(middle[:, :half].mean()), float(middle[:, half:].mean())
    side_light = min(left, right) / max(left, right, 1e-6)
    face_px = turn = None
    if face is not None:
        face_px = int(max(face.box[2], face.box[3]))
        if face.landmarks is not None and len(face.landmarks) >= 3:
            eye_a, eye_b, nose = (np.asarray(p, np.float32) for p in face.landmarks[:3])
            axis = eye_b - eye_a
            eyes = float(np.linalg.norm(axis))
            if eyes > 1e-3:  # along the eyes' line, so a tilted head is not taken for a turned one
                turn = float(abs(np.dot(nose - (eye_a + eye_b) / 2, axis)) / eyes**2)
    return Conditions(float(middle.mean()), side_light, face_px, turn)
