"""What the front ends ask of your own pictures, answered as reports they only format.

    report = evaluate_folder(verifier, people, pairs_file=None)   # FolderEvaluation
    report = calibrate_folder(verifier, people, "office")         # FolderCalibration, saved
    known = known_people(verifier, people=None, gallery_folder=None)   # KnownPeople
    report = identify_pictures(verifier, photos, known, fpir=0.01)     # IdentifyReport
    readiness = gallery_readiness(gallery, model_folder)          # GalleryReadiness

`people` is a folders.PeopleFolder (folders.list_people). The command line (facelib.app.cli)
prints these and the dashboard (facelib.app.dashboard_controller) shows them; nothing here
prints. Errors carry their facts as fields (which gallery, which model) and a message
that stands on its own; the command line adds advice in its own terms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelib.core.errors import FacelibError
from facelib.core.metrics import equal_error_rate, roc_auc, tar_at_far, verdict_accuracy
from facelib.data import folders
from facelib.data.quality import QualityReport
from facelib.recognition.calibration import (
    CARD,
    Calibration,
    CalibrationReadiness,
    calibration_from_embeddings,
    calibration_path,
    require_calibration_pictures,
    save_calibration,
)
from facelib.recognition.card import CARD_FILE
from facelib.recognition.gallery import Gallery, model_id
from facelib.recognition.identification import Decision, OpenSetRule, UnmeasurableRate, open_set_figures

GALLERY_CALIBRATION = "gallery"  # the name the dashboard saves a gallery's calibration under
FOLDER_FPIRS = (0.01, 0.1)  # the DIR figures of `evaluate --images`


# ------------------------------------------------------------------ evaluate a folder


@dataclass
class FolderIdentification:
    """A folder as an identification test (folders.identification_split)."""

    enrolled: int  # people, one seeded picture each
    mated: int  # their other pictures
    strangers: int  # people with one picture
    rank1: float
    dir: dict[float, float]  # at each FPIR; empty without strangers


@dataclass
class FolderEvaluation:
    """Verification and identification figures on your own pictures, at the model's
    threshold; the model card is not changed."""

    model: str
    card: Path
    root: Path
    people: int
    pictures: int
    skipped: str  # folders.EmbeddedPictures.skipped_summary(): "" when none
    dropped_pairs: int  # of a pairs file, with a skipped picture
    scored: str  # which pairs, in words
    pairs: str  # folders.PairIndex.summary()
    different_pairs: int
    auc: float
    eer: float
    tar_at_far_1e2: float
    threshold: float
    threshold_source: str
    balanced_accuracy: float  # at `threshold`
    identification: FolderIdentification | None  # None: nobody has two pictures
    warnings: list[str] = field(default_factory=list)


def evaluate_folder(verifier, people: folders.PeopleFolder, pairs_file: str | Path | None = None):
    """Score `verifier` on a folder: `pairs_file` (LFW's pairs.txt format), else every
    same-person pair and as many different-person ones; and as an identification test."""
    warnings: list[str] = []
    if pairs_file:
        pairs = folders.read_pairs_file(pairs_file, people.root)
        embedded = folders.embed_pictures(verifier, folders.pair_pictures(pairs, people.root))
        index, dropped = folders.pairs_in(pairs, people.root, embedded)
        scored = f"the pairs of {Path(pairs_file).name}"
    else:
        embedded, warnings = folders.embed_folder(verifier, people)
        index, dropped = folders.folder_pairs(embedded.labels), 0
        scored = "all same-person pairs and as many different-person pairs (seeded sample)"
    same = index.same
    if not same.any() or same.all():
        raise FacelibError(
            f"nothing to score in {people.root}: verification needs same-person and different-person "
            f"pairs ({int(same.sum())} same, {int((~same).sum())} different); give at least two people, "
            "one of them with two pictures where a face is found"
        )
    distances = index.distances(embedded.embeddings)
    return FolderEvaluation(
        model=verifier.folder.name,
        card=verifier.folder / CARD_FILE,
        root=people.root,
        people=len(set(embedded.labels)),
        pictures=len(embedded.labels),
        skipped=embedded.skipped_summary(),
        dropped_pairs=dropped,
        scored=scored,
        pairs=index.summary(),
        different_pairs=int((~same).sum()),
        auc=roc_auc(distances, same),
        eer=equal_error_rate(distances, same),
        tar_at_far_1e2=tar_at_far(distances, same, 1e-2),
        threshold=verifier.threshold,
        threshold_source=verifier.threshold_source,
        balanced_accuracy=verdict_accuracy(distances, same, verifier.threshold, balanced=True),
        identification=folder_identification(embedded),
        warnings=warnings,
    )


def folder_identification(embedded: folders.EmbeddedPictures) -> FolderIdentification | None:
    split = folders.identification_split(embedded)
    if not split.mated:
        return None
    fpirs = FOLDER_FPIRS if split.strangers else ()
    figures = open_set_figures(split.gallery, split.mated, split.strangers, fpirs=fpirs)
    return FolderIdentification(
        len(split.gallery), len(split.mated), len(split.strangers), figures["rank1"], figures["dir"]
    )


# ------------------------------------------------------------------ calibrate on a folder


@dataclass
class FolderCalibration:
    """A calibration measured on a folder and saved in the model folder, with the
    figures of its threshold on the pairs it was chosen on."""

    calibration: Calibration
    path: Path
    replaced: bool  # a calibration of that name was there before
    model: str
    people: int
    pictures: int
    skipped: str
    pairs: str  # folders.PairIndex.summary()
    balanced_accuracy: float
    auc: float
    eer: float
    model_threshold: float  # the verifier's own, for comparison
    model_threshold_source: str
    warnings: list[str] = field(default_factory=list)


def calibrate_folder(verifier, people: folders.PeopleFolder, name: str) -> FolderCalibration:
    """Measure thresholds on a folder of people and save them as calibration `name` of
    the verifier's model (folders.SEED fixes the pairs)."""
    name = name.strip()
    path = calibration_path(verifier.folder, name)
    replaced = path.is_file()
    embedded, warnings = folders.embed_folder(verifier, people)
    require_calibration_pictures(embedded.counts().values(), people.root, "pictures with a face found")
    source = f"facelib calibrate on {people.root.resolve()}, {time.strftime('%Y-%m-%d')}"
    if embedded.skipped:
        source += f" ({len(embedded.skipped)} more pictures skipped: no face found or unreadable)"
    calibration = calibration_from_embeddings(
        embedded.embeddings, embedded.labels, name, source, seed=folders.SEED
    )
    path = save_calibration(verifier.folder, calibration)
    # The pairs the threshold was chosen on (the same seeded ones), for the figures.
    index = folders.folder_pairs(embedded.labels, seed=folders.SEED)
    distances = index.distances(embedded.embeddings)
    return FolderCalibration(
        calibration=calibration,
        path=path,
        replaced=replaced,
        model=verifier.folder.name,
        people=len(embedded.counts()),
        pictures=len(embedded.labels),
        skipped=embedded.skipped_summary(),
        pairs=index.summary(),
        balanced_accuracy=verdict_accuracy(distances, index.same, calibration.threshold, balanced=True),
        auc=roc_auc(distances, index.same),
        eer=equal_error_rate(distances, index.same),
        model_threshold=verifier.threshold,
        model_threshold_source=verifier.threshold_source,
        warnings=warnings,
    )


# ------------------------------------------------------------------ enroll pictures


@dataclass
class RefusedPicture:
    """A picture not enrolled because its face failed the quality check."""

    path: Path
    quality: QualityReport


@dataclass
class EnrollReport:
    """What `enroll_pictures` enrolled, left out for quality, and skipped."""

    name: str
    enrolled: list[Path]
    qualities: list[QualityReport]  # of each enrolled picture: warnings stay visible
    refused: list[RefusedPicture]
    skipped: str  # folders.EmbeddedPictures.skipped_summary(): "" when none
    templates: dict[str, int]  # each usable person's templates, after enrolling
    forced: bool = False


class PoorQualityError(FacelibError):
    """Every picture offered for enrolment failed the quality check."""

    def __init__(self, name: str, refused: list[RefusedPicture], skipped: str = ""):
        self.name, self.refused = name, refused
        reasons = "; ".join(f"{r.path.name}: {', '.join(r.quality.reasons)}" for r in refused)
        advice = ", ".join(dict.fromkeys(a for r in refused for a in r.quality.advice))
        super().__init__(
            f"nothing enrolled for {name}: the face fails the quality check ({reasons}); "
            f"a better picture: {advice}" + (f"; {skipped}" if skipped else "")
        )


def enroll_pictures(
    verifier, gallery: Gallery, name: str, photos: list[str], replace: bool = False, force: bool = False
) -> EnrollReport:
    """Enroll each picture's face as a template of `name`. A face that fails the quality
    check (quality.face_quality) is refused, unless `force`; one that only warns is
    enrolled, its warnings reported. With `replace`, the first picture enrolled replaces
    the person's templates of this model. Nothing usable: FacelibError."""
    embedded = folders.embed_pictures(verifier, [(name, Path(p)) for p in photos], keep_crops=True)
    if not embedded.labels:
        raise FacelibError(f"nothing enrolled: {embedded.skipped_summary()}")
    rows = range(len(embedded.labels))
    refused = [
        RefusedPicture(embedded.paths[i], embedded.faces[i].quality)
        for i in rows
        if not force and embedded.faces[i].quality is not None and embedded.faces[i].quality.status == "fail"
    ]
    kept = [i for i in rows if embedded.paths[i] not in {r.path for r in refused}]
    if not kept:
        raise PoorQualityError(name, refused, embedded.skipped_summary())
    for n, i in enumerate(kept):
        gallery.enroll(name, embedded.embeddings[i], embedded.crops[i], replace=replace and n == 0)
    return EnrollReport(
        name=name,
        enrolled=[embedded.paths[i] for i in kept],
        qualities=[embedded.faces[i].quality for i in kept],
        refused=refused,
        skipped=embedded.skipped_summary(),
        templates={person: len(t) for person, t in gallery.templates().items()},
        forced=force,
    )


# ------------------------------------------------------------------ identify pictures


class EmptyGalleryError(FacelibError):
    """Nobody is enrolled in the gallery."""

    def __init__(self, folder: Path):
        self.folder = folder
        super().__init__(f"nobody is enrolled in {folder}")


class ForeignGalleryError(FacelibError):
    """Every template of the gallery was made by another model."""

    def __init__(self, gallery: Gallery, model: str):
        self.folder, self.model = gallery.folder, model
        self.makers = sorted({e.model_id.split("@")[0] for e in gallery.foreign()})
        super().__init__(
            f"the gallery {gallery.folder} holds {len(gallery.entries)} templates of "
            f"{len(gallery.names())} people, all made by another model ({', '.join(self.makers)}), none by "
            f"{model}: embeddings of different models cannot be compared"
        )


class NoOpenSetCalibrationError(FacelibError):
    """The model card's calibration ('lfw') has no usable open-set curve."""

    def __init__(self, model: str, reason: FacelibError):
        self.model, self.reason = model, reason
        super().__init__(f"the model card's open-set calibration cannot be used: {reason}")


@dataclass
class KnownPeople:
    """The people to identify against and where they come from."""

    templates: dict[str, np.ndarray]
    where: str  # "the gallery …" or "the pictures of …"
    warnings: list[str] = field(default_factory=list)


def known_people(
    verifier, people: folders.PeopleFolder | None = None, gallery_folder: Path | None = None
) -> KnownPeople:
    """The people of a folder (embedded now, nothing saved), else of the gallery:
    only the templates made by the verifier's model."""
    if people is not None:
        embedded, warnings = folders.embed_folder(verifier, people)
        if embedded.skipped:
            warnings.append(f"{people.root}: {embedded.skipped_summary()}")
        return KnownPeople(embedded.templates(), f"the pictures of {people.root}", warnings)
    gallery = Gallery.load(model_id(verifier.folder, verifier.card), gallery_folder)
    if not gallery.entries:
        raise EmptyGalleryError(gallery.folder)
    if not gallery.usable():
        raise ForeignGalleryError(gallery, verifier.folder.name)
    warnings = []
    if gallery.foreign():
        warnings.append(
            f"{len(gallery.foreign())} templates in {gallery.folder} were made by other models: not used"
        )
    return KnownPeople(gallery.templates(), f"the gallery {gallery.folder}", warnings)


@dataclass
class PictureIdentity:
    """The answer for one picture: a decision, or why it was skipped."""

    picture: str
    decision: Decision | None = None
    faces: int = 0
    box: list[int] | None = None
    skipped: folders.Skipped | None = None
    # P(same person) of the probe and its nearest person taken as a 1:1 pair (the
    # calibration's confidence mapping), not the chance that the name given is right.
    confidence: float | None = None
    quality: QualityReport | None = None  # of the probe's face (quality.face_quality)

    @property
    def explanation(self) -> str:
        if self.decision is not None:
            return self.decision.explain()
        return "no face found" if self.skipped.reason == "no face" else self.skipped.message


@dataclass
class IdentifyReport:
    """Who is in each picture, under one open-set rule and calibration."""

    results: list[PictureIdentity]
    rule: OpenSetRule
    threshold: float  # a name needs a distance below it
    calibration: str
    people: int
    templates: int
    where: str
    skipped: str  # folders.EmbeddedPictures.skipped_summary() of the probes
    unmeasurable: UnmeasurableRate | None = None
    mean_of_several: bool = False  # mean templates of several pictures: more strangers named
    confidence_source: str = ""  # the calibration's mapping, in words ("" without one)
    confidence_note: str = ""  # why there is no confidence, when there is none

    def to_json(self) -> list[dict]:
        """One object per picture (the `identify --json` output)."""
        out = []
        for r in self.results:
            row = {"picture": r.picture, "calibration": self.calibration}
            if r.decision is not None:
                row.update(r.decision.to_dict(), faces=r.faces, box=r.box, explanation=r.explanation)
                row.update(confidence=r.confidence, confidence_note=self.confidence_note)
                row.update(quality=r.quality.to_dict() if r.quality else None)
            else:
                row.update(
                    name=None,
                    reason=r.skipped.reason,
                    distance=None,
                    threshold=self.threshold,
                    margin=self.rule.margin,
                    fpir=self.rule.fpir,
                    candidates=[],
                    faces=0,
                    box=None,
                    explanation=r.explanation,
                    confidence=None,
                    confidence_note=self.confidence_note,
                    quality=None,
                )
            out.append(row)
        return out


def identification_rule(verifier, fpir: float, margin: float = 0.0, mode: str = "min") -> OpenSetRule:
    """The verifier's open-set rule; NoOpenSetCalibrationError when the model card's
    own calibration is needed and cannot be made."""
    try:
        return verifier.open_set_rule(fpir, margin, mode)
    except FacelibError as exc:
        if verifier.calibration_name != CARD:  # a named calibration: its own error says it
            raise
        raise NoOpenSetCalibrationError(verifier.folder.name, exc) from exc


def identify_pictures(
    verifier, photos: list[str], known: KnownPeople, fpir: float, margin: float = 0.0, mode: str = "min"
) -> IdentifyReport:
    """Who is in each picture among `known`, under the verifier's calibration."""
    rule = identification_rule(verifier, fpir, margin, mode)
    templates = known.templates
    probes = folders.embed_pictures(verifier, [(str(i), Path(p)) for i, p in enumerate(photos)])
    if not probes.labels:
        raise FacelibError(f"nobody to identify: {probes.skipped_summary()}")
    row = {int(label): i for i, label in enumerate(probes.labels)}
    skipped = {s.path: s for s in probes.skipped}
    results = []
    for i, picture in enumerate(photos):
        if i in row:
            face = probes.faces[row[i]]
            decision = rule.decide(probes.embeddings[row[i]], templates)
            confidence = (
                verifier.calibration.confidence_of(decision.distance)
                if decision.distance is not None
                else None
            )
            results.append(
                PictureIdentity(
                    picture,
                    decision,
                    face.faces_found,
                    list(face.box),
                    confidence=confidence,
                    quality=face.quality,
                )
            )
        else:
            results.append(PictureIdentity(picture, skipped=skipped[Path(picture)]))
    return IdentifyReport(
        results=results,
        rule=rule,
        threshold=rule.threshold(templates),
        calibration=verifier.calibration_name,
        people=len(templates),
        templates=sum(len(rows) for rows in templates.values()),
        where=known.where,
        skipped=probes.skipped_summary(),
        unmeasurable=rule.unmeasurable(templates, verifier.calibration_name),
        mean_of_several=mode == "mean" and any(len(t) > 1 for t in templates.values()),
        confidence_source=verifier.calibration.confidence_source,
        confidence_note=verifier.calibration.confidence_note,
    )


# ------------------------------------------------------------------ a gallery's calibration


@dataclass(frozen=True)
class GalleryReadiness:
    """Whether the enrolled templates are enough to calibrate on, and the saved gallery
    calibration that calibrating would replace."""

    readiness: CalibrationReadiness
    replaces: Path | None = None

    @property
    def ready(self) -> bool:
        return self.readiness.ready


def gallery_readiness(gallery: Gallery, model_folder: Path | None) -> GalleryReadiness:
    readiness = CalibrationReadiness.of(len(rows) for rows in gallery.templates().values())
    saved = calibration_path(model_folder, GALLERY_CALIBRATION) if model_folder is not None else None
    return GalleryReadiness(readiness, saved if saved is not None and saved.is_file() else None)


def gallery_calibration(gallery: Gallery) -> Calibration:
    """Thresholds measured on the enrolled templates, as `calibrate_folder` measures them
    on a folder (calibration.calibration_from_embeddings)."""
    templates = gallery.templates()
    require_calibration_pictures([len(rows) for rows in templates.values()], f"the gallery {gallery.folder}")
    embeddings = np.concatenate(list(templates.values()))
    labels = np.repeat(list(templates), [len(rows) for rows in templates.values()])
    return calibration_from_embeddings(
        embeddings, labels, GALLERY_CALIBRATION, f"the gallery {gallery.folder}"
    )
