"""The webcam dashboard's page: widgets over a DashboardController, shown by notebook 04
under Voilà.

    from facelib.app.dashboard import Dashboard
    Dashboard()               # display it in a notebook, or serve notebook 04 with Voilà

The state and every decision live in facelib.app.dashboard_controller; this module lays
out the widgets, speaks ipywebrtc's camera protocol and shows what the controller
returns. A button asks the recorder for a frame, and the frame comes back when
`recorder.recording` turns False (watching `recorder.image` would miss identical
frames). A request the browser never answers is dropped after `frame_timeout_s`.
ipywebrtc 0.6's own snapshot leaves a playing <video> behind for every frame, which
soon starves the camera of frames (`SNAPSHOT_JS` says how, and replaces it).
Every callback reports errors in the page: under Voilà an uncaught one would vanish.

Displayed, a Dashboard is its widget, with a plain-text form that names the model it
serves ("facelib dashboard: model NAME (folder), threshold T") or why there is none:
Voilà puts that text in the page's HTML, where tests/test_main_command.py reads it.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import sys
import threading
import time
from pathlib import Path

import ipywidgets as w

from facelib.app import dashboard_controller
from facelib.app.dashboard_controller import (
    FRAME_TIMEOUT_S,
    PROBE_TARGETS,
    DashboardController,
    LfwEvidence,
    Outcome,
    Person,
    Verdict,
    unexpected_error_message,
)
from facelib.core import config
from facelib.core.errors import FacelibError
from facelib.recognition.calibration import CARD
from facelib.recognition.identification import Decision

log = logging.getLogger(__name__)

TITLE = "<h2>facelib · face verification</h2>"
NO_MODEL = (
    "No trained model yet. Make one with `make run` (or "
    "`facelib train --preset cpu` then `facelib evaluate`), then reload this page."
)
SERVE_ANOTHER = "Serve one of them with `make dashboard RUN=<name>`."
FPIR_CHOICES = [("0.1%", 0.001), ("1%", 0.01), ("10%", 0.1)]  # strangers who may be given a name

# ipywebrtc 0.6's ImageRecorder answers `recording` with a snapshot that makes a new <video>
# for the stream, waits for its first frame, draws it and never stops it. The players pile
# up (one per capture, ~75 a minute in live mode), and after a few of them Chromium hands
# the camera's frames out only about once a second instead of at the camera's rate: the
# next snapshot waits that long for its first frame, most of the time from a click on
# "Capture probe" to its verdict (docs/benchmarks.md, "Figures once quoted in the code";
# bench/dashboard_latency.py). This snapshot,
# installed on the recorder's class, keeps one playing <video> per recorder and draws its
# current frame, then answers as ipywebrtc does: the image's value, then `recording` off.
# Should it fail, ipywebrtc's own snapshot runs. ipywidgets cannot run a script, so a
# hidden picture that cannot load runs it (`snapshot_patch_html`).
SNAPSHOT_JS = """
(function () {
  if (window.facelibSnapshotPatch) return;
  window.facelibSnapshotPatch = true;
  async function snapshot() {
    var source = this.get('stream');
    var stream = await (source.captureStream ? source.captureStream() : source.stream);
    var video = this.facelibVideo;
    if (!video || video.srcObject !== stream) {
      if (video) { video.pause(); video.srcObject = null; }
      video = this.facelibVideo = document.createElement('video');
      video.muted = true;
      video.srcObject = stream;
    }
    if (video.paused) video.play().catch(function () {});
    if (video.readyState < 2) {
      await new Promise(function (done) { video.addEventListener('loadeddata', done, {once: true}); });
    }
    var canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    var type = 'image/' + this.get('format');
    var blob = await new Promise(function (done) { canvas.toBlob(done, type); });
    this.set('_data_src', window.URL.createObjectURL(blob));  // bare URL is document.URL here
    this._last_blob = blob;
    var bytes = new Uint8Array(await blob.arrayBuffer());
    var image = this.get('image');
    image.set('value', new DataView(bytes.buffer));
    image.save_changes();
    this.set('_height', canvas.height + 'px');
    this.set('_width', canvas.width + 'px');
    this.set('recording', false);
    this.save_changes();
  }
  var tries = 0;
  (function install() {
    var recorder = window.last_image_recorder;
    if (!recorder) {
      if (++tries < 300) window.setTimeout(install, 100);
      return;
    }
    var cls = Object.getPrototypeOf(recorder);
    if (cls.facelibSnapshot) return;
    var original = cls.snapshot;
    cls.facelibSnapshot = snapshot;
    cls.snapshot = function () {
      var self = this;
      return snapshot.call(self).catch(function (error) {
        console.warn('facelib: camera snapshot failed, falling back to ipywebrtc', error);
        return original.call(self);
      });
    };
  })();
})();
"""


def _html(text: str) -> str:
    """Plain text to HTML, `code` in backquotes shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def no_model_message(model: str | Path | None, exc: Exception) -> str:
    """Why the page has no model, and what to do, as plain text: no model trained at
    all; the one asked for (FACELIB_MODEL, which `make dashboard RUN=…` sets) does not
    exist while others do; or the model there is cannot be used."""
    from facelib.recognition.model import resolve_model_folder, trained_run_names  # Keras

    runs = trained_run_names()
    if not runs:
        return f"{NO_MODEL} ({exc})"
    listed = ", ".join(f"`{run}`" for run in runs)
    if model:
        try:
            resolve_model_folder(model)
        except FacelibError:
            return (
                f"Model `{model}` was asked for (FACELIB_MODEL) but there is no such run, nor such a "
                f"folder. Trained runs in {config.models_dir()}: {listed}. {SERVE_ANOTHER}"
            )
    which = f"Model `{model}`" if model else "The newest model"
    return f"{which} cannot be used: {exc}. Trained runs: {listed}. {SERVE_ANOTHER}"


def _log_to_server_log() -> None:
    """Send facelib's log records to the process's own stderr: under Voilà the kernel's
    sys.stderr feeds the page, where nobody reads it, while sys.__stderr__ is the
    server's log."""
    logger = logging.getLogger("facelib")
    if not any(getattr(handler, "facelib_server_log", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.__stderr__)
        handler.facelib_server_log = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _reporting_errors(callback):
    """Widget callbacks: an unexpected error becomes a line in the page and a
    traceback in the server log."""

    @functools.wraps(callback)
    def guarded(self, *args, **kwargs):
        try:
            return callback(self, *args, **kwargs)
        except Exception as exc:
            log.exception("dashboard: %s failed", callback.__name__)
            self._say(unexpected_error_message(exc), "error")

    return guarded


def verdict_html(verdict: Verdict, sequence: int) -> str:
    """The verdict with a gauge; `sequence` (data-seq) lets a browser tell a new verdict."""
    fill = min(100.0, 50.0 * verdict.distance / verdict.threshold)  # the threshold sits in the middle
    colour = "#2e7d32" if verdict.same_person else "#c62828"
    words = "same person" if verdict.same_person else "different people"
    return f"""
<div class="facelib-result" data-seq="{sequence}" data-ms="{verdict.elapsed_ms:.1f}">
  <div style="font-size:1.6em;color:{colour}" class="facelib-verdict">{words}</div>
  <div>distance <b class="facelib-distance">{verdict.distance:.3f}</b>, threshold {verdict.threshold:.3f}</div>
  <div style="position:relative;width:260px;height:14px;background:#eee;border-radius:7px;margin:6px 0">
    <div style="width:{fill:.0f}%;height:14px;background:{colour};border-radius:7px"></div>
    <div style="position:absolute;left:50%;top:-3px;width:2px;height:20px;background:#000"></div>
  </div>
  <small>closer than the black mark: same person · {verdict.elapsed_ms:.0f} ms</small>
  {confidence_html(verdict)}
</div>"""


def confidence_html(verdict: Verdict) -> str:
    """P(same person) and the calibration that gives it, or why there is none."""
    calibration = html.escape(verdict.calibration)
    if verdict.confidence is None:
        return f'<div class="facelib-confidence"><small>{html.escape(verdict.confidence_note)}</small></div>'
    return (
        f'<div class="facelib-confidence">P(same person) <b>{100 * verdict.confidence:.0f}%</b> '
        f"<small>(calibration <b>{calibration}</b>; pairs like its own, same and different "
        "equally likely beforehand)</small></div>"
    )


def quality_html(quality) -> str:
    """A face's quality problems and what to change in the capture ("" when it passes)."""
    if quality is None or quality.status == "pass":
        return ""
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in quality.reasons)
    advice = html.escape(", ".join(quality.advice))
    return (
        f'<div class="facelib-quality" data-status="{quality.status}"><small>quality '
        f'<b>{quality.status}</b>:</small><ul style="margin:2px 0">{reasons}</ul>'
        f"<small>a better capture: {advice}</small></div>"
    )


def decision_html(decision: Decision, calibration: str) -> str:
    """Who the probe is: the name or "unknown" with the reason in words, the nearest
    three people with their distances, and the rule that decided (threshold, share of
    strangers named, calibration)."""
    who = html.escape(decision.name) if decision.name else "unknown"
    colour = "#2e7d32" if decision.name else "#c62828"
    rows = "".join(
        f'<tr class="facelib-candidate"><td>{rank}.</td><td>{html.escape(c.name)}</td>'
        f'<td style="text-align:right">{c.distance:.3f}</td></tr>'
        for rank, c in enumerate(decision.candidates, 1)
    )
    lead = f", ahead of the runner-up by {decision.margin:.3f}" if decision.margin else ""
    rule = (
        f"a name needs distance &lt; {decision.threshold:.3f}{lead}: at most {100 * decision.fpir:g}% "
        f"of strangers named (FPIR target), calibration <b>{html.escape(calibration)}</b>"
    )
    return f"""
<div class="facelib-identity" data-reason="{html.escape(decision.reason)}" style="line-height:1.35">
  <div>Gallery: <b style="color:{colour}">{who}</b></div>
  <div class="facelib-why" style="max-width:300px">{html.escape(decision.explain())}</div>
  <table class="facelib-candidates" style="margin:4px 0">
    <tr><th></th><th style="text-align:left">nearest people</th><th>distance</th></tr>{rows}
  </table>
  <small class="facelib-rule">{rule}</small>
</div>"""


def evidence_html(evidence: LfwEvidence | None, threshold: float | None = None) -> str:
    """The distance among the model's LFW View 1 pairs: a small histogram (green: same
    person, red: different people) with a black mark at the distance and a dashed one
    at the threshold, and the two shares in words; or why there is no such evidence."""
    if evidence is None:
        return ""
    if not evidence.available:
        return (
            '<div class="facelib-evidence" style="max-width:300px;line-height:1.3">'
            f"<small>{_html(evidence.note)}</small></div>"
        )
    edges, same, different = evidence.histogram()
    width, height = 260, 60
    top = max(int(same.max()), int(different.max()), 1)
    span = float(edges[-1] - edges[0])

    def x(value: float) -> float:
        return width * (value - edges[0]) / span

    bars = []
    for counts, colour in ((different, "#c62828"), (same, "#2e7d32")):
        for left, right, count in zip(edges[:-1], edges[1:], counts, strict=True):
            if count:
                h = height * count / top
                bars.append(
                    f'<rect x="{x(left):.1f}" y="{height - h:.1f}" width="{x(right) - x(left):.1f}" '
                    f'height="{h:.1f}" fill="{colour}" fill-opacity="0.55"/>'
                )
    marks = [
        f'<line class="facelib-evidence-mark" x1="{x(evidence.distance):.1f}" x2="{x(evidence.distance):.1f}" '
        f'y1="0" y2="{height}" stroke="#000" stroke-width="2"/>'
    ]
    if threshold is not None and edges[0] <= threshold <= edges[-1]:
        marks.append(
            f'<line x1="{x(threshold):.1f}" x2="{x(threshold):.1f}" y1="0" y2="{height}" '
            'stroke="#555" stroke-dasharray="3,2"/>'
        )
    axis = (
        f'<text x="0" y="{height + 11}" font-size="9">{edges[0]:.2f}</text>'
        f'<text x="{width}" y="{height + 11}" font-size="9" text-anchor="end">{edges[-1]:.2f}</text>'
    )
    return f"""
<div class="facelib-evidence" data-same-at-least="{evidence.same_at_least:.4f}"
     data-different-closer="{evidence.different_closer:.4f}" style="max-width:300px;margin-top:8px;line-height:1.3">
  <svg width="{width}" height="{height + 13}" role="img" aria-label="LFW View 1 distances">
    {"".join(bars)}{"".join(marks)}{axis}
  </svg>
  <div><small><span style="color:#2e7d32">■</span> same person
  <span style="color:#c62828">■</span> different people · black: this distance · dashed: threshold</small></div>
  <div class="facelib-evidence-text"><small>{html.escape(evidence.sentence())}</small></div>
</div>"""


def snapshot_patch_html() -> str:
    """A hidden picture that cannot load, whose error handler installs SNAPSHOT_JS."""
    return f'<img class="facelib-snapshot-patch" src="data:," alt="" onerror="{html.escape(SNAPSHOT_JS)}">'


def person_label(person: Person) -> str:
    """A person in the gallery list: the name, their templates, and those made by another
    model (kept, never compared)."""

    def templates(n: int) -> str:
        return f"{n} template{'s' if n != 1 else ''}"

    if not person.foreign:
        return f"{person.name} · {templates(person.templates)}"
    other = f"{templates(person.foreign)} made by another model: not used"
    return (
        f"{person.name} · {templates(person.templates)}, {other}"
        if person.templates
        else f"{person.name} · {other}"
    )


class Dashboard:
    """The page. `controller` holds the state; None when no model could be loaded (the
    page then says why, and what to do)."""

    def __init__(
        self,
        model: str | Path | None = None,
        gallery_folder: Path | None = None,
        live_interval_ms: int = 800,
        camera: bool = True,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
    ):
        _log_to_server_log()
        self.message = w.HTML()
        self.widget = w.VBox([w.HTML(TITLE), self.message])
        self.controller: DashboardController | None = None
        self.recorder = None
        self.live_interval_ms = live_interval_ms
        self._live_thread: threading.Thread | None = None
        self._camera_lock = threading.Lock()  # asking for a frame vs dropping a stale request
        self._resetting_recorder = False
        self.problem = ""  # plain text: why there is no model
        try:
            self.controller = DashboardController.for_model(
                model, gallery_folder, frame_timeout_s=frame_timeout_s
            )
        except FacelibError as exc:
            self.problem = no_model_message(model, exc)
            self._say_html(_html(self.problem), "error")
            return
        except Exception as exc:
            log.exception("dashboard: loading model %s failed", model)
            self.problem = unexpected_error_message(exc)
            self._say(self.problem, "error")
            return
        self._build(camera)

    def summary(self) -> str:
        """One line of plain text: the model served, or why there is none."""
        verifier = self.verifier
        if verifier is None:
            return f"facelib dashboard: no model. {self.problem}"
        return (
            f"facelib dashboard: model {verifier.folder.name} ({verifier.folder}), "
            f"threshold {verifier.threshold:.3f}"
        )

    def _repr_mimebundle_(self, **kwargs):
        """The widget, whose plain-text form (the one shown without a widget front end,
        and written into Voilà's HTML) is the summary."""
        return {**self.widget._repr_mimebundle_(**kwargs), "text/plain": self.summary()}

    @property
    def verifier(self):
        return self.controller.verifier if self.controller else None

    @property
    def gallery(self):
        return self.controller.gallery if self.controller else None

    # ================================================================= widgets

    def _build(self, camera: bool) -> None:
        self.reference_view = w.Image(format="jpeg", layout=w.Layout(width="300px"))
        self.probe_view = w.Image(format="jpeg", layout=w.Layout(width="300px"))
        self.reference_crop = w.Image(format="jpeg", layout=w.Layout(width="112px"))
        self.probe_crop = w.Image(format="jpeg", layout=w.Layout(width="112px"))
        self.result = w.HTML("<i>Capture or upload a reference face, then a probe.</i>")
        self.evidence = w.HTML()
        self.identity = w.HTML()
        self.name = w.Text(placeholder="name to enroll", layout=w.Layout(width="180px"))
        self.people = w.Select(options=[], rows=5, layout=w.Layout(width="320px"))
        self.fpir = w.Dropdown(
            options=FPIR_CHOICES,
            value=self.controller.fpir,
            description="strangers named",
            style={"description_width": "initial"},
            layout=w.Layout(width="200px"),
        )
        self.margin = w.BoundedFloatText(
            value=self.controller.margin,
            min=0.0,
            max=2.0,
            step=0.01,
            description="nearest ahead by",
            style={"description_width": "initial"},
            layout=w.Layout(width="200px"),
        )
        self.fpir.observe(lambda change: self._set_identification(fpir=change["new"]), names="value")
        self.margin.observe(lambda change: self._set_identification(margin=change["new"]), names="value")
        self.calibrate_button = w.Button(description="Calibrate on my gallery", icon="sliders")
        self.calibrate_button.layout.width = "200px"
        self.calibrate_button.on_click(lambda _: self.calibrate_on_gallery())
        self.calibration_note = w.HTML()
        self.live = w.ToggleButton(description="Live", icon="video", tooltip="verify continuously")
        self.live.observe(self._on_live, names="value")

        self.capture_buttons = {}
        for target, label in [
            ("reference", "Capture reference"),
            ("probe", "Capture probe"),
            ("enroll", "Capture & enroll"),
        ]:
            button = w.Button(description=label)
            button.on_click(lambda _, target=target: self.capture(target))
            self.capture_buttons[target] = button
        self.delete_button = w.Button(description="Delete", icon="trash")
        self.delete_button.on_click(lambda _: self.delete(self.people.value))

        self.uploads = {}
        for target in ("reference", "probe", "enroll"):
            upload = w.FileUpload(
                accept="image/*",
                multiple=False,
                description=f"Upload {target}",
                layout=w.Layout(width="170px"),
            )
            upload.observe(lambda change, target=target: self._on_upload(target, change), names="value")
            self.uploads[target] = upload

        camera_box: list[w.Widget] = []
        if camera:
            from ipywebrtc import CameraStream, ImageRecorder

            self.camera = CameraStream.facing_user(audio=False)
            self.camera.add_class("facelib-camera")
            self.recorder = ImageRecorder(stream=self.camera, format="jpeg")
            self.recorder.observe(self._on_recording, names="recording")
            snapshot_patch = w.HTML(snapshot_patch_html(), layout=w.Layout(display="none"))
            camera_box = [self.camera, snapshot_patch]
        self.header = w.HTML()
        self._refresh_header()
        self._refresh_people()
        controls = w.VBox(
            [
                self.capture_buttons["reference"],
                self.capture_buttons["probe"],
                self.live,
                w.HBox([self.name, self.capture_buttons["enroll"]]),
            ]
        )
        # Uploads travel over the kernel's websocket, which drops a message over 10 MiB
        # (tornado's default): the limit stays below that, so it is what refuses a picture.
        limit = w.HTML(f"<small>Pictures up to {dashboard_controller.MAX_UPLOAD_BYTES / 1e6:g} MB.</small>")
        self.widget.children = [
            self.header,
            self.message,
            w.HBox([*camera_box, controls]),
            w.HBox([*self.uploads.values(), limit]),
            w.HBox(
                [
                    w.VBox([w.HTML("<b>Reference</b>"), self.reference_view, self.reference_crop]),
                    w.VBox([w.HTML("<b>Probe</b>"), self.probe_view, self.probe_crop]),
                    w.VBox([self.result, self.evidence, self.identity]),
                ]
            ),
            w.HTML(
                "<b>Gallery</b> (enrolled people; enroll several captures of a person for better "
                "identification)"
            ),
            w.HBox(
                [
                    self.people,
                    w.VBox([self.delete_button, self.fpir, self.margin]),
                    w.VBox([self.calibrate_button, self.calibration_note]),
                ]
            ),
        ]

    def _refresh_header(self) -> None:
        verifier = self.controller.verifier
        until_reload = self.controller.calibration_name != CARD  # for_model starts on the card's
        self.header.value = (
            "<style>.facelib-camera video, .facelib-camera {width: 320px !important; height: auto !important}</style>"
            f"{TITLE}<small>model <b>{html.escape(verifier.folder.name)}</b>, "
            f"detector {verifier.detector.name}, threshold {verifier.threshold:.3f} "
            f"({html.escape(verifier.threshold_source)}), calibration "
            f'<b class="facelib-calibration">{html.escape(self.controller.calibration_name)}</b>'
            + (
                " (on this page until it is reloaded: a new page starts on <b>lfw</b>)"
                if until_reload
                else ""
            )
            + ". Pictures stay in this page unless you enroll them.</small>"
        )

    def _say(self, text: str, kind: str = "info") -> None:
        self._say_html(html.escape(text), kind)

    def _say_html(self, text: str, kind: str = "info") -> None:
        colour = {"error": "#b00020", "info": "#333"}[kind]
        self.message.value = (
            f'<div class="facelib-message" style="color:{colour}">{text}</div>' if text else ""
        )

    def show(self, outcome: Outcome) -> None:
        """Put what the controller returned into the page."""
        picture = outcome.picture
        kind = "error" if outcome.is_error else "info"
        if outcome.target == "enroll" and picture is not None and quality_html(picture.quality):
            # the reasons and a better capture, under the message, as a list
            self._say_html(html.escape(outcome.message) + quality_html(picture.quality), kind)
        else:
            self._say(outcome.message, kind)
        if picture is not None and outcome.target == "reference":
            self.reference_view.value, self.reference_crop.value = picture.picture_jpeg, picture.crop_jpeg
        if picture is not None and outcome.target in PROBE_TARGETS:
            self.probe_view.value, self.probe_crop.value = picture.picture_jpeg, picture.crop_jpeg
        if not outcome.is_error and outcome.target in PROBE_TARGETS:
            self._show_identity(outcome)
        if outcome.verdict is not None:
            self.result.value = verdict_html(outcome.verdict, self.controller.verdicts)
            self.evidence.value = evidence_html(outcome.evidence, outcome.verdict.threshold)
        if outcome.gallery_changed or outcome.calibration_changed:
            self._refresh_people()  # and the calibration note: a saved one is now replaced
        if outcome.calibration_changed:
            self._refresh_header()

    def _show_identity(self, outcome: Outcome) -> None:
        identity = outcome.identity
        if outcome.identity_problem:
            self.identity.value = f'<small style="color:#b00020">{_html(outcome.identity_problem)}</small>'
        elif identity is None:
            others = sum(1 for person in self.controller.people() if not person.templates)
            note = f" ({others} enrolled with another model, not comparable)" if others else ""
            self.identity.value = f"<small>Gallery empty{note}: enroll people to identify probes.</small>"
        else:
            self.identity.value = decision_html(identity, self.controller.calibration_name)

    def _refresh_people(self) -> None:
        self.people.options = [(person_label(person), person.name) for person in self.controller.people()]
        ready, note = self.controller.gallery_calibration_readiness()
        self.calibrate_button.disabled = not ready
        self.calibration_note.value = (
            f'<div style="max-width:260px;line-height:1.3"><small class="facelib-calibration-note">'
            f"{html.escape(note)}</small></div>"
        )

    @_reporting_errors
    def _set_identification(self, fpir: float | None = None, margin: float | None = None) -> None:
        self.show(self.controller.set_identification(fpir, margin))

    @_reporting_errors
    def calibrate_on_gallery(self) -> None:
        self._say("Calibrating on your gallery…")
        self.show(self.controller.calibrate_on_gallery())

    # ================================================================= pictures

    @_reporting_errors
    def _on_upload(self, target: str, change) -> None:
        """A file from an upload button, for reference, probe or enroll (with the name
        typed in)."""
        files = change["new"]
        if not files:
            return
        upload = files[0]
        try:
            outcome = self.controller.handle_upload(
                target, upload.get("name", "upload"), upload["content"], self.name.value
            )
        finally:
            self.uploads[target].value = ()  # so the same file can be uploaded again
        self.show(outcome)

    @_reporting_errors
    def delete(self, name: str | None) -> None:
        self.show(self.controller.delete(name))

    # ================================================================= camera

    @_reporting_errors
    def capture(self, target: str) -> None:
        """Ask the browser for a frame; it arrives in `_on_recording`."""
        if self.recorder is None:
            self._say("No camera here: upload a picture instead.", "error")
            return
        with self._camera_lock:
            refusal = self.controller.ask_for_frame(target, self.name.value)
            if refusal is not None:
                self.show(refusal)
                return
            self.recorder.recording = True
        # Nothing else wakes up if the frame never comes (live mode checks by itself).
        timer = threading.Timer(self.controller.frame_timeout_s + 0.1, self._drop_stale_request)
        timer.daemon = True
        timer.start()

    @_reporting_errors
    def _on_recording(self, change) -> None:
        if self._resetting_recorder or not (change["old"] and not change["new"]):
            return
        outcome = self.controller.frame_arrived(bytes(self.recorder.image.value))
        if outcome is not None:  # None: a late frame whose request had timed out
            self.show(outcome)

    @_reporting_errors
    def _drop_stale_request(self) -> None:
        with self._camera_lock:
            self._drop_stale_request_locked()

    def _drop_stale_request_locked(self) -> None:
        stale = self.controller.drop_stale_request()
        if stale is None:
            return
        self.show(stale)
        # The browser never answered, so `recording` is still True: turn it off, or
        # the next request (True again) would be no change and never reach the browser.
        self._resetting_recorder = True
        try:
            self.recorder.recording = False
        finally:
            self._resetting_recorder = False

    # ================================================================= live mode

    @_reporting_errors
    def _on_live(self, change) -> None:
        if not change["new"]:
            return
        if self.recorder is None:
            self._say("No camera here: live mode needs one.", "error")
            self.live.value = False
            return
        if self._live_thread is None or not self._live_thread.is_alive():
            self._live_thread = threading.Thread(target=self._live_loop, daemon=True)
            self._live_thread.start()

    def _live_loop(self) -> None:
        while self.live.value:
            try:
                self.live_tick()
            except Exception as exc:  # a dead thread would leave the button on, doing nothing
                log.exception("dashboard: live mode failed")
                self._say(f"Live mode stopped. {unexpected_error_message(exc)}", "error")
                self.live.value = False
                return
            time.sleep(self.live_interval_ms / 1000)

    def live_tick(self) -> bool:
        """One beat of live mode: drop a request the browser never answered, then ask
        for a frame unless one is still awaited or being worked on. Returns whether it
        asked."""
        with self._camera_lock:
            self._drop_stale_request_locked()
            if not self.controller.ask_for_live_frame():
                return False
            self.recorder.recording = True
            return True
