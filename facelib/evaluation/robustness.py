"""The robustness suite: how a model holds up on pictures taken as users take them,
measured without any test pair.

    from facelib.evaluation.robustness import robustness_report
    report = robustness_report("make-cpu")
    print(report.table())
    facelib evaluate --robustness [--model RUN]

The pairs are the model's own validation pairs (people of the training side it never
trained on). One picture of each pair is degraded as a home camera would take it,
from the original picture, and then goes through the model's crop policy (detection
included) and verify's light correction, as `verify` does; the other stays the clean
stored crop. One row per degradation:

    none       the same pairs cropped again, nothing changed (the reference)
    lighting   side light: half the face in shadow (6% of the brightness) from a
               random side, a soft edge, and a gamma curve (0.6 or 1.8)
    scale      a small face's detail: the picture shrunk to a fifth of its side and
               back (the face keeps its size in pixels, with a fifth of the detail)
    blur       a Gaussian blur of σ 2.5 px (LFW's pictures are 250 px)
    jpeg       JPEG quality 10
    rotation   tilted 25° in the plane, to either side
    turn       seen from the side: one edge of the picture shrunk to 65% of its height
    tight      framed tighter: the central 55% of the picture
    loose      framed looser: the picture in the middle of a canvas twice its side
    offset     off centre: shifted by a fifth of its side

Each row gives the ROC AUC, how often the crop policy found a face, the accuracy at
the card's threshold and at the row's own best threshold (how far the threshold that
ships would have to move). The rows are fixed (seeded per pair), so two models, or two
crop policies, are compared on the same pictures.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from facelib.core import config
from facelib.core.decision import embedding_distance, mean_embedding
from facelib.core.errors import FacelibError
from facelib.core.files import write_json_atomic
from facelib.core.metrics import best_threshold, roc_auc, verdict_accuracy
from facelib.data import datasets
from facelib.data.crop import CropSettings
from facelib.data.images import load_image
from facelib.data.preprocess import read_manifest
from facelib.data.quality import LIGHT_CORRECTION, prepare_face
from facelib.recognition.card import ModelCard

# ------------------------------------------------------------------ degradations
# Each takes an RGB uint8 picture and a random generator, and returns a new picture.


def side_light(rgb: np.ndarray, rng: np.random.Generator, darkest: float = 0.06) -> np.ndarray:
    """Light from one side, as a window or a lamp gives it: the far half of the face in
    shadow (brightness down to `darkest`), a soft edge between the two crossing the
    picture near its middle in a random direction near the vertical (±30°, light from
    the left or the right), then a gamma curve of 0.6 (washed out) or 1.8 (dark)."""
    height, width = rgb.shape[:2]
    angle = math.radians(rng.uniform(-30, 30)) + (math.pi if rng.random() < 0.5 else 0.0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    along = ((x - width / 2) * math.cos(angle) + (y - height / 2) * math.sin(angle)) / width
    edge = rng.uniform(-0.1, 0.1)  # where the shadow starts, in picture widths from the centre
    gain = darkest + (1.0 - darkest) / (1.0 + np.exp((along - edge) / 0.06))
    gamma = 0.6 if rng.random() < 0.5 else 1.8
    lit = (rgb.astype(np.float32) / 255.0) * gain[:, :, None]
    return np.clip(255.0 * np.power(lit, gamma), 0, 255).astype(np.uint8)


def shrink(rgb: np.ndarray, rng: np.random.Generator, factor: float = 0.2) -> np.ndarray:
    height, width = rgb.shape[:2]
    small = cv2.resize(
        rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def blur(rgb: np.ndarray, rng: np.random.Generator, sigma: float = 2.5) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def jpeg(rgb: np.ndarray, rng: np.random.Generator, quality: int = 10) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise FacelibError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def rotate(rgb: np.ndarray, rng: np.random.Generator, degrees: float = 25.0) -> np.ndarray:
    height, width = rgb.shape[:2]
    angle = degrees if rng.random() < 0.5 else -degrees
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def turn(rgb: np.ndarray, rng: np.random.Generator, far_edge: float = 0.65) -> np.ndarray:
    """A perspective warp: one vertical edge (left or right, at random) keeps its
    height, the other shrinks to `far_edge` of it, as a face turned away looks."""
    height, width = rgb.shape[:2]
    inset = (1 - far_edge) * height / 2
    source = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    if rng.random() < 0.5:
        target = np.float32([[0, 0], [width, inset], [width, height - inset], [0, height]])
    else:
        target = np.float32([[0, inset], [width, 0], [width, height], [0, height - inset]])
    matrix = cv2.getPerspectiveTransform(source, target)
    return cv2.warpPerspective(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def tighter(rgb: np.ndarray, rng: np.random.Generator, fraction: float = 0.55) -> np.ndarray:
    height, width = rgb.shape[:2]
    h, w = round(height * fraction), round(width * fraction)
    top, left = (height - h) // 2, (width - w) // 2
    return rgb[top : top + h, left : left + w].copy()


def looser(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The picture in the middle of a canvas twice its side: a face in more of a scene
    (the canvas is the picture's border, stretched out and blurred)."""
    height, width = rgb.shape[:2]
    top, left = height // 2, width // 2
    canvas = cv2.copyMakeBorder(rgb, top, top, left, left, cv2.BORDER_REPLICATE)
    background = cv2.GaussianBlur(canvas, (0, 0), 8)
    background[top : top + height, left : left + width] = rgb
    return background


def offset(rgb: np.ndarray, rng: np.random.Generator, shift: float = 0.2) -> np.ndarray:
    height, width = rgb.shape[:2]
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = shift * width * math.cos(angle), shift * height * math.sin(angle)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def unchanged(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rgb


# The rows, in the order reports show them; "none" first, as the reference.
DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "none": unchanged,
    "lighting": side_light,
    "scale": shrink,
    "blur": blur,
    "jpeg": jpeg,
    "rotation": rotate,
    "turn": turn,
    "tight": tighter,
    "loose": looser,
    "offset": offset,
}


def degrade(rgb: np.ndarray, name: str, seed: int, index: int) -> np.ndarray:
    """Picture `index` of the suite under degradation `name`: the same for every run."""
    if name not in DEGRADATIONS:
        raise FacelibError(f"unknown degradation {name!r}; choose from {', '.join(DEGRADATIONS)}")
    # Keyed on the name, not the row's place: adding a row changes no other row's pictures.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), index])
    return DEGRADATIONS[name](rgb, rng)


# ------------------------------------------------------------------- the pairs


@dataclass(frozen=True)
class SuitePairs:
    """Validation pairs: the clean stored crop on the left, the original picture (to be
    degraded, then cropped) on the right."""

    left_crops: list[str]
    right_pictures: list[str]
    same: np.ndarray


def suite_pairs(card: ModelCard, crops_root: Path | None = None) -> SuitePairs:
    """The pairs the model was validated on while it trained (its card's validation
    people, seed and number of pairs), or as near as the crops allow."""
    from facelib.data.pipeline import FaceSet, validation_pairs  # TensorFlow

    cfg = card.config
    lfw = [(crops, people) for crops, people in card.source_people() if crops == card.training_crops]
    if not lfw:  # trained on folders alone: the suite degrades LFW validation people's pictures
        raise FacelibError(
            "the robustness suite uses the LFW validation people of a model trained on LFW "
            "(--with-lfw); score a model trained on folders alone on its held-out people: "
            "facelib evaluate --images FOLDER --held-out-of RUN"
        )
    crops_root = crops_root or config.processed_dir() / lfw[0][0]
    people = lfw[0][1]
    records = read_manifest(crops_root)
    faces = FaceSet.from_records(records, crops_root, sorted(people))
    if len(faces.identities) < 2 or not (faces.counts >= 2).any():
        raise FacelibError(
            f"the robustness suite needs the model's validation people with crops in {crops_root}; "
            f"found {len(faces.identities)} (run `facelib preprocess` first)"
        )
    source = {str(crops_root / r["crop"]): r["source"] for r in records if r["crop"]}
    left, right, same = validation_pairs(
        faces,
        int(cfg.get("validation_pairs") or 300),
        int(cfg["validation_seed"] if cfg.get("validation_seed") is not None else cfg.get("seed") or 0),
    )
    root = datasets.lfw_dir()
    return SuitePairs(
        [faces.paths[i] for i in left], [str(root / source[faces.paths[i]]) for i in right], same.astype(bool)
    )


def degraded_crops(
    pictures: list[str],
    name: str,
    settings: CropSettings,
    seed: int = 0,
    progress: bool = False,
    correct_light: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The crops (N × size × size × 3) the crop policy makes of the degraded pictures
    (with `correct_light`, then as verify corrects their light), and whether it found a
    face in each."""
    detector = settings.make_detector()
    crops, found = [], []
    for index, path in enumerate(tqdm(pictures, desc=name, disable=not progress, leave=False)):
        face = prepare_face(degrade(load_image(path), name, seed, index), detector, settings, correct_light)
        crops.append(face.crop)
        found.append(face.info.face is not None)
    return np.stack(crops), np.array(found)


# ------------------------------------------------------------------- the report


@dataclass
class RobustnessRow:
    degradation: str
    auc: float
    faces_found: float  # share of degraded pictures the crop policy found a face in
    accuracy_at_card_threshold: float  # balanced: mean of the same and different rates
    best_threshold: float
    accuracy_at_best_threshold: float


@dataclass
class RobustnessReport:
    model: str
    pairs: int
    card_threshold: float
    crop_settings: dict
    rows: list[RobustnessRow]
    seconds: float = 0.0
    note: str = field(default="")
    # how verify corrected the light of the degraded crops (quality.LIGHT_CORRECTION);
    # reports from before it was recorded used one curve (or none, before commit 93b4169)
    light_correction: str = "one curve"

    @property
    def degraded_auc(self) -> float:
        """The suite's one figure: the mean AUC over the degradations (not `none`; NaN
        when only `none` was scored)."""
        aucs = [r.auc for r in self.rows if r.degradation != "none"]
        return float(np.mean(aucs)) if aucs else float("nan")

    def row(self, name: str) -> RobustnessRow:
        return next(r for r in self.rows if r.degradation == name)

    def table(self) -> str:
        lines = [
            f"robustness of {Path(self.model).name}: {self.pairs} validation pairs, one picture of each "
            f"degraded, then cropped by the model's crop policy ({self.crop_settings.get('detector')}); "
            f"light correction: {self.light_correction}",
            f"{'degradation':<12} {'AUC':>6} {'faces found':>12} {'acc. at card':>13} "
            f"{'best thr.':>10} {'acc. at best':>13}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.degradation:<12} {r.auc:6.3f} {100 * r.faces_found:11.1f}% "
                f"{100 * r.accuracy_at_card_threshold:12.1f}% {r.best_threshold:10.3f} "
                f"{100 * r.accuracy_at_best_threshold:12.1f}%"
            )
        mean = "n/a" if math.isnan(self.degraded_auc) else f"{self.degraded_auc:.3f}"
        lines.append(
            f"mean AUC over the degradations: {mean}; card threshold "
            f"{self.card_threshold:.3f} (accuracies are balanced: the mean of the same and different rates)"
        )
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {**asdict(self), "degraded_auc": self.degraded_auc}

    @classmethod
    def from_json(cls, stored: dict) -> RobustnessReport:
        values = {k: v for k, v in stored.items() if k != "degraded_auc"}
        values["rows"] = [RobustnessRow(**r) for r in stored["rows"]]
        return cls(**values)


REPORT = "robustness.json"  # in the model's eval/ folder


def card_threshold(card: ModelCard) -> float:
    """The threshold verify uses: the card's, else the first one training measured."""
    value = card.threshold if card.threshold is not None else card.validation_threshold
    if value is None:
        raise FacelibError("the model card has no threshold; train the model to the end first")
    return float(value)


def robustness_report(
    model: str | Path | None = None,
    degradations: list[str] | None = None,
    crop_settings: CropSettings | None = None,
    save: bool = True,
    progress: bool = True,
    tta: bool = False,
    correct_light: bool = True,
) -> RobustnessReport:
    """Score a model (a run name or folder; None: the newest) on the suite. `crop_settings`
    replaces the card's crop policy (to compare policies on one model), `tta` embeds each
    crop as the mean with its mirror image; neither is saved. `correct_light` treats the
    degraded crops as `verify` does (FaceVerifier's correct_light); without it, not saved."""
    from facelib.data.pipeline import embed_arrays, embed_files  # TensorFlow
    from facelib.recognition.model import (  # Keras
        load_model_folder,
        newest_model_folder,
        resolve_model_folder,
    )

    start = time.perf_counter()
    folder = resolve_model_folder(model) if model else newest_model_folder()
    network, card = load_model_folder(folder)
    settings = crop_settings or CropSettings.from_dict(card.crop_settings)
    names = degradations or list(DEGRADATIONS)
    unknown = [n for n in names if n not in DEGRADATIONS]
    if unknown:
        raise FacelibError(
            f"unknown degradation(s) {', '.join(unknown)}; choose from {', '.join(DEGRADATIONS)}"
        )
    pairs = suite_pairs(card)
    size = card.input_size
    threshold = card_threshold(card)
    left = embed_files(network, pairs.left_crops, size)
    if tta:
        left = mean_embedding(left, embed_files(network, pairs.left_crops, size, mirrored=True))
    rows = []
    for name in names:
        crops, found = degraded_crops(
            pairs.right_pictures, name, settings, progress=progress, correct_light=correct_light
        )
        right = embed_arrays(network, crops, size)
        if tta:
            right = mean_embedding(right, embed_arrays(network, crops[:, :, ::-1], size))
        distances = embedding_distance(left, right)
        best = best_threshold(distances, pairs.same, balanced=True)
        rows.append(
            RobustnessRow(
                degradation=name,
                auc=roc_auc(distances, pairs.same),
                faces_found=float(found.mean()),
                accuracy_at_card_threshold=verdict_accuracy(distances, pairs.same, threshold, balanced=True),
                best_threshold=best,
                accuracy_at_best_threshold=verdict_accuracy(distances, pairs.same, best, balanced=True),
            )
        )
    report = RobustnessReport(
        str(folder),
        len(pairs.same),
        threshold,
        asdict(settings),
        rows,
        round(time.perf_counter() - start, 1),
        light_correction=LIGHT_CORRECTION if correct_light else "none",
    )
    if tta:
        report.note = (
            "flip test-time augmentation: each crop embedded as the mean with its mirror image "
            "(the card's threshold was measured without it)"
        )
    if not correct_light:
        report.note = (report.note + "; " if report.note else "") + "without verify's light correction"
    if save and crop_settings is None and degradations is None and not tta and correct_light:
        write_json_atomic(folder / "eval" / REPORT, report.to_json())
    return report


def read_report(folder: str | Path) -> RobustnessReport | None:
    """The saved report of a model folder, or None."""
    path = Path(folder) / "eval" / REPORT
    if not path.is_file():
        return None
    return RobustnessReport.from_json(json.loads(path.read_text()))
