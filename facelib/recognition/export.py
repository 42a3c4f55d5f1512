"""A trained model outside Keras: SavedModel, TFLite (LiteRT) or ONNX, float32 or int8.

    result = export_model("my-run", "onnx")                 # models/my-run/export/onnx/
    result = export_model("my-run", "tflite", int8=True)    # models/my-run/export/tflite-int8/
    embedder = load_embedder(result.folder)                # runs it: onnxruntime / LiteRT
    embedder(batch)                                         # (N, S, S, 3) RGB 0–255 → (N, D)

An export folder is self-contained: the model file (model.onnx, model.tflite or
saved_model/), a copy of the model card (input size, crop policy, thresholds, open-set
curve) and export.json (format, precision, input, the check made when it was written).
Its input is what model.keras takes: N × S × S × 3 float32 RGB 0–255, S the card's
input_size, made from a face crop of the card's crop policy by `eval_transform` (its
centre 90%, resized with antialiasing); the scaling to ResNet's input is inside.

Every export is float32 whatever precision training ran in (a bfloat16 run's layers are
rebuilt in float32), and checked against Keras on real crops before the folder
appears: float32 must agree within PARITY_TOLERANCE. int8 is post-training
quantisation calibrated on crops of the training side's people (validation people
first; never test people); its agreement is recorded, not required (bench/export_runtimes.py measures
what it costs on LFW View 1).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from facelib.core import config
from facelib.core.errors import FacelibError
from facelib.core.files import write_json_atomic
from facelib.recognition.card import ModelCard, ModelError

FORMATS = ("savedmodel", "tflite", "onnx")
INT8_FORMATS = ("tflite", "onnx")
# The runtimes FaceVerifier can embed with, and the export format each runs. "auto": the
# first of AUTO_RUNTIMES whose float32 export the model folder holds, else keras.
RUNTIMES = ("auto", "keras", "onnxruntime", "tflite")
# onnxruntime ran `verify` faster than Keras, with the same embeddings (within 1e-6), and
# LiteRT was between them (bench/export_runtimes.py, docs/benchmarks.md "Export runtimes").
AUTO_RUNTIMES = ("onnxruntime",)
RUNTIME_FORMAT = {"onnxruntime": "onnx", "tflite": "tflite"}
MODEL_FILES = {"savedmodel": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
EXPORT_FILE = "export.json"
EXPORT_FORMAT = "facelib-export/1"
PARITY_TOLERANCE = 1e-4  # largest |exported - Keras| allowed in a float32 embedding
CHECK_CROPS = 32  # crops the export is checked on
CALIBRATION_CROPS = 128  # crops int8 calibration sees


class ExportError(ModelError):
    """A model cannot be exported as asked, or an export folder cannot be used."""


@dataclass
class ExportInfo:
    """export.json: what the folder holds and how it was checked."""

    format: str
    int8: bool
    model_file: str
    source: str  # the model folder exported
    input_size: int
    embedding_dim: int
    converter: str
    tensorflow: str
    keras: str
    check_crops: int  # real crops the export was compared with Keras on (0: none found)
    max_abs_diff: float | None  # largest |exported - Keras| over their embeddings
    min_cosine: float | None  # lowest cosine similarity of an exported and a Keras embedding
    seconds: float
    created: str

    def to_dict(self) -> dict:
        return {"format_version": EXPORT_FORMAT, **asdict(self)}

    @classmethod
    def load(cls, folder: Path) -> ExportInfo:
        import json

        path = Path(folder) / EXPORT_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ExportError(f"{folder} is not a facelib export ({path}: {exc})") from exc
        if not isinstance(data, dict) or data.get("format_version") != EXPORT_FORMAT:
            raise ExportError(f"{path} is not a facelib export description")
        data.pop("format_version")
        return cls(**data)

    @property
    def runtime(self) -> str | None:
        """The FaceVerifier runtime that runs this export (None: SavedModel, for TensorFlow tools)."""
        return next((r for r, f in RUNTIME_FORMAT.items() if f == self.format), None)


def is_export_folder(folder: Path) -> bool:
    return (Path(folder) / EXPORT_FILE).is_file()


def export_name(fmt: str, int8: bool = False) -> str:
    return f"{fmt}-int8" if int8 else fmt


def default_export_folder(model_folder: Path, fmt: str, int8: bool = False) -> Path:
    return Path(model_folder) / "export" / export_name(fmt, int8)


# --------------------------------------------------------------------- converters


def _converter_modules(fmt: str) -> list[str]:
    # TFLite: TensorFlow converts, and runs it where ai_edge_litert is missing (TFLiteEmbedder).
    return {"savedmodel": [], "tflite": [], "onnx": ["tf2onnx", "onnx", "onnxruntime"]}[fmt]


def missing_packages(fmt: str) -> list[str]:
    """The Python packages a format's converter or runtime needs that are not installed."""
    import importlib.util

    return [m for m in _converter_modules(fmt) if importlib.util.find_spec(m) is None]


def available_formats() -> list[str]:
    """The formats whose converter and runtime are installed."""
    return [f for f in FORMATS if not missing_packages(f)]


def _check_request(fmt: str, int8: bool) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if int8 and fmt not in INT8_FORMATS:
        raise ExportError(f"int8 quantisation is offered for {' and '.join(INT8_FORMATS)}, not {fmt}")
    missing = missing_packages(fmt)
    if missing:
        others = [f for f in available_formats() if f != fmt]
        raise ExportError(
            f"the {fmt} export needs {', '.join(missing)}, not installed: pip install 'facelib[export]'"
            + (f"; formats that work here: {', '.join(others)}" if others else "")
        )


@contextlib.contextmanager
def _float32_policy() -> Iterator[None]:
    """Keras's global policy float32 while the model is loaded and converted: an export
    computes in float32 whatever the process (a bfloat16 training) set."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def float32_model(model, card: ModelCard):
    """The model itself when every layer computes in float32, else the same network rebuilt
    in float32 with its weights (a model saved with a mixed policy keeps it per layer)."""
    if all(layer.compute_dtype == "float32" for layer in _layers(model)):
        return model
    from facelib.recognition.model import build_embedding_model

    full = build_embedding_model(card.input_size, card.embedding_dim, None, card.head)
    full.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return full


def _layers(model) -> Iterator:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # the ResNet50 backbone, a model inside the model
            yield from _layers(layer)


def _representative(batch: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def crops():
        for crop in batch:
            yield [crop[None]]

    return crops


def _write_savedmodel(model, path: Path, int8: bool, calibration: np.ndarray) -> str:
    model.export(str(path), format="tf_saved_model", verbose=False)
    return "keras.Model.export(tf_saved_model)"


def _write_tflite(model, path: Path, int8: bool, calibration: np.ndarray) -> str:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    how = "tf.lite.TFLiteConverter"
    if int8:
        # Weights and activations in int8, input and output kept float32 (callers pass
        # the same RGB crops); an op without an int8 kernel stays float.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        how += f", int8 post-training quantisation calibrated on {len(calibration)} training-side crops"
    with contextlib.redirect_stdout(io.StringIO()):  # the converter's "Saved artifact at <tmp>"
        path.write_bytes(converter.convert())
    return how


def _write_onnx(model, path: Path, int8: bool, calibration: np.ndarray) -> str:
    import tf2onnx

    how = f"keras.Model.export(onnx) (tf2onnx {tf2onnx.__version__})"
    if not int8:
        model.export(str(path), format="onnx", verbose=False)
        return how
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path, ready = path.with_name("float.onnx"), path.with_name("prepared.onnx")
    model.export(str(float_path), format="onnx", verbose=False)
    # Shapes and folded ops, as quantize_static expects (ONNX shape inference: no sympy needed).
    quant_pre_process(str(float_path), str(ready), skip_symbolic_shape=True)
    name = _onnx_input_name(ready)

    class Crops(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration[i : i + 16] for i in range(0, len(calibration), 16))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {name: batch}

    # QDQ with per-channel weights: what onnxruntime recommends for CNNs on CPU.
    quantize_static(
        str(ready),
        str(path),
        Crops(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    float_path.unlink()
    ready.unlink()
    return how + f", onnxruntime quantize_static (QDQ, per-channel) on {len(calibration)} training-side crops"


def _onnx_input_name(path: Path) -> str:
    import onnx

    return onnx.load(str(path), load_external_data=False).graph.input[0].name


WRITERS = {"savedmodel": _write_savedmodel, "tflite": _write_tflite, "onnx": _write_onnx}


# ------------------------------------------------------------------------ crops


def calibration_crops(card: ModelCard, n: int) -> np.ndarray:
    """Up to `n` crops of the training side's people, as the model takes them (through
    `eval_transform`): the validation people's first, then, where they have fewer, the
    training people's; never a test person's. Empty when the crops are not here."""
    from facelib.data.pipeline import FaceSet, eval_dataset  # TensorFlow
    from facelib.data.preprocess import read_manifest

    empty = np.zeros((0, card.input_size, card.input_size, 3), np.float32)
    manifests: dict[str, list[dict]] = {}

    def crops_of(sources) -> list[str]:
        """The pictures of these (crop folder, people): each source's people in its own
        crop folder (a model trained on folders of people has them there, not in LFW's)."""
        paths = []
        for crops, people in sources:
            root = config.processed_dir() / crops
            if crops not in manifests:
                try:
                    manifests[crops] = read_manifest(root)
                except FacelibError:
                    manifests[crops] = []
            paths += FaceSet.from_records(manifests[crops], root, sorted(set(people))).paths
        return paths

    paths: list[str] = []
    for validation in (True, False):
        found = crops_of(card.source_people(validation))
        wanted = n - len(paths)
        if len(found) > wanted:  # evenly spaced: every person's pictures, not the first few people's
            found = [found[i] for i in np.linspace(0, len(found) - 1, wanted).astype(int)]
        paths += found
        if len(paths) >= n:
            break
    if not paths:
        return empty
    return np.concatenate([b.numpy() for b in eval_dataset(paths, card.input_size, 64)]).astype(np.float32)


# ------------------------------------------------------------------------ export


@dataclass
class ExportResult:
    folder: Path
    info: ExportInfo


def export_model(
    model: str | Path,
    fmt: str,
    int8: bool = False,
    out: str | Path | None = None,
    crops: np.ndarray | None = None,
) -> ExportResult:
    """Export `model` (a model folder or run name) as `fmt` into `out` (default
    `<model folder>/export/<fmt>[-int8]`), replacing an earlier export there. `crops`
    (N × S × S × 3, as the model takes them) replace the training-side crops the export
    is checked on and int8 is calibrated on."""
    import keras
    import tensorflow as tf

    from facelib.recognition.model import load_model_folder, resolve_model_folder

    _check_request(fmt, int8)
    source = resolve_model_folder(model)
    if is_export_folder(source):
        raise ExportError(f"{source} is an export already: export the model folder it came from")
    out = Path(out) if out else default_export_folder(source, fmt, int8)
    if out.exists() and not (out.is_dir() and (is_export_folder(out) or not any(out.iterdir()))):
        raise ExportError(f"{out} exists and is not an earlier export: choose another --out")
    started = time.perf_counter()
    with _float32_policy():
        keras_model, card = load_model_folder(source)
        keras_model = float32_model(keras_model, card)
        # Keras's ONNX export refuses a model never called (a freshly loaded one is not).
        keras_model(np.zeros((1, card.input_size, card.input_size, 3), np.float32), training=False)
        if crops is None:
            crops = calibration_crops(card, max(CHECK_CROPS, CALIBRATION_CROPS if int8 else 0))
        crops = np.asarray(crops, np.float32)
        if int8 and not len(crops):
            raise ExportError(
                f"int8 calibration needs the training side's crops, and there are none in "
                f"{', '.join(c for c, _ in card.source_people()) or 'no crop folder'} under "
                f"{config.processed_dir()}: run `facelib preprocess` (or train on the folders) as for training"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            try:
                how = WRITERS[fmt](keras_model, tmp / MODEL_FILES[fmt], int8, crops[:CALIBRATION_CROPS])
            except Exception as exc:
                others = [f for f in available_formats() if f != fmt]
                raise ExportError(
                    f"the {fmt} converter failed with TensorFlow {tf.__version__} / Keras {keras.__version__}: "
                    f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                    + (f"; formats that work here: {', '.join(others)}" if others else "")
                ) from exc
            check = crops[:CHECK_CROPS]
            diff = cosine = None
            if len(check):
                expected = keras_model.predict(check, verbose=0)
                got = _embedder(fmt, tmp / MODEL_FILES[fmt])(check)
                diff = float(np.abs(got - expected).max())
                cosine = float(np.min(np.sum(got * expected, 1) / _norms(got, expected)))
                if not int8 and diff > PARITY_TOLERANCE:
                    raise ExportError(
                        f"the {fmt} export differs from the Keras model by {diff:.2e} "
                        f"(more than {PARITY_TOLERANCE:g}) on {len(check)} training-side crops; not written"
                    )
            info = ExportInfo(
                format=fmt,
                int8=int8,
                model_file=MODEL_FILES[fmt],
                source=str(source.resolve()),
                input_size=card.input_size,
                embedding_dim=card.embedding_dim,
                converter=how,
                tensorflow=tf.__version__,
                keras=keras.__version__,
                check_crops=len(check),
                max_abs_diff=diff,
                min_cosine=cosine,
                seconds=round(time.perf_counter() - started, 1),
                created=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            card.save(tmp)  # the card travels with the model: thresholds, crop policy, input size
            write_json_atomic(tmp / EXPORT_FILE, info.to_dict())
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, info)


def _norms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


# ------------------------------------------------------------------------ running


def threads() -> int:
    return os.cpu_count() or 1


class OnnxEmbedder:
    def __init__(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads()
        options.log_severity_level = 3  # errors only: the quantised graph's notes are noise here
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(batch, np.float32)})[0]


class TFLiteEmbedder:
    """LiteRT's interpreter (ai_edge_litert), else TensorFlow's deprecated tf.lite one
    (Windows: no LiteRT wheels). The input is resized only when the batch size changes:
    a resize re-plans the graph."""

    def __init__(self, path: Path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter  # noqa: N806
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite's deprecation notice, where LiteRT cannot be installed
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads())
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        if batch.shape[0] != self.batch:
            self.interpreter.resize_tensor_input(self.input, batch.shape)
            self.interpreter.allocate_tensors()
            self.batch = batch.shape[0]
        self.interpreter.set_tensor(self.input, batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


class SavedModelEmbedder:
    def __init__(self, path: Path):
        import tensorflow as tf

        self.serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        (output,) = self.serve(tf.constant(batch, tf.float32)).values()
        return output.numpy()


def _embedder(fmt: str, path: Path):
    return {"onnx": OnnxEmbedder, "tflite": TFLiteEmbedder, "savedmodel": SavedModelEmbedder}[fmt](path)


def load_export(folder: str | Path) -> tuple[Callable[[np.ndarray], np.ndarray], ModelCard, ExportInfo]:
    """An export folder's model, ready to run (N × S × S × 3 RGB 0–255 → N × D), its card
    and its export.json."""
    folder = Path(folder)
    info = ExportInfo.load(folder)
    card = ModelCard.load(folder)
    missing = missing_packages(info.format)
    if missing:
        raise ExportError(
            f"running the {info.format} export needs {', '.join(missing)}: pip install 'facelib[export]'"
        )
    path = folder / info.model_file
    if not path.exists():
        raise ExportError(f"{folder} is damaged: no {info.model_file}")
    return _embedder(info.format, path), card, info


def find_export(model_folder: Path, runtime: str, card: ModelCard) -> Path:
    """The float32 export of `model_folder` that `runtime` runs (made by `facelib export`),
    of the model `card` describes."""
    if runtime not in RUNTIME_FORMAT:
        raise ExportError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    fmt = RUNTIME_FORMAT[runtime]
    folder = default_export_folder(model_folder, fmt)
    again = f"`facelib export {model_folder.name} --format {fmt}`"
    if not is_export_folder(folder):
        raise ExportError(
            f"{model_folder.name} has no {fmt} export for the {runtime} runtime (make it with {again})"
        )
    exported = ModelCard.load(folder)
    if (exported.name, exported.created) != (card.name, card.created):
        raise ExportError(
            f"{folder} is an export of another model ({exported.name}, {exported.created}): make it again with {again}"
        )
    return folder


def auto_runtime(model_folder: Path, card: ModelCard) -> str:
    """The first of AUTO_RUNTIMES that can run an export of this model here, else keras."""
    for runtime in AUTO_RUNTIMES:
        try:
            find_export(model_folder, runtime, card)
        except ModelError:
            continue
        if not missing_packages(RUNTIME_FORMAT[runtime]):
            return runtime
    return "keras"
