"""The dashboard's state and decisions, without widgets: the page (facelib.dashboard)
only shows what this returns, and the tests drive it directly.

    controller = DashboardController.for_model("models/cpu-batch_hard-112")
    controller.handle_picture("reference", jpeg_bytes, source="a.jpg")
    outcome = controller.handle_picture("probe", other_jpeg_bytes, source="b.jpg")
    outcome.message    # plain text for the message line ("b.jpg: face found.")
    outcome.verdict    # Verdict(distance, threshold, same_person, elapsed_ms)
    outcome.identity   # Identity(name or None, distance), None with nobody enrolled

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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelib.decision import embedding_distance, same_person
from facelib.errors import FacelibError
from facelib.gallery import Gallery, Identity, model_id

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


@dataclass(frozen=True)
class Verdict:
    """Reference against probe."""

    distance: float
    threshold: float
    same_person: bool
    elapsed_ms: float  # from the picture's arrival in the kernel to this verdict


@dataclass
class Outcome:
    """What one request did, for the page to show. `message` is plain text."""

    message: str
    is_error: bool = False
    target: str | None = None
    picture: AnalysedPicture | None = None
    verdict: Verdict | None = None
    identity: Identity | None = None  # set for probes when someone usable is enrolled
    gallery_changed: bool = False


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

    @classmethod
    def for_model(cls, model: str | Path | None = None, gallery_folder: Path | None = None, **options):
        """Load the model (FacelibError when there is none) and its gallery."""
        from facelib.verification import FaceVerifier

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
        if target == "enroll":
            name = enroll_name.strip()
            self.gallery.enroll(name, picture.embedding, picture.crop_rgb)
            return Outcome(f"Enrolled {name}{note}.", target=target, picture=picture, gallery_changed=True)
        outcome = Outcome(f"{source}: face found{note}.", target=target, picture=picture)
        if target == "reference":
            self.reference = picture
        else:
            self.probe = picture
            outcome.identity = self.identify(picture.embedding)
        outcome.verdict = self.compare(start)
        return outcome

    def analyse(self, data: bytes, source: str = "picture") -> AnalysedPicture:
        """Decode, find the face, crop and embed; FacelibError names `source`."""
        from facelib.images import decode_bytes

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
            _jpeg(picture, 480), _jpeg(crop), crop, embedding, found.faces_found, found.whole_image
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
        return Verdict(distance, threshold, same_person(distance, threshold), elapsed_ms)

    def identify(self, embedding: np.ndarray) -> Identity | None:
        return self.gallery.identify(embedding, self.verifier.threshold)

    # ================================================================= gallery

    def delete(self, name: str | None) -> Outcome:
        if not name:
            return Outcome("Select a person to delete.", is_error=True)
        try:
            self.gallery.delete(name)
        except FacelibError as exc:
            return Outcome(str(exc), is_error=True)
        return Outcome(f"Deleted {name}.", gallery_changed=True)

    def people(self) -> list[tuple[str, bool]]:
        """(name, made by another model) for each enrolled person, in enrolment order."""
        return [(e.name, e.model_id != self.gallery.model_id) for e in self.gallery.entries]
