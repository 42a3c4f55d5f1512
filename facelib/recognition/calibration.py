"""Calibrations: which distance threshold and impostor curve judge a model's pictures.

    calibration = resolve_calibration(folder, card)            # the card's own, "lfw"
    calibration = resolve_calibration(folder, card, "office")  # facelib calibrate's
    calibration.threshold, calibration.threshold_source, calibration.open_set_curve()
    calibration.confidence_of(distance)    # P(same person), or None (calibration.confidence_note)

A model has one built-in calibration, `lfw`: the card's View 1 threshold (`facelib
evaluate`; until then the one training chose on its validation people) and the impostor
curve of its validation people (measured at the end of training, and by `facelib
evaluate` for a card without one). `facelib calibrate --images` and the
dashboard's gallery save others under <model>/calibrations/NAME.json. Verify, identify,
`evaluate --images` and the dashboard all ask `resolve_calibration`, and none of them
measures or writes anything: a model without a curve gets a message naming the command
that makes one.

Each calibration may hold a confidence mapping (facelib.recognition.confidence), fitted
on the same kind of pairs as its threshold: the card's on the validation people of the
training side (training, then `facelib evaluate` for a card without one), a named one on
the pictures `facelib calibrate` was given. A calibration made before mappings existed
has none: verify says so (`confidence_note`) instead of giving a number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelib.core import config
from facelib.core.errors import FacelibError
from facelib.core.files import check_name, write_json_atomic
from facelib.core.metrics import best_threshold
from facelib.data.folders import folder_pairs
from facelib.data.preprocess import read_manifest
from facelib.recognition.card import ModelCard
from facelib.recognition.confidence import ConfidenceMap, fit_confidence, too_few_note
from facelib.recognition.identification import ImpostorCurve

CALIBRATIONS = "calibrations"  # folder of named calibrations inside a model folder
CARD = "lfw"  # the name of the calibration held in the model card itself
TTA_SOURCE = "LFW View 1 with flip test-time augmentation (facelib evaluate --tta)"


@dataclass(frozen=True)
class Calibration:
    """Thresholds for one kind of picture: the 1:1 verification threshold and the
    impostor curve the open-set thresholds are read from, with where they came from."""

    name: str
    threshold: float
    threshold_source: str
    curve: ImpostorCurve | None
    # How to make the missing curve, for the message of `open_set_curve`.
    remedy: str = field(default="run `facelib calibrate` again", compare=False)
    tta: bool = False  # for flip-averaged embeddings (the threshold evaluate --tta set)
    confidence: ConfidenceMap | None = None  # distance → P(same person), fitted with it
    # Why there is no confidence mapping, when there is none.
    confidence_note: str = field(default="", compare=False)

    def confidence_of(self, distance: float) -> float | None:
        """P(same person) at this distance, by this calibration's mapping; None without one."""
        return None if self.confidence is None else self.confidence(distance)

    @property
    def confidence_source(self) -> str:
        """Which calibration and mapping gives the confidence, in words ("" without one)."""
        if self.confidence is None:
            return ""
        return f"calibration {self.name!r}: {self.confidence.describe()}"

    def open_set_curve(self) -> ImpostorCurve:
        if self.curve is None:
            raise FacelibError(f"calibration {self.name!r} has no open-set curve: {self.remedy}")
        return self.curve

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "open_set": self.curve.to_dict() if self.curve else None,
            "confidence": self.confidence.to_dict() if self.confidence else None,
            "confidence_note": self.confidence_note,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        if not isinstance(data, dict):
            raise FacelibError(f"damaged calibration (not a JSON object but {type(data).__name__})")
        curve, confidence = data.get("open_set"), data.get("confidence")
        return cls(
            str(data["name"]),
            float(data["threshold"]),
            str(data.get("threshold_source", "?")),
            ImpostorCurve.from_dict(curve) if curve else None,
            confidence=ConfidenceMap.from_dict(confidence) if confidence else None,
            confidence_note=str(
                data.get("confidence_note")
                or ("" if confidence else OLD_CALIBRATION_NOTE.format(name=data["name"]))
            ),
        )


OLD_CALIBRATION_NOTE = (
    "no confidence: calibration {name!r} was made before facelib fitted confidences; "
    "run `facelib calibrate` again to add one"
)

# ------------------------------------------------------------ the card's own: lfw


def card_remedy(folder: Path) -> str:
    """How a model without the validation people's curve gets one."""
    return f"run `facelib evaluate --model {folder}`, which measures it on the validation people"


def card_calibration(card: ModelCard, folder: Path) -> Calibration:
    """The `lfw` calibration: the View 1 threshold of `facelib evaluate`, else the one
    training chose on its validation people; the validation people's impostor curve."""
    remedy = card_remedy(folder)
    curve = ImpostorCurve.from_dict(card.open_set) if card.open_set else None
    confidence = ConfidenceMap.from_dict(card.confidence) if card.confidence else None
    note = "" if confidence else card_confidence_note(card, folder)
    if card.threshold is not None:
        return Calibration(
            CARD,
            float(card.threshold),
            "LFW View 1 (facelib evaluate)",
            curve,
            remedy,
            False,
            confidence,
            note,
        )
    if card.validation_threshold is not None:
        return Calibration(
            CARD,
            float(card.validation_threshold),
            "training validation",
            curve,
            remedy,
            False,
            confidence,
            note,
        )
    raise FacelibError(f"{folder} has no distance threshold; run `facelib evaluate --model {folder}`")


def card_confidence_note(card: ModelCard, folder: Path) -> str:
    """Why the card has no confidence mapping, and what makes one."""
    if card.confidence_note:  # the reason training or evaluate recorded
        return card.confidence_note
    return (
        f"no confidence: {folder.name}'s card was made before facelib fitted confidences; "
        f"run `facelib evaluate --model {folder}` to fit one on its validation people"
    )


def tta_calibration(card: ModelCard, folder: Path) -> Calibration:
    """The View 1 threshold of the newest `facelib evaluate --tta` of the model on the
    crops its threshold was set on: flip test-time augmentation brings a pair's
    embeddings closer, so the plain threshold does not fit. Its curves are plain: none."""
    crops = card.crops or card.training_crops
    for evaluation in reversed(card.evaluations):
        if not evaluation.get("tta") or evaluation.get("crops", crops) != crops:
            continue
        row = evaluation.get("metrics", {}).get("view1 +TTA")
        if row and row.get("threshold") is not None:
            remedy = "the open-set curves are made of plain embeddings: identify without tta"
            note = (
                "no confidence: the confidence mapping was fitted on plain embeddings, not flip-averaged ones"
            )
            return Calibration(
                CARD, float(row["threshold"]), TTA_SOURCE, None, remedy, tta=True, confidence_note=note
            )
    raise FacelibError(
        f"{folder.name} has no threshold for flip test-time augmentation; run "
        f"`facelib evaluate --tta --model {folder}` (or give a threshold)"
    )


def resolve_calibration(
    folder: Path, card: ModelCard, name: str | None = None, tta: bool = False
) -> Calibration:
    """The calibration that judges this model's pictures: `name` (None or "lfw": the
    card's own), for plain embeddings or, with `tta`, flip-averaged ones."""
    if name in (None, CARD):
        return tta_calibration(card, folder) if tta else card_calibration(card, folder)
    if tta:
        raise FacelibError(
            f"calibration {name!r} was made of plain embeddings: it does not fit flip "
            "test-time augmentation (tta)"
        )
    return load_calibration(folder, name)


def validation_curve(model, card: ModelCard) -> ImpostorCurve:
    """The open-set calibration of a model: distances between pictures of different
    *validation* people (training side, never trained on, never test people)."""
    return validation_calibration(model, card).curve


@dataclass(frozen=True)
class PeopleCalibration:
    """What the card's calibration measures on the validation people: the impostor
    curve, and the confidence mapping (None, with the reason, when too few pairs)."""

    curve: ImpostorCurve
    confidence: ConfidenceMap | None
    confidence_note: str

    def store_in(self, card: ModelCard, curve: bool = True, confidence: bool = True) -> None:
        if curve:
            card.open_set = self.curve.to_dict()
        if confidence:
            card.confidence = self.confidence.to_dict() if self.confidence else None
            card.confidence_note = self.confidence_note or None


def validation_calibration(model, card: ModelCard) -> PeopleCalibration:
    """The impostor curve and confidence mapping of the model's validation people, of
    every source it trained on (LFW's and its folders', each in its own crop folder)."""
    from facelib.data.pipeline import FaceSet  # TensorFlow
    from facelib.data.sources import merge

    held_out = card.source_people(validation=True)
    if len(held_out) == 1:
        crops, people = held_out[0]
        return people_calibration(model, config.processed_dir() / crops, people, card.input_size)
    sets = []
    for crops, people in held_out:
        root = config.processed_dir() / crops
        found = FaceSet.from_records(read_manifest(root), root, sorted(people))
        # Named by crop folder too: two sources' namesakes are two people, as in training.
        sets.append(
            FaceSet([f"{crops}/{n}" for n in found.identities], found.paths, found.offsets, found.counts)
        )
    where = ", ".join(crops for crops, _ in held_out) or "no crop folder"
    return faces_calibration(model, merge(sets), card.input_size, where)


def impostor_curve(model, crops_root: Path, people: list[str], input_size: int) -> ImpostorCurve:
    """The impostor curve of `people`'s crops in `crops_root`, embedded by `model`."""
    return people_calibration(model, crops_root, people, input_size).curve


def people_calibration(model, crops_root: Path, people: list[str], input_size: int) -> PeopleCalibration:
    """The impostor curve and confidence mapping of `people`'s crops in `crops_root`,
    embedded by `model` once for both."""
    from facelib.data.pipeline import FaceSet  # TensorFlow

    faces = FaceSet.from_records(read_manifest(crops_root), crops_root, sorted(people))
    return faces_calibration(model, faces, input_size, Path(crops_root).name)


def faces_calibration(model, faces, input_size: int, where: str) -> PeopleCalibration:
    """The impostor curve and confidence mapping of a FaceSet's people (crops from any
    folders, e.g. the validation people of several training sources), embedded once."""
    from facelib.data.pipeline import embed_files  # TensorFlow

    if len(faces.identities) < 2:
        raise FacelibError(
            f"cannot calibrate identification: fewer than two validation people have crops in {where}"
        )
    embeddings = embed_files(model, faces.paths, input_size)
    labels = np.repeat(np.arange(len(faces.counts)), faces.counts)
    source = (
        f"validation people of the training side: {len(faces.identities)} people, "
        f"{faces.images} pictures ({where})"
    )
    curve = ImpostorCurve.from_embeddings(embeddings, labels, source)
    index = folder_pairs(labels)
    confidence, note = confidence_of_pairs(index.distances(embeddings), index.same, source)
    return PeopleCalibration(curve, confidence, note)


def confidence_of_pairs(distances, same, source: str) -> tuple[ConfidenceMap | None, str]:
    """The confidence mapping fitted on these pairs, or None and why."""
    mapping = fit_confidence(distances, same, source)
    same = np.asarray(same, bool)
    return mapping, "" if mapping else too_few_note(int(same.sum()), int((~same).sum()))


# ------------------------------------------------------------------ named ones


def calibration_path(model_folder: Path, name: str) -> Path:
    if not name.strip():
        raise FacelibError("give the calibration a name")
    if name.strip() == CARD:
        raise FacelibError(f"{CARD!r} names the model card's own calibration (LFW); choose another name")
    return Path(model_folder) / CALIBRATIONS / f"{check_name(name)}.json"


def calibration_names(model_folder: Path) -> list[str]:
    return sorted(p.stem for p in (Path(model_folder) / CALIBRATIONS).glob("*.json"))


def save_calibration(model_folder: Path, calibration: Calibration) -> Path:
    path = calibration_path(model_folder, calibration.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, calibration.to_dict())
    return path


def load_calibration(model_folder: Path, name: str) -> Calibration:
    model_folder = Path(model_folder)
    path = calibration_path(model_folder, name)
    if not path.is_file():
        known = calibration_names(model_folder)
        raise FacelibError(
            f"{model_folder.name} has no calibration {name!r}"
            + (
                f"; it has: {', '.join(known)}"
                if known
                else "; make one with `facelib calibrate --images FOLDER`"
            )
        )
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise FacelibError(f"{path} is damaged ({exc}); run `facelib calibrate` again") from exc


# "Enough pictures to calibrate", the one rule `facelib calibrate`, the dashboard's
# "Calibrate on my gallery" and calibration_from_embeddings share: same-person pairs of
# several people, and different-person pairs between them.
CALIBRATION_PEOPLE, CALIBRATION_PICTURES = 3, 2


@dataclass(frozen=True)
class CalibrationReadiness:
    """Whether pictures (or enrolled templates) are enough to calibrate on."""

    people: int
    pictures: int
    ready_people: int  # people with CALIBRATION_PICTURES pictures or more

    @classmethod
    def of(cls, counts) -> CalibrationReadiness:
        """From each person's number of pictures."""
        counts = [int(n) for n in counts if n > 0]
        return cls(len(counts), sum(counts), sum(n >= CALIBRATION_PICTURES for n in counts))

    @classmethod
    def of_labels(cls, labels) -> CalibrationReadiness:
        return cls.of(np.unique(np.asarray(labels), return_counts=True)[1] if len(labels) else [])

    @property
    def ready(self) -> bool:
        return self.ready_people >= CALIBRATION_PEOPLE


class TooFewToCalibrateError(FacelibError):
    """Not enough people with enough pictures to calibrate on."""

    def __init__(self, readiness: CalibrationReadiness, where: str = "", what: str = "pictures"):
        self.readiness, self.where, self.what = readiness, where, what
        super().__init__(
            f"too few {what}{f' in {where}' if where else ''} to calibrate: {readiness.people} people, "
            f"{readiness.ready_people} with two pictures or more; give at least {CALIBRATION_PEOPLE} "
            f"people with {CALIBRATION_PICTURES} pictures or more"
        )


def require_calibration_pictures(counts, where: str = "", what: str = "pictures") -> CalibrationReadiness:
    """The readiness of each person's number of pictures; TooFewToCalibrateError if not ready."""
    readiness = CalibrationReadiness.of(counts)
    if not readiness.ready:
        raise TooFewToCalibrateError(readiness, where, what)
    return readiness


def calibration_from_embeddings(embeddings, labels, name: str, source: str, seed: int = 0) -> Calibration:
    """Thresholds measured on labelled embeddings, the one way `facelib calibrate` and the
    dashboard's "Calibrate on my gallery" fit them. The verification threshold has the
    best balanced accuracy over every same-person pair (a seeded sample above
    folders.MAX_SAME_PAIRS) and a seeded sample of as many different-person pairs
    (`folders.folder_pairs`); the impostor curve comes from every different-person pair
    (`ImpostorCurve.from_embeddings`). `source` says where the pictures came from; the
    saved texts add the people, pictures and pairs counted. The confidence mapping is
    fitted on the pairs the threshold was chosen on."""
    embeddings, labels = np.asarray(embeddings, np.float64), np.asarray(labels)
    readiness = CalibrationReadiness.of_labels(labels)
    if not readiness.ready:
        raise TooFewToCalibrateError(readiness)
    index = folder_pairs(labels, seed=seed)
    distances = index.distances(embeddings)
    threshold = best_threshold(distances, index.same, balanced=True)
    counts = f"{readiness.people:,} people, {readiness.pictures:,} pictures"
    curve = ImpostorCurve.from_embeddings(embeddings, labels, source=f"{source}: {counts}", seed=seed)
    threshold_source = f"{source}: {counts}; {index.summary()}, balanced accuracy"
    # The confidence on the same pairs as the threshold.
    confidence, note = confidence_of_pairs(distances, index.same, f"{source}: {counts}")
    return Calibration(name, threshold, threshold_source, curve, confidence=confidence, confidence_note=note)
