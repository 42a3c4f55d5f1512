"""The webcam dashboard: widgets over FaceVerifier, shown by notebook 04 under Voilà.

    from facelib.dashboard import Dashboard
    Dashboard().widget        # display it in a notebook, or serve notebook 04 with Voilà

The camera runs in the browser (ipywebrtc): a button asks the recorder for a frame,
and the frame comes back when `recorder.recording` turns False (watching
`recorder.image` would miss identical frames). Every handler also takes plain image
bytes (`handle_image`), which is how uploads arrive and how the tests drive it.
Nothing captured is written to disk unless it is enrolled in the gallery.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import ipywidgets as w
import numpy as np

from facelib.decision import embedding_distance, same_person
from facelib.errors import FacelibError
from facelib.gallery import Gallery, model_id

MAX_UPLOAD_BYTES = 15_000_000
NO_MODEL = (
    "No trained model yet. Make one with <code>make run</code> (or "
    "<code>facelib train --preset cpu</code> then <code>facelib evaluate</code>), then reload this page."
)


@dataclass
class Face:
    """One analysed picture: the annotated picture, its crop and embedding."""

    picture_jpeg: bytes
    crop_jpeg: bytes
    crop_rgb: np.ndarray
    embedding: np.ndarray
    faces_found: int
    whole_image: bool


def _jpeg(rgb: np.ndarray, width: int | None = None) -> bytes:
    if width and rgb.shape[1] > width:
        rgb = cv2.resize(rgb, (width, int(rgb.shape[0] * width / rgb.shape[1])), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


class Dashboard:
    def __init__(
        self,
        model: str | Path | None = None,
        gallery_folder: Path | None = None,
        live_interval_ms: int = 800,
        camera: bool = True,
    ):
        from facelib.images import load_image
        from facelib.verification import FaceVerifier

        self._load_image = load_image
        self.message = w.HTML()
        self.verifier, self.gallery = None, None
        try:
            self.verifier = FaceVerifier(model, no_face="error")
            self.gallery = Gallery.load(model_id(self.verifier.folder, self.verifier.card), gallery_folder)
        except FacelibError as exc:
            self.widget = w.VBox([w.HTML("<h2>facelib · face verification</h2>"), self.message])
            self._say(f"{NO_MODEL}<br><small>({html.escape(str(exc))})</small>", "error")
            return
        self.reference: Face | None = None
        self.probe: Face | None = None
        self.busy = threading.Lock()
        self.live_skipped = 0
        self.live_interval_ms = live_interval_ms
        self._pending: str | None = None
        self.verdicts = 0  # shown in the page (data-seq) so a browser can tell a new verdict
        self._live_thread: threading.Thread | None = None
        self._build(camera)

    # ================================================================= widgets

    def _build(self, camera: bool) -> None:
        v = self.verifier
        self.reference_view = w.Image(format="jpeg", layout=w.Layout(width="300px"))
        self.probe_view = w.Image(format="jpeg", layout=w.Layout(width="300px"))
        self.reference_crop = w.Image(format="jpeg", layout=w.Layout(width="112px"))
        self.probe_crop = w.Image(format="jpeg", layout=w.Layout(width="112px"))
        self.result = w.HTML("<i>Capture or upload a reference face, then a probe.</i>")
        self.identity = w.HTML()
        self.name = w.Text(placeholder="name to enroll", layout=w.Layout(width="180px"))
        self.people = w.Select(options=[], rows=5, layout=w.Layout(width="240px"))
        self.live = w.ToggleButton(description="Live", icon="video", tooltip="verify continuously")
        self.live.observe(self._on_live, names="value")

        buttons = []
        for label, target in [("Reference", "reference"), ("Probe", "probe"), ("Enroll", "enroll")]:
            button = w.Button(
                description=f"Capture {label.lower()}" if label != "Enroll" else "Capture & enroll"
            )
            button.on_click(lambda _, t=target: self.capture(t))
            buttons.append(button)
        delete = w.Button(description="Delete", icon="trash")
        delete.on_click(lambda _: self.delete(self.people.value))

        self.uploads = {}
        for target in ("reference", "probe", "enroll"):
            upload = w.FileUpload(
                accept="image/*",
                multiple=False,
                description=f"Upload {target}",
                layout=w.Layout(width="170px"),
            )
            upload.observe(lambda change, t=target: self._on_upload(t, change), names="value")
            self.uploads[target] = upload

        camera_box: list[w.Widget] = []
        if camera:
            from ipywebrtc import CameraStream, ImageRecorder

            self.camera = CameraStream.facing_user(audio=False)
            self.camera.add_class("facelib-camera")
            self.recorder = ImageRecorder(stream=self.camera, format="jpeg")
            self.recorder.observe(self._on_recording, names="recording")
            camera_box = [self.camera]
        header = w.HTML(
            "<style>.facelib-camera video, .facelib-camera {width: 320px !important; height: auto !important}</style>"
            f"<h2>facelib · face verification</h2><small>model <b>{html.escape(v.folder.name)}</b>, "
            f"detector {v.detector.name}, threshold {v.threshold:.3f} ({html.escape(v.threshold_source)}). "
            "Pictures stay in this page unless you enroll them.</small>"
        )
        self._refresh_people()
        self.widget = w.VBox(
            [
                header,
                self.message,
                w.HBox([*camera_box, w.VBox([*buttons[:2], self.live, w.HBox([self.name, buttons[2]])])]),
                w.HBox(list(self.uploads.values())),
                w.HBox(
                    [
                        w.VBox([w.HTML("<b>Reference</b>"), self.reference_view, self.reference_crop]),
                        w.VBox([w.HTML("<b>Probe</b>"), self.probe_view, self.probe_crop]),
                        w.VBox([self.result, self.identity]),
                    ]
                ),
                w.HTML("<b>Gallery</b> (enrolled people)"),
                w.HBox([self.people, delete]),
            ]
        )

    def _say(self, text: str, kind: str = "info") -> None:
        colour = {"error": "#b00020", "info": "#333"}[kind]
        self.message.value = (
            f'<div class="facelib-message" style="color:{colour}">{text}</div>' if text else ""
        )

    # ================================================================= camera

    def capture(self, target: str) -> None:
        """Ask the browser for a frame; it arrives in `_on_recording`."""
        if not hasattr(self, "recorder"):
            self._say("No camera here: upload a picture instead.", "error")
            return
        if target == "enroll" and not self.name.value.strip():
            self._say("Type a name before enrolling.", "error")
            return
        self._pending = target
        self.recorder.recording = True

    def _on_recording(self, change) -> None:
        if change["old"] and not change["new"] and self._pending:
            target, self._pending = self._pending, None
            self.handle_image(target, bytes(self.recorder.image.value))

    def _on_upload(self, target: str, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[0]
        if upload.get("size", 0) > MAX_UPLOAD_BYTES:
            self._say(
                f"{html.escape(upload['name'])} is too large ({upload['size'] / 1e6:.1f} MB; limit 15 MB).",
                "error",
            )
        else:
            self.handle_image(target, bytes(upload["content"]), source=upload.get("name", "upload"))
        self.uploads[target].value = ()  # so the same file can be uploaded again

    # ================================================================= live mode

    def _on_live(self, change) -> None:
        if change["new"] and (self._live_thread is None or not self._live_thread.is_alive()):
            self._live_thread = threading.Thread(target=self._live_loop, daemon=True)
            self._live_thread.start()

    def _live_loop(self) -> None:
        while self.live.value:
            self.live_tick()
            time.sleep(self.live_interval_ms / 1000)

    def live_tick(self) -> bool:
        """One beat of live mode: ask for a frame unless the last one is still being
        worked on (then skip it: work never piles up). Returns whether it asked."""
        if self.busy.locked() or self._pending is not None:
            self.live_skipped += 1
            return False
        self.capture("live")
        return True

    # ================================================================= handlers

    def analyse(self, data: bytes) -> Face:
        v = self.verifier
        rgb = self._load_image(data, max_pixels=v.max_pixels)
        crop, found = v.face_crop(rgb)
        embedding = v.embed_crops([crop])[0]
        picture = rgb.copy()
        if found.box is not None:
            x, y, bw, bh = found.box
            cv2.rectangle(picture, (x, y), (x + bw, y + bh), (0, 220, 0), max(2, rgb.shape[1] // 200))
        return Face(_jpeg(picture, 480), _jpeg(crop), crop, embedding, found.faces_found, found.whole_image)

    def handle_image(self, target: str, data: bytes, source: str = "camera") -> None:
        """Route one picture (camera frame or upload) to reference, probe, enroll or live."""
        with self.busy:
            start = time.perf_counter()
            try:
                face = self.analyse(data)
            except FacelibError as exc:
                self._say(f"{html.escape(source)}: {html.escape(str(exc))}", "error")
                return
            note = (
                f" ({face.faces_found} faces found: using the largest, most central one)"
                if face.faces_found > 1
                else ""
            )
            self._say(f"{html.escape(source)}: face found{note}.")
            if target == "reference":
                self.reference = face
                self.reference_view.value, self.reference_crop.value = face.picture_jpeg, face.crop_jpeg
                self._compare(start)
            elif target in ("probe", "live"):
                self.probe = face
                self.probe_view.value, self.probe_crop.value = face.picture_jpeg, face.crop_jpeg
                self._compare(start)
            elif target == "enroll":
                self.enroll(self.name.value, face)

    def _compare(self, start: float) -> None:
        threshold = self.verifier.threshold
        if self.probe is not None and self.gallery is not None:
            name, distance = self.gallery.identify(self.probe.embedding, threshold)
            if distance is None:
                self.identity.value = "<small>Gallery empty: enroll people to identify probes.</small>"
            else:
                who = f"<b>{html.escape(name)}</b>" if name else "<b>unknown</b>"
                self.identity.value = (
                    f'<div class="facelib-identity">Gallery: {who} (nearest distance {distance:.3f})</div>'
                )
        if self.reference is None or self.probe is None:
            return
        distance = embedding_distance(self.reference.embedding, self.probe.embedding)
        same = same_person(distance, threshold)
        fill = min(100.0, 50.0 * distance / threshold)  # the threshold sits in the middle
        colour = "#2e7d32" if same else "#c62828"
        verdict = "same person" if same else "different people"
        elapsed = 1000 * (time.perf_counter() - start)
        self.verdicts += 1
        self.result.value = f"""
<div class="facelib-result" data-seq="{self.verdicts}" data-ms="{elapsed:.1f}">
  <div style="font-size:1.6em;color:{colour}" class="facelib-verdict">{verdict}</div>
  <div>distance <b class="facelib-distance">{distance:.3f}</b>, threshold {threshold:.3f}</div>
  <div style="position:relative;width:260px;height:14px;background:#eee;border-radius:7px;margin:6px 0">
    <div style="width:{fill:.0f}%;height:14px;background:{colour};border-radius:7px"></div>
    <div style="position:absolute;left:50%;top:-3px;width:2px;height:20px;background:#000"></div>
  </div>
  <small>closer than the black mark: same person · {elapsed:.0f} ms</small>
</div>"""

    # ================================================================= gallery

    def enroll(self, name: str, face: Face) -> None:
        try:
            self.gallery.enroll(name, face.embedding, face.crop_rgb)
        except FacelibError as exc:
            self._say(html.escape(str(exc)), "error")
            return
        self._say(f"Enrolled <b>{html.escape(name.strip())}</b>.")
        self._refresh_people()

    def delete(self, name: str | None) -> None:
        if not name:
            self._say("Select a person to delete.", "error")
            return
        try:
            self.gallery.delete(name)
        except FacelibError as exc:
            self._say(html.escape(str(exc)), "error")
            return
        self._say(f"Deleted <b>{html.escape(name)}</b>.")
        self._refresh_people()

    def _refresh_people(self) -> None:
        foreign = {e.name for e in self.gallery.foreign()}
        self.people.options = [
            (f"{e.name} (made by another model: not used)" if e.name in foreign else e.name, e.name)
            for e in self.gallery.entries
        ]
