"""From a picture to a uniform face crop, by one policy that training data and
verification share.

    settings = CropSettings()                      # as stored in settings.json and the model card
    detector = settings.make_detector()
    crop, info = crop_picture(rgb, detector, settings)

`crop_picture` detects (on a copy downscaled to DETECT_MAX_SIDE when the picture is
larger), searches again on a padded copy when nothing was found (a picture that is
already a tight face crop defeats the search), picks one face, adds a margin, levels
the eyes (optional) and resizes; with no face it takes the central part of the picture;
last, where the policy says so, it equalises the crop's lightness (`finish_crop`).
One affine warp does rotation, crop and resize together, and replicates the border
where the margin runs off the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from facelib.core import config
from facelib.core.errors import ConfigError
from facelib.data.detection import DEFAULT_MIN_FACE, DEFAULT_MIN_FACE_PX, Detector, Face, make_detector

# Pictures are searched at most this large (longer side, pixels): Haar's time grows
# with the pixels searched (docs/benchmarks.md, "Figures once quoted in the code"), and
# a face too small to be found in the copy holds too little detail to verify anyway.
# LFW's 250 px pictures are searched as they are.
DETECT_MAX_SIDE = 1600

# The padded retry keeps faces at least this fraction of the picture's shorter side.
TIGHT_FACE = 0.5


@dataclass(frozen=True)
class CropSettings:
    """The crop policy. Stored in the crop folder's settings.json and from there in the
    model card, so that verification crops faces exactly as training saw them."""

    detector: str = "haar"
    size: int = 160  # stored larger than the model input (112) to leave room for random crops
    margin: float = 0.2  # on every side, as a fraction of the face box's side
    align: bool = True  # level the eyes when the detector finds them
    # Map the 5 landmarks (eyes, nose, mouth corners: YuNet gives them, Haar does not)
    # onto a canonical layout by a similarity transform; faces without them are
    # cropped from their box as above.
    five_point: bool = False
    no_face: str = "fallback"  # or "skip" (preprocessing only; verification has its own)
    # Smallest face searched for (Haar): this fraction of the picture's shorter side,
    # but never more than `min_face_px` pixels (see detection.HaarDetector).
    min_face: float = DEFAULT_MIN_FACE
    min_face_px: int = DEFAULT_MIN_FACE_PX
    # No face found: search again on a copy padded by this fraction of the picture's
    # longer side on every side (border replicated); 0 turns the retry off.
    pad_retry: float = 0.3
    # Still no face: the central square of this fraction of the shorter side, which is
    # where LFW (and most portraits) put the face.
    fallback_fraction: float = 0.5
    # No face found: search again on a copy whose contrast is equalised locally (CLAHE),
    # which brings a face in shadow back within the detector's reach. Only a retry, so
    # a picture found before is cropped as before.
    equalize_retry: bool = False
    # The finished crop's lightness equalised in tiles (CLAHE on Lab's L), colour kept:
    # half a face in shadow shows its detail as the lit half does, in training and in
    # verification alike (quality.prepare_face: after the light is measured and corrected).
    equalize: bool = False

    def __post_init__(self) -> None:
        if self.no_face not in config.NO_FACE_POLICIES:
            raise ConfigError(
                f"no_face must be one of {', '.join(config.NO_FACE_POLICIES)}, not {self.no_face!r}"
            )
        if not 32 <= self.size <= 1024:
            raise ConfigError(f"crop size must be between 32 and 1024 pixels, not {self.size}")
        for name, low, high in [
            ("margin", 0.0, 2.0),
            ("min_face", 0.0, 1.0),
            ("pad_retry", 0.0, 1.0),
            ("fallback_fraction", 0.05, 1.0),
        ]:
            if not low <= getattr(self, name) <= high:
                raise ConfigError(f"{name} must be between {low} and {high}, not {getattr(self, name)!r}")
        if self.five_point and self.detector != "yunet":
            raise ConfigError("five-point alignment needs the 5 landmarks only the yunet detector gives")
        if self.min_face_px < 24:
            raise ConfigError(f"min_face_px must be at least 24 (Haar's window), not {self.min_face_px}")

    @classmethod
    def from_dict(cls, stored: dict) -> CropSettings:
        """Settings as stored (settings.json, a card's "crop_settings"). Fields the
        stored settings lack take their defaults, which leave the crop of every LFW
        picture where a face is found without them unchanged (the padded retry only
        adds faces where none was found). Other keys (the "variant") are not settings."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in names})

    def make_detector(self) -> Detector:
        return make_detector(self.detector, self.min_face, self.min_face_px)


@dataclass(frozen=True)
class CropInfo:
    """How a picture's crop was made."""

    face: Face | None  # in the picture's pixels; None: no face, the fallback crop was taken
    faces_found: int
    padded: bool = False  # found only on the padded copy (the box may run past the picture's edges)


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
    if scale < 0.5:
        # warpAffine cannot average (its INTER_AREA is bilinear): a big face from a
        # phone photo would alias. Shrink the face's surroundings by area first.
        reach = math.ceil(0.75 * side)  # beyond half the square's diagonal (0.71 side)
        x0, y0 = math.floor(centre[0]) - reach, math.floor(centre[1]) - reach
        region = _region(rgb, x0, y0, 2 * reach)
        if region is not None:
            shrunk = max(1, round(2 * reach * scale))
            small = cv2.resize(region, (shrunk, shrunk), interpolation=cv2.INTER_AREA)
            f = shrunk / (2 * reach)
            centre = ((centre[0] - x0 + 0.5) * f - 0.5, (centre[1] - y0 + 0.5) * f - 0.5)
            rgb, side, scale = small, side * f, size / (side * f)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)


def _region(rgb: np.ndarray, x0: int, y0: int, n: int) -> np.ndarray | None:
    """The n x n square whose corner is (x0, y0), the border replicated where it runs
    off the picture; None when it misses the picture altogether."""
    height, width = rgb.shape[:2]
    inner = rgb[max(0, y0) : max(0, min(height, y0 + n)), max(0, x0) : max(0, min(width, x0 + n))]
    if inner.size == 0:
        return None
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = n - top - inner.shape[0], n - left - inner.shape[1]
    return cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE)


def crop_face(
    rgb: np.ndarray, face: Face, size: int = 160, margin: float = 0.2, align: bool = True
) -> np.ndarray:
    """Square crop of `face` with `margin` (a fraction of the box side) on every side."""
    x, y, w, h = face.box
    side = max(w, h) * (1 + 2 * margin)
    angle = eye_angle(face) if align else 0.0
    return crop_square(rgb, (x + w / 2, y + h / 2), side, size, angle)


# The usual 5-point layout of a 112 x 112 face crop (ArcFace's): eye centres, nose tip,
# mouth corners, image-left first, as YuNet orders its landmarks.
FIVE_POINT_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    np.float32,
)


def five_point_matrix(landmarks: np.ndarray, size: int, margin: float) -> np.ndarray | None:
    """The similarity transform (rotation, uniform scale, shift) taking the landmarks
    onto the template, centred in a `size` crop whose 112-px face frame is widened by
    `margin` on every side; None when no such transform fits."""
    frame = 112 * (1 + 2 * margin)
    target = (FIVE_POINT_TEMPLATE_112 + 112 * margin) * (size / frame)
    matrix, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), target, method=cv2.LMEDS)
    return matrix


def crop_five_point(rgb: np.ndarray, face: Face, size: int = 160, margin: float = 0.2) -> np.ndarray | None:
    """The face warped so that its 5 landmarks sit on the template; None without them."""
    if face.landmarks is None or len(face.landmarks) < 5:
        return None
    matrix = five_point_matrix(face.landmarks[:5], size, margin)
    if matrix is None:
        return None
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    source = rgb
    if scale < 0.5:  # shrinking a lot: average first, as crop_square does, against aliasing
        factor = 0.5 / scale
        source = cv2.resize(rgb, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        matrix = matrix.copy()
        matrix[:, :2] *= factor
    return cv2.warpAffine(
        source, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def centre_crop(rgb: np.ndarray, size: int = 160, fraction: float = 0.5) -> np.ndarray:
    """The fallback when no face is found: the central `fraction` of the picture,
    which is where LFW (and most portraits) put the face."""
    height, width = rgb.shape[:2]
    return crop_square(rgb, (width / 2, height / 2), fraction * min(width, height), size)


def _moved(face: Face, offset: float, scale: float) -> Face:
    """`face` found in a picture padded by `offset` pixels and then scaled by `scale`
    (the inverse mapping), in the original picture's pixels."""
    x, y, w, h = face.box
    box = (
        round(x / scale - offset),
        round(y / scale - offset),
        round(w / scale),
        round(h / scale),
    )
    landmarks = None if face.landmarks is None else (face.landmarks / scale - offset).astype(np.float32)
    return Face(box, face.score, landmarks)


def _clahe(channel: np.ndarray) -> np.ndarray:
    """One channel's contrast equalised in 8 × 8 tiles (CLAHE, clip 3): dark and bright
    parts alike get the full range."""
    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(channel))


def equalized(rgb: np.ndarray) -> np.ndarray:
    """The picture in grey with its contrast equalised (`_clahe`), for the detector's retry."""
    return cv2.cvtColor(_clahe(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)), cv2.COLOR_GRAY2RGB)


def detect_faces(rgb: np.ndarray, detector: Detector, settings: CropSettings) -> tuple[list[Face], bool]:
    """The faces of a picture in its own pixels, and whether they were found only on
    the padded copy."""
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    searched = rgb
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        searched = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    faces = detector.detect(searched)
    if not faces and settings.equalize_retry:
        faces = detector.detect(equalized(searched))
    if faces or settings.pad_retry <= 0:
        return [_moved(f, 0, scale) for f in faces], False
    # A face that fills the frame has no surroundings for the detector's windows to
    # match: give it some. Replicated borders found more tight LFW crops than
    # constant ones (docs/benchmarks.md, "Figures once quoted in the code").
    pad = round(settings.pad_retry * max(searched.shape[:2]))
    padded = cv2.copyMakeBorder(searched, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    # Only faces that fill most of the picture, as in a tight crop: a smaller one here
    # is one the first search rightly passed over (on LFW it found a mouth).
    smallest = TIGHT_FACE * min(searched.shape[:2])
    faces = [f for f in detector.detect(padded) if min(f.box[2:]) >= smallest]
    return [_moved(f, pad / scale, scale) for f in faces], bool(faces)


def lightness_equalized(rgb: np.ndarray) -> np.ndarray:
    """The crop with its lightness (Lab's L) equalised as `equalized` does, colour kept."""
    lab = cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = _clahe(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def finish_crop(crop: np.ndarray, settings: CropSettings) -> np.ndarray:
    """The policy's last step, after the crop is measured (and, in verify, its light
    corrected): the lightness equalised where the policy says so."""
    return lightness_equalized(crop) if settings.equalize else crop


def crop_picture(
    rgb: np.ndarray, detector: Detector, settings: CropSettings, finish: bool = True
) -> tuple[np.ndarray, CropInfo]:
    """The policy: detect → padded retry → choose the face → crop it; or, with no face,
    the central `fallback_fraction` (the caller decides whether to use that crop).
    `finish=False` leaves out `finish_crop`, for a caller that measures the crop's light
    first and finishes it itself."""
    faces, padded = detect_faces(rgb, detector, settings)
    face = choose_face(faces, rgb.shape)
    if face is None:
        crop, info = centre_crop(rgb, settings.size, settings.fallback_fraction), CropInfo(None, 0)
    else:
        crop = crop_five_point(rgb, face, settings.size, settings.margin) if settings.five_point else None
        if crop is None:
            crop = crop_face(rgb, face, settings.size, settings.margin, settings.align)
        info = CropInfo(face, len(faces), padded)
    return (finish_crop(crop, settings) if finish else crop), info
