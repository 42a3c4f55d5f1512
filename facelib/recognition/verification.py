"""The public face of facelib: are two pictures the same person?

    import facelib
    result = facelib.verify("a.jpg", "b.jpg")          # newest model under models/
    result.same_person, result.distance, result.threshold
    result.confidence                                  # P(same person), or None (confidence_note)

    verifier = facelib.FaceVerifier("models/cpu-batch_hard-112")   # load once
    verifier.verify(img1, img2)                         # paths, bytes, arrays, PIL images
    verifier.embed([img1, img2, img3])                  # (3, 128), batched

Each picture goes through the crop policy training data went through
(`crop.crop_picture` with the model card's crop settings: the same detector and
smallest face, the padded retry, the largest, most central face with the count
reported, the same margin, alignment and no-face fallback; its light measured and, out
of LFW's, corrected; then the policy's equalising where the card has it:
`quality.prepare_face`), then the same centre region, then the embedding. The threshold
is the model's calibrated one (`facelib evaluate` on LFW View 1), else the one its validation chose,
or a named calibration made on your own pictures (`facelib calibrate`, then
`FaceVerifier(calibration="NAME")`).

The model runs through one `tf.function` per loaded verifier (crop scaling included),
traced once: an eager Keras call costs several times more on CPU (docs/benchmarks.md,
"Verification latency").
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from facelib.core import machine
from facelib.core.decision import embedding_distance, same_person
from facelib.core.errors import FacelibError, NoFaceError
from facelib.data.crop import CropSettings
from facelib.data.images import DEFAULT_MAX_PIXELS, load_image
from facelib.data.quality import QualityReport, face_quality, prepare_face
from facelib.recognition.calibration import (
    CARD,
    Calibration,
    card_confidence_note,
    card_remedy,
    resolve_calibration,
)
from facelib.recognition.card import ModelCard
from facelib.recognition.confidence import ConfidenceMap
from facelib.recognition.identification import DEFAULT_FPIR, ImpostorCurve, OpenSetRule

# What embeds the faces unless told otherwise: "auto" runs the model folder's float32 ONNX
# export on onnxruntime where `facelib export` made one, else Keras (model.keras). Same
# embeddings, faster on the Xeon with AVX512_BF16 it was measured on, not yet measured on an
# AVX2-only CPU (bench/export_runtimes.py, docs/benchmarks.md "Export runtimes"). The
# thresholds are the model folder's card's either way.
DEFAULT_RUNTIME = "auto"


@dataclass
class FaceFound:
    """Where the face of one picture was taken from."""

    # x, y, w, h; None when no face was found and the fallback crop was used. A face
    # found on the padded copy of a tight crop may run past the picture's edges.
    box: tuple[int, int, int, int] | None
    faces_found: int
    whole_image: bool = False
    image_size: tuple[int, int] = (0, 0)  # width, height
    # Where the face is outside the conditions the threshold was measured in ("dark",
    # "lit from one side", "small face (32 px)", "turned"): facelib.data.quality.
    conditions: list[str] = field(default_factory=list)
    light_corrected: bool = False  # brought to mid-grey before embedding (quality.light_corrected)
    # Size, sharpness, exposure and pose, each pass / warn / fail with a reason
    # (quality.face_quality, of the crop before light correction): what was judged.
    quality: QualityReport | None = None

    def to_dict(self) -> dict:
        return {**asdict(self), "quality": self.quality.to_dict() if self.quality else None}


@dataclass
class VerifyResult:
    distance: float
    threshold: float
    same_person: bool
    faces: list[FaceFound]
    detector: str
    model: str
    threshold_source: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    runtime: str = "keras"  # what embedded the faces: keras, onnxruntime or tflite (an export)
    # P(same person) at this distance, by the confidence mapping of the calibration that
    # set the threshold (`calibration`); None when it has none, and `confidence_note` says why.
    confidence: float | None = None
    calibration: str = CARD
    confidence_source: str = ""
    confidence_note: str = ""

    @property
    def caveats(self) -> list[str]:
        """Each picture outside the threshold's conditions, e.g. "image 2: dark, turned"."""
        return [
            f"image {i}: {', '.join(face.conditions)}"
            for i, face in enumerate(self.faces, 1)
            if face.conditions
        ]

    @property
    def quality_warnings(self) -> list[str]:
        """Each picture whose face is below the enrolment quality, e.g. "image 1: fail: …"."""
        return [
            f"image {i}: {face.quality.summary()}"
            for i, face in enumerate(self.faces, 1)
            if face.quality is not None and face.quality.status != "pass"
        ]

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "faces": [f.to_dict() for f in self.faces],
            "caveats": self.caveats,
            "quality_warnings": self.quality_warnings,
        }


class FaceVerifier:
    """Load a model folder once; embed and verify many pictures.

    `no_face`: "error" (raise NoFaceError) or "whole" (embed the picture's centre
    crop, the fallback training used: its central `fallback_fraction`).
    `detector`: overrides the card's detector (the rest of its crop policy is kept).
    `bgr`: NumPy inputs are BGR (OpenCV's order) rather than RGB.
    `correct_light`: a face that is dark, washed out or lit from one side is brought to
    mid-grey by a gamma curve per half of the face before it is embedded (quality.light_corrected).
    `tta`: each face embedded as the mean with its mirror image (flip test-time
    augmentation; two embeddings a face), judged by the threshold `facelib evaluate
    --tta` set for it. Off by default: the card's other thresholds and curves are set
    on plain embeddings.
    `runtime`: "keras", or "onnxruntime" / "tflite" to run the model's float32 export
    (`facelib export RUN --format onnx|tflite`), or "auto" (DEFAULT_RUNTIME, the default):
    onnxruntime where that export exists, else keras. `model` may also be an export
    folder itself: it runs on its format's runtime, with the card copied into it."""

    def __init__(
        self,
        model: str | Path | None = None,
        detector: str | None = None,
        threshold: float | None = None,
        no_face: str = "error",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        bgr: bool = False,
        calibration: str | None = None,
        correct_light: bool = True,
        tta: bool = False,
        runtime: str | None = None,
    ):
        # Before facelib.recognition.model, which imports Keras and so TensorFlow: verify's math,
        # unless a role was named on purpose.
        machine.configure_math("verify", explicit=False)
        from facelib.recognition.model import newest_model_folder, resolve_model_folder

        self.folder = resolve_model_folder(model) if model else newest_model_folder()
        self.runtime, self.model, self.card, self._exported = self._load(runtime)
        # The crop policy the training crops were made with; cards older than a setting
        # get its default.
        settings = CropSettings.from_dict(self.card.crop_settings)
        self.crop_settings = replace(settings, detector=detector) if detector else settings
        self.detector = self.crop_settings.make_detector()
        self.input_size = int(self.card.input_size)
        if tta and self.card.head != "l2":
            raise FacelibError(
                f"{self.folder.name}: flip test-time augmentation needs an L2-normalised embedding "
                f"(this model's head is {self.card.head!r})"
            )
        self.tta = tta
        try:
            self.use_calibration(resolve_calibration(self.folder, self.card, calibration, tta))
        except FacelibError:
            if threshold is None or calibration not in (None, CARD):
                raise
            # A card without a threshold of its own: the given one, beside the card's curve.
            curve = None if tta or not self.card.open_set else ImpostorCurve.from_dict(self.card.open_set)
            # The card's confidence mapping too: it maps distances, whatever the threshold.
            confidence = (
                None if tta or not self.card.confidence else ConfidenceMap.from_dict(self.card.confidence)
            )
            self.calibration = Calibration(
                CARD,
                float(threshold),
                "given",
                curve,
                card_remedy(self.folder),
                tta,
                confidence,
                "" if confidence else card_confidence_note(self.card, self.folder),
            )
        if threshold is not None:
            self.threshold, self.threshold_source = float(threshold), "given"
        if no_face not in ("error", "whole"):
            raise FacelibError(f"no_face must be 'error' or 'whole', not {no_face!r}")
        self.no_face, self.max_pixels, self.bgr = no_face, max_pixels, bgr
        self.correct_light = correct_light
        self._compiled = self._compile()

    def _load(self, runtime: str | None):
        """(runtime, Keras model or None, card, exported model or None). An export folder
        runs on the runtime of its format; a model folder on `runtime` (default
        DEFAULT_RUNTIME), an exported runtime from the float32 export `facelib export`
        put in it."""
        from facelib.recognition import export
        from facelib.recognition.model import load_model_folder

        if runtime is not None and runtime not in export.RUNTIMES:
            raise FacelibError(f"runtime must be one of {', '.join(export.RUNTIMES)}, not {runtime!r}")
        if export.is_export_folder(self.folder):
            embedder, card, info = export.load_export(self.folder)
            if info.runtime is None or runtime not in (None, "auto", info.runtime):
                raise FacelibError(
                    f"{self.folder} is a {info.format} export: "
                    + (
                        f"it runs on the {info.runtime} runtime, not {runtime}"
                        if info.runtime
                        else f"FaceVerifier runs {', '.join(export.RUNTIME_FORMAT.values())} exports "
                        "(a SavedModel is for TensorFlow's own tools); give the model folder it came from"
                    )
                )
            return info.runtime, None, card, embedder
        card = ModelCard.load(self.folder)
        runtime = runtime or DEFAULT_RUNTIME
        if runtime == "auto":
            runtime = export.auto_runtime(self.folder, card)
        if runtime == "keras":
            return runtime, *load_model_folder(self.folder), None
        # The model folder's card, not the export's copy: `facelib evaluate` may have
        # calibrated the model since it was exported.
        embedder, _, _ = export.load_export(export.find_export(self.folder, runtime, card))
        return runtime, None, card, embedder

    def _compile(self):
        """The model with `eval_transform` in front, as one graph (see the module note);
        for an exported model, that graph prepares the batch and the runtime embeds it."""
        import tensorflow as tf

        from facelib.data.pipeline import eval_transform

        model, size, tta = self.model, self.input_size, self.tta
        if self._exported is not None:
            return self._exported_embed(tf, eval_transform)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def embed(crops):
            crops = eval_transform(crops, size)
            if not tta:
                return model(crops, training=False)
            # Each crop and its mirror image in one batch; their mean, re-normalised
            # (as evaluate.mean_embedding).
            both = model(tf.concat([crops, tf.image.flip_left_right(crops)], axis=0), training=False)
            halves = tf.split(both, 2, axis=0)
            return tf.math.l2_normalize(halves[0] + halves[1], axis=1)

        return embed

    def _exported_embed(self, tf, eval_transform):
        size, tta, run = self.input_size, self.tta, self._exported

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
        def prepare(crops):
            crops = eval_transform(crops, size)
            return tf.concat([crops, tf.image.flip_left_right(crops)], axis=0) if tta else crops

        def embed(crops):
            embeddings = run(prepare(crops).numpy())
            if tta:  # as the Keras graph: the mean of each crop's and its mirror's, re-normalised
                halves = np.split(embeddings, 2)
                mean = halves[0] + halves[1]
                embeddings = mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
            return tf.constant(embeddings)

        return embed

    # ------------------------------------------------------------- open set

    def open_set_rule(self, fpir: float | None = None, margin: float = 0.0, mode: str = "min"):
        """The identification rule of this verifier's calibration (its impostor curve)."""
        if self.tta:
            raise FacelibError("the open-set curves are made of plain embeddings: identify without tta")
        curve = self.calibration.open_set_curve()
        return OpenSetRule(curve, fpir=fpir or DEFAULT_FPIR, margin=margin, mode=mode)

    def use_calibration(self, calibration: Calibration) -> None:
        """Switch to `calibration` without loading the model again: its threshold for
        verify, its impostor curve for identification."""
        if self.tta and not calibration.tta:
            raise FacelibError(
                f"calibration {calibration.name!r} was made of plain embeddings: it does not fit "
                "flip test-time augmentation (tta)"
            )
        self.calibration = calibration
        self.threshold = calibration.threshold
        self.threshold_source = (
            calibration.threshold_source
            if calibration.name == CARD
            else f"calibration {calibration.name!r} ({calibration.threshold_source})"
        )

    @property
    def calibration_name(self) -> str:
        return self.calibration.name

    # ------------------------------------------------------------------ faces

    def face_crop(self, image, label: str = "image") -> tuple[np.ndarray, FaceFound]:
        """The stored-size crop of the picture's face, as training saw them."""
        try:
            rgb = load_image(image, bgr=self.bgr, max_pixels=self.max_pixels)
        except FacelibError as exc:
            raise type(exc)(f"{label}: {exc}") from exc
        height, width = rgb.shape[:2]
        face = prepare_face(rgb, self.detector, self.crop_settings, self.correct_light)
        info, corrected, changed = face.info, face.crop, face.was_light_corrected
        conditions = face.conditions.warnings()
        quality = face_quality(face.measured, info.face)
        if info.face is None:
            if self.no_face == "error":
                raise NoFaceError(
                    f"{label}: no face found (try a frontal, well-lit picture, or allow the picture's centre: no_face='whole')"
                )
            return corrected, FaceFound(None, 0, True, (width, height), conditions, changed, quality)
        box = tuple(int(v) for v in info.face.box)
        return corrected, FaceFound(
            box, info.faces_found, False, (width, height), conditions, changed, quality
        )

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Embeddings of stored-size crops (all the same size, as `face_crop` makes them)."""
        batch = np.stack([np.asarray(c, np.float32) for c in crops])
        return self._compiled(batch).numpy()

    def embed(self, images: list) -> np.ndarray:
        """Embeddings (N, D) of the face in each picture."""
        crops = [self.face_crop(image, f"image {i + 1}")[0] for i, image in enumerate(images)]
        return self.embed_crops(crops)

    def verify(self, image1, image2) -> VerifyResult:
        start = time.perf_counter()
        crop1, face1 = self.face_crop(image1, "image 1")
        crop2, face2 = self.face_crop(image2, "image 2")
        detected = time.perf_counter()
        e = self.embed_crops([crop1, crop2])
        done = time.perf_counter()
        distance = embedding_distance(e[0], e[1])
        calibration = self.calibration
        return VerifyResult(
            distance=distance,
            threshold=self.threshold,
            same_person=same_person(distance, self.threshold),
            faces=[face1, face2],
            detector=self.detector.name,
            model=self.folder.name,
            threshold_source=self.threshold_source,
            runtime=self.runtime,
            timings_ms={
                "read_detect_crop": round(1000 * (detected - start), 1),
                "embed": round(1000 * (done - detected), 1),
                "total": round(1000 * (done - start), 1),
            },
            confidence=calibration.confidence_of(distance),
            calibration=calibration.name,
            confidence_source=calibration.confidence_source,
            confidence_note=calibration.confidence_note,
        )


_verifiers: dict[str, FaceVerifier] = {}


def verify(image1, image2, model: str | Path | None = None, **options) -> VerifyResult:
    """One-off verification; the verifier of each model is loaded once and kept."""
    key = f"{model}|{sorted(options.items())}"
    if key not in _verifiers:
        _verifiers[key] = FaceVerifier(model, **options)
    return _verifiers[key].verify(image1, image2)
