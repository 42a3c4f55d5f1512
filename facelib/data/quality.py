"""Is a picture within the conditions the model's threshold was measured in?

The threshold comes from LFW: press photos, evenly lit, faces of about 100 px seen from
the front. Under side light, or with a turned head, the same threshold gives other
verdicts (`facelib evaluate --robustness` measures by how much), so `verify` and the
dashboard say when a face is outside those conditions instead of judging it silently.

    conditions = face_conditions(crop, face)     # the measures
    conditions.warnings()                        # ["dark", "lit from one side", ...]
    crop = light_corrected(crop, conditions)     # what verify embeds (then crop.finish_crop)
    face = prepare_face(rgb, detector, settings) # all of it, in verify's order

The limits are data (LIMITS); `python bench/conditions.py` measures how many LFW
validation pictures and how many pictures of each row of the suite cross each one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelib.data.crop import CropInfo, CropSettings, crop_picture, finish_crop
from facelib.data.detection import Detector, Face

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
    face_px: int | None  # the face box's longer side in the picture; None: no face found
    turn: float | None  # None without landmarks (the Haar detector gives none)
    halves: tuple[float, float]  # mean grey of the middle's left and right halves (curve_per_half)

    @property
    def side_light(self) -> float:
        """The darker half over the brighter half of the face's middle (1: even)."""
        return min(self.halves) / max(*self.halves, 1e-6)

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
LIGHT_CORRECTION = "curve per half"  # what light_corrected does; reports record it


def one_curve(crop: np.ndarray, brightness: float) -> np.ndarray:
    """The crop under the one gamma curve that takes `brightness` (0–255) to mid-grey."""
    level = min(max(brightness, 1.0), 254.0) / 255.0
    gamma = np.log(0.5) / np.log(level)
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
    return table[np.asarray(crop, np.uint8)]


def curve_per_half(crop: np.ndarray, halves: tuple[float, float]) -> np.ndarray:
    """Each half of the crop under its own curve to mid-grey (`one_curve` of that half's
    mean grey, `halves` as `face_conditions` measured them), blended across the middle
    fifth so that no edge runs down the nose (rounded down, as `one_curve`'s table is)."""
    left, right = (one_curve(crop, mean).astype(np.float32) for mean in halves)
    x = (np.arange(crop.shape[1]) + 0.5) / crop.shape[1]
    weight = np.clip((0.6 - x) / 0.2, 0, 1)[None, :, None]
    return (left * weight + right * (1 - weight)).astype(np.uint8)


def light_corrected(crop: np.ndarray, conditions: Conditions) -> np.ndarray:
    """A face outside LFW's light (dark, washed out, lit from one side) brought back to
    mid-grey by a gamma curve per half of the face (`curve_per_half`); any other crop as
    it is. On the robustness suite's side-light row this beat one curve over the whole
    crop (`one_curve`, verify's correction before), and one curve beat flattening the
    shadow by a blurred or a planar estimate of the light (docs/recipes.md)."""
    if not any(w in LIGHT_WARNINGS for w in conditions.warnings()):
        return crop
    return curve_per_half(crop, conditions.halves)


@dataclass(frozen=True)
class PreparedFace:
    """A picture's face as verify embeds it, and what was measured on the way."""

    crop: np.ndarray  # what is embedded: light corrected (if asked), then the policy's last step
    measured: np.ndarray  # the crop as cropped, where light and quality are measured
    info: CropInfo
    conditions: Conditions
    was_light_corrected: bool


def prepare_face(
    rgb: np.ndarray, detector: Detector, settings: CropSettings, correct_light: bool = True
) -> PreparedFace:
    """The one order verify, the robustness suite and the benches follow: crop, measure
    the light, correct it, then the crop policy's last step (an equalised crop hides the
    light it was taken in, so it is measured before)."""
    measured, info = crop_picture(rgb, detector, settings, finish=False)
    conditions = face_conditions(measured, info.face)
    corrected = light_corrected(measured, conditions) if correct_light else measured
    return PreparedFace(
        finish_crop(corrected, settings), measured, info, conditions, corrected is not measured
    )


def face_conditions(crop: np.ndarray, face: Face | None) -> Conditions:
    """The measures of one face: from its crop (the middle 60%, where the face is
    rather than its margin) and from where it was found in the picture."""
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = grey.shape[0]
    middle = grey[round(0.2 * side) : round(0.8 * side), round(0.2 * side) : round(0.8 * side)]
    half = middle.shape[1] // 2
    left, right = float(middle[:, :half].mean()), float(middle[:, half:].mean())
    face_px = turn = None
    if face is not None:
        face_px = int(max(face.box[2], face.box[3]))
        if face.landmarks is not None and len(face.landmarks) >= 3:
            eye_a, eye_b, nose = (np.asarray(p, np.float32) for p in face.landmarks[:3])
            axis = eye_b - eye_a
            eyes = float(np.linalg.norm(axis))
            if eyes > 1e-3:  # along the eyes' line, so a tilted head is not taken for a turned one
                turn = float(abs(np.dot(nose - (eye_a + eye_b) / 2, axis)) / eyes**2)
    return Conditions(float(middle.mean()), face_px, turn, (left, right))


# ------------------------------------------------------------------ enrolment quality
# A face's quality, measure by measure, each with pass / warn / fail, a plain reason and
# what to change in the capture. Where LIMITS says whether a picture is outside the
# conditions the threshold was measured in (a caveat on a verdict), these say whether a
# face is good enough to keep as a template: `facelib enroll` refuses a failing one.
#
# The limits are data, one entry a measure: a side ("low": bad below, "high": bad above)
# → (warn, fail) limits, set on `python bench/quality_curves.py` (docs/benchmarks.md,
# "Quality and accuracy": 200 validation pairs of robust-lighting-mild, a 64-px model
# of the relit recipe, one picture of each pair blurred, darkened or shrunk). Balanced accuracy 79.5%
# clean; blur cost nothing down to a median sharpness of 26, 3 points at 11 and 6 at 6:
# warn below 20, fail below 10. Darkening cost 8 points at a median brightness of 74 and
# left chance at 42, light correction notwithstanding: warn below 90 (about the 2nd
# percentile of clean LFW faces), fail below 60. Shrinking cost at most 2.5 points down to
# 26 px (the model sees 64 px) and YuNet lost the face at 20: warn below 32, fail below 24;
# a model of larger input would need larger faces. Washed out, tilt and turn were not
# measured: LIMITS' warnings, and starting values for fail.
QUALITY_LIMITS: dict[str, dict[str, tuple[float, float]]] = {
    "face_px": {"low": (32, 24)},  # face box side in the picture, px
    "sharpness": {"low": (20.0, 10.0)},  # variance of the Laplacian (`sharpness`)
    "brightness": {  # mean grey of the face's middle, 0-255
        "low": (90.0, 60.0),
        "high": (LIMITS["brightest_brightness"], 230.0),
    },
    "eye_angle": {"high": (20.0, 40.0)},  # eye line off level, degrees
    "turn": {"high": (LIMITS["turn"], 0.6)},  # nose off the eyes' middle, in eye distances
}

STATUSES = ("pass", "warn", "fail")  # from best to worst

# Per measure and side: how a bad value reads, and what to change in the capture.
_WORDS = {
    ("face_px", "low"): ("the face is small ({value:.0f} px)", "move closer to the camera"),
    ("sharpness", "low"): ("the face is blurred (sharpness {value:.0f})", "hold still, and focus"),
    ("brightness", "low"): ("the face is dark (brightness {value:.0f} of 255)", "face the light"),
    ("brightness", "high"): (
        "the face is washed out (brightness {value:.0f} of 255)",
        "step out of direct light",
    ),
    ("eye_angle", "high"): ("the head is tilted ({value:.0f}°)", "hold the head level"),
    ("turn", "high"): ("the face is turned away ({value:.2f} eye distances)", "look straight at the camera"),
}


@dataclass(frozen=True)
class Measure:
    """One quality measure of a face."""

    name: str  # a key of QUALITY_LIMITS
    value: float | None  # None: not measurable here (no face, or no landmarks)
    status: str  # "pass", "warn", "fail"; "pass" when not measurable
    reason: str  # in plain words: "" when it passes
    advice: str  # what to change in the capture: "" when it passes


@dataclass(frozen=True)
class QualityReport:
    """A face's quality: each measure, and the worst status among them."""

    status: str
    measures: list[Measure]

    @property
    def reasons(self) -> list[str]:
        """Why the face is not fine, e.g. ["the face is small (28 px)"], worst first."""
        return [m.reason for m in self._flagged()]

    @property
    def advice(self) -> list[str]:
        """What to change in the capture, each once, worst first."""
        return list(dict.fromkeys(m.advice for m in self._flagged()))

    def _flagged(self) -> list[Measure]:
        flagged = [m for m in self.measures if m.status != "pass"]
        return sorted(flagged, key=lambda m: -STATUSES.index(m.status))

    def value(self, name: str) -> float | None:
        return next((m.value for m in self.measures if m.name == name), None)

    def summary(self) -> str:
        """e.g. "fail: the face is blurred (sharpness 9); move closer…" or "pass"."""
        if self.status == "pass":
            return "pass"
        return f"{self.status}: {'; '.join(self.reasons)} (try: {', '.join(self.advice)})"

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "advice": self.advice,
            "measures": {m.name: {"value": m.value, "status": m.status} for m in self.measures},
        }


def rate(name: str, value: float | None, limits: dict | None = None) -> Measure:
    """One measure judged against its limits (QUALITY_LIMITS unless given): the worst
    status of its sides."""
    sides = (limits or QUALITY_LIMITS)[name]
    worst, worst_side = "pass", None
    for side, (warn, fail) in sides.items() if value is not None else ():
        beyond = (lambda limit: value < limit) if side == "low" else (lambda limit: value > limit)
        status = "fail" if beyond(fail) else "warn" if beyond(warn) else "pass"
        if STATUSES.index(status) > STATUSES.index(worst):
            worst, worst_side = status, side
    if worst == "pass":
        return Measure(name, value, worst, "", "")
    reason, advice = _WORDS[(name, worst_side)]
    return Measure(name, value, worst, reason.format(value=value), advice)


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian over the crop's middle 60% (the face, not its margin),
    brought to a mean grey of 128 first: small for a blurred face, and the same for a
    dark copy of a sharp one (the plain variance falls with the square of the light, so
    a dark face would read as a blurred one too). Measured on the stored-size crop, so
    that faces of any size are compared at the size the model sees them from."""
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = grey.shape[0]
    middle = grey[round(0.2 * side) : round(0.8 * side), round(0.2 * side) : round(0.8 * side)]
    middle = middle * (128.0 / max(float(middle.mean()), 1.0))
    return float(cv2.Laplacian(middle, cv2.CV_32F).var())


def eye_angle(face: Face | None) -> float | None:
    """How far the eye line is from level, in degrees (0–90); None without landmarks."""
    if face is None or face.landmarks is None or len(face.landmarks) < 2:
        return None
    (x1, y1), (x2, y2) = (np.asarray(p, np.float64) for p in face.landmarks[:2])
    angle = abs(np.degrees(np.arctan2(y2 - y1, x2 - x1))) % 180.0
    return float(min(angle, 180.0 - angle))


def face_quality(crop: np.ndarray, face: Face | None, limits: dict | None = None) -> QualityReport:
    """The quality of the face of `crop` (as crop.crop_picture made it with finish=False:
    before any light correction or equalising) found as `face` in the picture (None: no
    face found, the centre of the picture was used, which fails)."""
    conditions = face_conditions(crop, face)
    measures = [
        rate("face_px", conditions.face_px, limits),
        rate("sharpness", sharpness(crop), limits),
        rate("brightness", conditions.brightness, limits),
        rate("eye_angle", eye_angle(face), limits),
        rate("turn", conditions.turn, limits),
    ]
    if face is None:
        measures.insert(0, Measure("face", None, "fail", "no face was found", "face the camera, closer"))
    worst = max((m.status for m in measures), key=STATUSES.index)
    return QualityReport(worst, measures)
