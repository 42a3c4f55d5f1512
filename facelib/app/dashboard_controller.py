"""The dashboard's state and decisions, without widgets: the page (facelib.app.dashboard)
only shows what this returns, and the tests drive it directly.

    controller = DashboardController.for_model("models/cpu-batch_hard-112")
    controller.handle_picture("reference", jpeg_bytes, source="a.jpg")
    outcome = controller.handle_picture("probe", other_jpeg_bytes, source="b.jpg")
    outcome.message    # plain text for the message line ("b.jpg: face found.")
    outcome.verdict    # Verdict(distance, threshold, same_person, elapsed_ms)
    outcome.identity   # identification.Decision (name or None, why, nearest three), None with nobody enrolled
    outcome.evidence   # LfwEvidence: where the distance falls among the model's LFW View 1 pairs
    controller.people()                 # [Person(name, templates, foreign)], each person once
    controller.calibrate_on_gallery()   # thresholds from the enrolled templates, saved, used until reload

Camera frames come from the browser, later and maybe never: `ask_for_frame` records
what the next frame is for, `frame_arrived` answers it, and a request left unanswered
for `frame_timeout_s` is dropped by `drop_stale_request`, so live mode asks again
rather than waiting forever. Errors become messages: a FacelibError says what is wrong
with the picture; anything else is logged with its traceback and reported in one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from facelib.core.decision import embedding_distance, same_person
from facelib.core.errors import FacelibError
from facelib.data.images import decode_bytes
from facelib.data.quality import QualityReport
from facelib.evaluation.evaluate import VIEW1_DISTANCES
from facelib.recognition.calibration import (
    CALIBRATION_PEOPLE,
    CALIBRATION_PICTURES,
    CARD,
    Calibration,
    calibration_path,
    load_calibration,
    save_calibration,
)
from facelib.recognition.gallery import Gallery, model_id
from facelib.recognition.identification import DEFAULT_FPIR, Decision
from facelib.recognition.reports import GALLERY_CALIBRATION, gallery_calibration, gallery_readiness
from facelib.recognition.verification import FaceVerifier

log = logging.getLogger(__name__)

# Under Voilà an upload reaches the kernel as one websocket message, and tornado drops the
# connection on a message over 10 MiB (its default websocket_max_message_size): a limit
# above that could never refuse anything, the picture would just vanish. 8 MB leaves room.
MAX_UPLOAD_BYTES = 8_000_000
FRAME_TIMEOUT_S = 5.0
PROBE_TARGETS = ("probe", "live")  # "live": a probe taken by live mode
TARGETS = ("reference", *PROBE_TARGETS, "enroll")


@dataclass
class AnalysedPicture:
    """One picture after face detection and embedding, with what the page shows of it."""

    picture_jpeg: bytes  # the picture with the face box drawn, at most 480 px wide
    crop_jpeg: bytes
    crop_rgb: np.ndarray
    embedding: np.ndarray
    faces_found: int
    whole_image: bool
    conditions: list[str] = field(default_factory=list)  # facelib.data.quality, in words
    quality: QualityReport | None = None  # quality.face_quality: size, sharpness, exposure, pose


@dataclass(frozen=True)
class Verdict:
    """Reference against probe."""

    distance: float
    threshold: float
    same_person: bool
    elapsed_ms: float  # from the picture's arrival in the kernel to this verdict
    # P(same person) by the confidence mapping of the calibration in use (`calibration`);
    # None without one, and `confidence_note` says why.
    confidence: float | None = None
    calibration: str = CARD
    confidence_note: str = ""


@dataclass(frozen=True)
class LfwEvidence:
    """A verification distance beside the model's own LFW View 1 pairs (people it never
    trained on): how many same-person pairs were at least this far apart, and how many
    different-person pairs were closer. Without them (`available` False), `note` says why."""

    distance: float
    same: np.ndarray | None = None  # View 1 distances of same-person pairs
    different: np.ndarray | None = None  # … and of different-person pairs
    note: str = ""

    @property
    def available(self) -> bool:
        return self.same is not None and self.different is not None

    @property
    def same_at_least(self) -> float:
        """Share of same-person pairs whose distance was this one or more."""
        return float(np.mean(self.same >= self.distance)) if len(self.same) else float("nan")

    @property
    def different_closer(self) -> float:
        """Share of different-person pairs closer than this distance."""
        return float(np.mean(self.different < self.distance)) if len(self.different) else float("nan")

    def histogram(self, bins: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin edges (covering the current distance too), same-person and
        different-person counts."""
        both = np.concatenate([self.same, self.different, [self.distance]])
        low, high = float(both.min()), float(both.max())
        edges = np.linspace(low, high if high > low else low + 1e-6, bins + 1)
        return edges, np.histogram(self.same, edges)[0], np.histogram(self.different, edges)[0]

    def sentence(self) -> str:
        if not self.available:
            return self.note
        return (
            f"On LFW View 1 (people this model never trained on), {100 * self.same_at_least:.0f}% of "
            f"{len(self.same)} same-person pairs were at least {self.distance:.3f} apart, and "
            f"{100 * self.different_closer:.0f}% of {len(self.different)} different-person pairs "
            "were closer."
        )


class Person(NamedTuple):
    """One enrolled person, as the gallery list shows them."""

    name: str
    templates: int  # pictures enrolled with the current model: the ones identification compares
    foreign: int  # pictures enrolled with another model: listed, never compared


@dataclass
class Outcome:
    """What one request did, for the page to show. `message` is plain text."""

    message: str
    is_error: bool = False
    target: str | None = None
    picture: AnalysedPicture | None = None
    verdict: Verdict | None = None
    identity: Decision | None = None  # set for probes when someone usable is enrolled
    identity_problem: str = ""  # why a probe could not be identified (no open-set calibration)
    evidence: LfwEvidence | None = None  # set with every verdict
    gallery_changed: bool = False
    calibration_changed: bool = False


@dataclass(frozen=True)
class FrameRequest:
    target: str
    enroll_name: str
    asked_at: float  # on the controller's clock


def unexpected_error_message(exc: BaseException) -> str:
    return f"Something went wrong: {type(exc).__name__}: {exc}; details in the server log."


def _jpeg(rgb: np.ndarray, width: int | None = None) -> bytes:
    if width and rgb.shape[1] > width:
        rgb = cv2.resize(rgb, (width, int(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


class DashboardController:
    """Holds the reference, the probe, the gallery and the camera/live state; turns
    pictures into verdicts and identities. Safe to call from the live-mode thread."""

    def __init__(
        self,
        verifier,
        gallery: Gallery,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.verifier, self.gallery = verifier, gallery
        self.reference: AnalysedPicture | None = None
        self.probe: AnalysedPicture | None = None
        self.verdicts = 0  # counts verdicts, so a page can tell a new one from the last
        self.busy = threading.Lock()  # held while a picture is being worked on
        self.live_skipped = 0
        self.frame_timeout_s = frame_timeout_s
        self._clock = clock
        self._pending: FrameRequest | None = None
        self._pending_lock = threading.Lock()
        self._rule = None  # the open-set rule, made on the first identification
        self.fpir, self.margin = DEFAULT_FPIR, 0.0  # the open-set rule's settings
        folder = getattr(verifier, "folder", None)
        # Where `facelib evaluate` leaves View 1's distances (a test may point elsewhere).
        self.lfw_distances_path = folder / "eval" / VIEW1_DISTANCES if folder is not None else None
        self._lfw_distances: tuple | None = None  # (path, mtime_ns, same, different)

    @classmethod
    def for_model(cls, model: str | Path | None = None, gallery_folder: Path | None = None, **options):
        """Load the model (FacelibError when there is none) and its gallery."""
        verifier = FaceVerifier(model, no_face="error")
        gallery = Gallery.load(model_id(verifier.folder, verifier.card), gallery_folder)
        return cls(verifier, gallery, **options)

    # ================================================================= camera requests

    @property
    def pending(self) -> FrameRequest | None:
        return self._pending

    def ask_for_frame(self, target: str, enroll_name: str = "") -> Outcome | None:
        """Record that the next camera frame is for `target`. Returns None when the
        browser should now be asked for a frame, else an Outcome saying why not."""
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
        if target == "enroll" and not enroll_name.strip():
            return Outcome("Type a name before enrolling.", is_error=True, target=target)
        with self._pending_lock:  # a newer click replaces an unanswered one
            self._pending = FrameRequest(target, enroll_name, self._clock())
        return None

    def ask_for_live_frame(self) -> bool:
        """One beat of live mode: ask for a frame unless the last one is still being
        waited for or worked on (then skip this beat: work never piles up)."""
        with self._pending_lock:
            if self.busy.locked() or self._pending is not None:
                self.live_skipped += 1
                return False
            self._pending = FrameRequest("live", "", self._clock())
            return True

    def drop_stale_request(self) -> Outcome | None:
        """Forget a frame request older than `frame_timeout_s` (the browser never
        answered: camera off, permission withdrawn, page asleep) and say so."""
        with self._pending_lock:
            request = self._pending
            if request is None or self._clock() - request.asked_at < self.frame_timeout_s:
                return None
            self._pending = None
        then = "live mode asks again" if request.target == "live" else "click again to retry"
        return Outcome(
            f"The camera sent no frame within {self.frame_timeout_s:g} s "
            f"(is it switched on and allowed in this page?); {then}.",
            is_error=True,
            target=request.target,
        )

    def frame_arrived(self, data: bytes) -> Outcome | None:
        """A frame from the browser: handled for the request waiting for it, or
        ignored (None) when none is (it came after its request timed out)."""
        with self._pending_lock:
            request, self._pending = self._pending, None
            if request is None:
                return None
            # Busy before the request is gone: live mode must never see neither.
            self.busy.acquire()
        try:
            return self._handle_while_busy(request.target, data, "camera", request.enroll_name)
        finally:
            self.busy.release()

    # ================================================================= pictures

    def handle_upload(self, target: str, file_name: str, content: bytes, enroll_name: str = "") -> Outcome:
        # The size the browser reports is only a claim: count the bytes that came.
        content = bytes(content)
        if len(content) > MAX_UPLOAD_BYTES:
            return Outcome(
                f"{file_name} is too large ({len(content) / 1e6:.1f} MB; "
                f"the limit is {MAX_UPLOAD_BYTES / 1e6:g} MB).",
                is_error=True,
                target=target,
            )
        return self.handle_picture(target, content, file_name, enroll_name)

    def handle_picture(
        self, target: str, data: bytes, source: str = "camera", enroll_name: str = ""
    ) -> Outcome:
        """Route one picture (camera frame or upload) to reference, probe, live or enroll."""
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
        with self.busy:
            return self._handle_while_busy(target, data, source, enroll_name)

    def _handle_while_busy(self, target: str, data: bytes, source: str, enroll_name: str) -> Outcome:
        if target == "enroll" and not enroll_name.strip():
            return Outcome("Type a name before enrolling.", is_error=True, target=target)
        start = time.perf_counter()
        try:
            return self._route(target, data, source, enroll_name, start)
        except FacelibError as exc:
            return Outcome(str(exc), is_error=True, target=target)
        except Exception as exc:  # a bug: under Voilà an uncaught one would vanish
            log.exception("dashboard: %s picture from %s failed", target, source)
            return Outcome(unexpected_error_message(exc), is_error=True, target=target)

    def _route(self, target: str, data: bytes, source: str, enroll_name: str, start: float) -> Outcome:
        picture = self.analyse(data, source)
        several = picture.faces_found > 1
        note = f" ({picture.faces_found} faces found: using the largest, most central one)" if several else ""
        if picture.conditions:
            note += (
                f"; outside the usual conditions of a threshold ({', '.join(picture.conditions)}): "
                "the verdict is less reliable, try even light facing the camera"
            )
        quality = picture.quality
        if target == "enroll" and quality is not None and quality.status == "fail":
            # As `facelib enroll` without --force: a failing face makes a poor template.
            return Outcome(
                f"Not enrolled: {'; '.join(quality.reasons)}. For a better capture: "
                f"{', '.join(quality.advice)}.",
                is_error=True,
                target=target,
                picture=picture,
            )
        if target == "enroll":
            if quality is not None and quality.status == "warn":
                note += (
                    f"; quality: {'; '.join(quality.reasons)} (a better capture: {', '.join(quality.advice)})"
                )
            name = enroll_name.strip()
            entry = self.gallery.enroll(name, picture.embedding, picture.crop_rgb)
            count = sum(e.name == entry.name and e.model_id == entry.model_id for e in self.gallery.entries)
            which = f"{_ordinal(count)} template" if count > 1 else "first template"
            return Outcome(
                f"Enrolled {entry.name} ({which}){note}.",
                target=target,
                picture=picture,
                gallery_changed=True,
            )
        outcome = Outcome(f"{source}: face found{note}.", target=target, picture=picture)
        if target == "reference":
            self.reference = picture
        else:
            self.probe = picture
            self._identify_into(outcome, picture.embedding)
        outcome.verdict = self.compare(start)
        if outcome.verdict is not None:
            outcome.evidence = self.explain_distance(outcome.verdict.distance)
        return outcome

    def _identify_into(self, outcome: Outcome, embedding: np.ndarray) -> None:
        # A probe that cannot be identified still gets its verdict.
        try:
            outcome.identity = self.identify(embedding)
        except FacelibError as exc:
            outcome.identity_problem = f"Cannot identify: {exc}"

    def analyse(self, data: bytes, source: str = "picture") -> AnalysedPicture:
        """Decode, find the face, crop and embed; FacelibError names `source`."""
        verifier = self.verifier
        rgb = decode_bytes(bytes(data), what=source, max_pixels=verifier.max_pixels)
        crop, found = verifier.face_crop(rgb, source)
        embedding = verifier.embed_crops([crop])[0]
        picture = rgb.copy()
        if found.box is not None:
            x, y, width, height = found.box
            line = max(2, rgb.shape[1] // 200)
            cv2.rectangle(picture, (x, y), (x + width, y + height), (0, 220, 0), line)
        return AnalysedPicture(
            _jpeg(picture, 480),
            _jpeg(crop),
            crop,
            embedding,
            found.faces_found,
            found.whole_image,
            found.conditions,
            found.quality,
        )

    def compare(self, start: float) -> Verdict | None:
        """Reference against probe (None until both are there); `start` is when the
        picture that completes the pair arrived (time.perf_counter)."""
        if self.reference is None or self.probe is None:
            return None
        threshold = self.verifier.threshold
        distance = float(embedding_distance(self.reference.embedding, self.probe.embedding))
        self.verdicts += 1
        elapsed_ms = 1000 * (time.perf_counter() - start)
        calibration = getattr(self.verifier, "calibration", None)
        confidence = calibration.confidence_of(distance) if calibration is not None else None
        note = calibration.confidence_note if calibration is not None else ""
        return Verdict(
            distance,
            threshold,
            same_person(distance, threshold),
            elapsed_ms,
            confidence,
            self.calibration_name,
            note,
        )

    def identify(self, embedding: np.ndarray) -> Decision | None:
        """Who the probe is among the enrolled people; None when nobody usable is enrolled."""
        if not self.gallery.templates():
            return None
        if self._rule is None:
            self._rule = self.verifier.open_set_rule(self.fpir, self.margin)
        return self.gallery.identify(embedding, self._rule)

    @property
    def calibration_name(self) -> str:
        """The calibration the thresholds come from: "lfw" (the model card's) or a named one."""
        return getattr(self.verifier, "calibration_name", CARD)

    def set_identification(self, fpir: float | None = None, margin: float | None = None) -> Outcome:
        """Change the open-set rule: `fpir`, the share of strangers who may be given a
        name; `margin`, how much nearer than the runner-up the best person must be.
        The probe shown is identified again under the new rule."""
        if fpir is not None and not 0 < fpir < 1:
            return Outcome(
                f"The share of strangers named must be between 0 and 1, not {fpir}.", is_error=True
            )
        if margin is not None and margin < 0:
            return Outcome(f"The margin is a distance, 0 or more, not {margin}.", is_error=True)
        with self.busy:
            self.fpir = self.fpir if fpir is None else float(fpir)
            self.margin = self.margin if margin is None else float(margin)
            self._rule = None
            warning = self.measurability_warning()
            outcome = Outcome(
                f"Identification: at most {100 * self.fpir:g}% of strangers named"
                + (f", the nearest person ahead of the next by {self.margin:g}." if self.margin else ".")
                + (f" {warning}" if warning else "")
            )
            self._reidentify_into(outcome)
        return outcome

    def _reidentify_into(self, outcome: Outcome) -> None:
        if self.probe is not None:
            outcome.target = "probe"
            self._identify_into(outcome, self.probe.embedding)

    # ================================================================= LFW evidence

    def explain_distance(self, distance: float) -> LfwEvidence:
        """Where `distance` falls among the model's LFW View 1 pairs, or why that is
        not known (the model was never evaluated)."""
        path = self.lfw_distances_path
        run = getattr(self.verifier, "folder", None)
        command = f"`facelib evaluate --model {run.name}`" if run is not None else "`facelib evaluate`"
        if path is None or not path.is_file():
            evaluated = path is not None and (path.parent / "metrics.json").is_file()
            note = (
                f"This model was evaluated before its View 1 distances were kept: run {command} again "
                "to see how LFW pairs compare with this distance."
                if evaluated
                else f"This model has not been evaluated on LFW, so there is nothing to compare this "
                f"distance with: run {command}."
            )
            return LfwEvidence(distance, note=note)
        try:
            same, different = self._load_lfw_distances(path)
        except (OSError, ValueError, KeyError) as exc:
            return LfwEvidence(distance, note=f"{path} cannot be read ({exc}): run {command} again.")
        return LfwEvidence(distance, same, different)

    def _load_lfw_distances(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        stamp = path.stat().st_mtime_ns
        cached = self._lfw_distances
        if cached is None or cached[:2] != (path, stamp):
            with np.load(path) as data:
                distances = np.asarray(data["distances"], np.float64)
                same = np.asarray(data["same"], bool)
            if distances.shape != same.shape:
                raise ValueError(f"{len(distances)} distances but {len(same)} labels")
            cached = self._lfw_distances = (path, stamp, distances[same], distances[~same])
        return cached[2], cached[3]

    # ================================================================= gallery

    def delete(self, name: str | None) -> Outcome:
        if not name:
            return Outcome("Select a person to delete.", is_error=True)
        try:
            self.gallery.delete(name)
        except FacelibError as exc:
            return Outcome(str(exc), is_error=True)
        return Outcome(f"Deleted {name}.", gallery_changed=True)

    def people(self) -> list[Person]:
        """Each enrolled person once, in enrolment order, with how many templates the
        current model made and how many another model made."""
        counts: dict[str, list[int]] = {}
        for e in self.gallery.entries:
            counts.setdefault(e.name, [0, 0])[e.model_id != self.gallery.model_id] += 1
        return [Person(name, usable, foreign) for name, (usable, foreign) in counts.items()]

    # ================================================================= gallery calibration

    def gallery_calibration_readiness(self) -> tuple[bool, str]:
        """Whether the gallery can calibrate the thresholds, and a note saying why (not)."""
        report = gallery_readiness(self.gallery, getattr(self.verifier, "folder", None))
        counts = report.readiness
        if not report.ready:
            return False, (
                f"Needs {CALIBRATION_PEOPLE} people with at least {CALIBRATION_PICTURES} templates each "
                f"(now {counts.ready_people}): enroll more captures per person."
            )
        replaces = (
            f" Calibrating replaces the saved calibration '{GALLERY_CALIBRATION}' ({report.replaces})."
            if report.replaces is not None
            else ""
        )
        return True, (
            f"{counts.people} people, {counts.pictures} templates: "
            f"thresholds can be measured on your own pictures.{replaces}"
        )

    def measurability_warning(self) -> str:
        """A warning when the open-set rule asks its calibration for a false-accept rate per
        comparison below 1/pairs, which its impostor curve cannot measure; "" otherwise."""
        templates = self.gallery.templates()
        if not templates:
            return ""
        try:
            if self._rule is None:
                self._rule = self.verifier.open_set_rule(self.fpir, self.margin)
        except FacelibError:  # no calibration to read: identification says why
            return ""
        unmeasurable = self._rule.unmeasurable(templates, self.calibration_name)
        return f"Warning: {unmeasurable}." if unmeasurable else ""

    def calibrate_on_gallery(self) -> Outcome:
        """Measure the thresholds on the gallery, save them as the model's calibration
        "gallery" (replacing one saved before, and saying so) and use them on this page
        until it is reloaded: for verdicts and for identification."""
        start = time.perf_counter()
        with self.busy:
            ready, why = self.gallery_calibration_readiness()
            if not ready:
                return Outcome(why, is_error=True)
            try:
                calibration = gallery_calibration(self.gallery)
                replaced = ""
                if calibration_path(self.verifier.folder, GALLERY_CALIBRATION).is_file():
                    try:
                        old = load_calibration(self.verifier.folder, GALLERY_CALIBRATION)
                        replaced = f" It replaced the one saved there before ({old.threshold_source})."
                    except (FacelibError, OSError) as exc:
                        replaced = (
                            f" It replaced the one saved there before, which could not be read ({exc})."
                        )
                path = save_calibration(self.verifier.folder, calibration)
            except FacelibError as exc:
                return Outcome(str(exc), is_error=True)
            before = self.verifier.threshold
            self._use_calibration(calibration)
            warning = self.measurability_warning()
            outcome = Outcome(
                f"Calibrated on your gallery: verification threshold {calibration.threshold:.3f} "
                f"(was {before:.3f}), the best balanced accuracy on {calibration.threshold_source}; "
                f"names are now given by its {calibration.curve.pairs:,} different-person template "
                f"pairs. Saved as calibration '{calibration.name}' in {path}.{replaced} "
                "This page uses it until it is reloaded: a new page starts on the model card's "
                f"calibration 'lfw' (the command line uses this one with --calibration {calibration.name}). "
                "Measured on few pictures, so rough: enroll more to firm it up."
                + (f" {warning}" if warning else ""),
                calibration_changed=True,
            )
            self._reidentify_into(outcome)
            outcome.verdict = self.compare(start)
            if outcome.verdict is not None:
                outcome.evidence = self.explain_distance(outcome.verdict.distance)
        return outcome

    def _use_calibration(self, calibration: Calibration) -> None:
        self.verifier.use_calibration(calibration)
        self._rule = None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
