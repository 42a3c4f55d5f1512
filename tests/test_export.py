"""`facelib export`: each format that works here, checked against Keras on real LFW
crops, and FaceVerifier running the exports."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from facelib import FaceVerifier
from facelib.app import cli
from facelib.core.errors import FacelibError
from facelib.recognition import export
from facelib.recognition.card import ModelCard
from facelib.recognition.export import PARITY_TOLERANCE, ExportError, export_model, load_export
from facelib.recognition.model import build_embedding_model, load_model_folder

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def crops(smoke_model, smoke_crops) -> np.ndarray:
    """Real LFW face crops (all the smoke preset's people, not only the validation ones
    the export checked itself on), as the model takes them."""
    from facelib.data.pipeline import eval_dataset

    paths = sorted(str(p) for p in smoke_crops.rglob("*.jpg"))[:64]
    batches = eval_dataset(paths, ModelCard.load(smoke_model).input_size, 32)
    return np.concatenate([b.numpy() for b in batches])


@pytest.fixture(scope="module")
def keras_embeddings(smoke_model, crops) -> np.ndarray:
    model, _ = load_model_folder(smoke_model)
    return model.predict(crops, verbose=0)


@pytest.fixture(scope="module")
def exported_model(smoke_model) -> Path:
    """A copy of the smoke model (model.keras linked, card copied) whose export/ folder
    these tests fill: the session's smoke model keeps none, so that FaceVerifier's
    default runtime stays Keras for the other test files."""
    folder = smoke_model.parent / "export-fixture"
    folder.mkdir()
    (folder / "model.keras").symlink_to(smoke_model / "model.keras")
    ModelCard.load(smoke_model).save(folder)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def exports(exported_model, tmp_path_factory) -> dict:
    """Each float32 format once. onnx and tflite go where FaceVerifier's runtimes look
    (the model folder's export/); the tflite one is made while the global policy is
    mixed bfloat16, as a bfloat16 training leaves it: the export must be float32 anyway."""
    made = {"savedmodel": export_model(exported_model, "savedmodel", out=tmp_path_factory.mktemp("x") / "sm")}
    made["onnx"] = export_model(exported_model, "onnx")
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        made["tflite"] = export_model(exported_model, "tflite")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # put back
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return made


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_each_format_gives_keras_embeddings_within_the_tolerance(fmt, exports, crops, keras_embeddings):
    result = exports[fmt]
    embed, card, info = load_export(result.folder)
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(
        ["card.json", "export.json", export.MODEL_FILES[fmt]]
    )
    assert card.input_size == 48 and card.crop_settings and card.validation_threshold is not None
    assert info.format == fmt and not info.int8 and info.check_crops > 0
    assert info.max_abs_diff <= PARITY_TOLERANCE
    got = embed(crops)
    assert got.dtype == np.float32 and got.shape == keras_embeddings.shape
    assert np.abs(got - keras_embeddings).max() <= PARITY_TOLERANCE


def test_an_export_of_a_bfloat16_model_computes_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = build_embedding_model(32, 8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert half.layers[1].compute_dtype == "bfloat16"
    card = type("Card", (), {"input_size": 32, "embedding_dim": 8, "head": "l2"})()
    full = export.float32_model(half, card)
    assert all(layer.compute_dtype == "float32" for layer in export._layers(full))
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    reference = build_embedding_model(32, 8)  # the same weights, built in float32 from the start
    reference.set_weights(half.get_weights())
    assert np.abs(full.predict(x, verbose=0) - reference.predict(x, verbose=0)).max() <= 1e-6


@pytest.mark.parametrize("fmt", export.INT8_FORMATS)
def test_int8_exports_stay_close_to_keras(fmt, smoke_model, tmp_path, crops, keras_embeddings):
    result = export_model(smoke_model, fmt, int8=True, out=tmp_path / fmt)
    assert result.info.int8
    embed, _, _ = load_export(result.folder)
    got = embed(crops)
    cosine = np.sum(got * keras_embeddings, 1) / np.linalg.norm(got, axis=1)
    assert cosine.min() > 0.9  # near, not equal: 8-bit weights and activations
    assert np.abs(got - keras_embeddings).max() > PARITY_TOLERANCE  # it really is quantised


def test_a_converter_that_fails_is_named_with_its_error_and_the_formats_that_work(
    smoke_model, tmp_path, monkeypatch
):
    def broken(*args):
        raise RuntimeError("op not supported: Foo")

    monkeypatch.setitem(export.WRITERS, "onnx", broken)
    with pytest.raises(ExportError) as caught:
        export_model(smoke_model, "onnx", out=tmp_path / "onnx")
    message = str(caught.value)
    assert "onnx converter failed with TensorFlow" in message and "op not supported: Foo" in message
    assert "formats that work here: savedmodel, tflite" in message
    assert not (tmp_path / "onnx").exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_a_missing_converter_package_is_named_with_the_formats_that_work(monkeypatch):
    monkeypatch.setattr(export, "missing_packages", lambda fmt: ["tf2onnx"] if fmt == "onnx" else [])
    with pytest.raises(ExportError, match=r"needs tf2onnx, not installed.*work here: savedmodel, tflite"):
        export_model("any", "onnx")


def test_export_on_the_command_line(smoke_model, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["export", str(smoke_model), "--format", "tflite", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"tflite export of {smoke_model} → {out}" in printed and "checked against Keras" in printed
    assert json.loads((out / "export.json").read_text())["format"] == "tflite"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "no-such-run", "--format", "onnx"], "model 'no-such-run' does not exist"),
        (["export", "smoke-fixture", "--format", "savedmodel", "--int8"], "int8 quantisation is offered for"),
    ],
)
def test_export_errors_are_one_clear_line(smoke_model, argv, message, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_an_unknown_format_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["export", "smoke-fixture", "--format", "coreml"])
    assert stopped.value.code == 2
    assert "invalid choice: 'coreml' (choose from 'savedmodel', 'tflite', 'onnx')" in capsys.readouterr().err


def test_export_refuses_to_overwrite_a_folder_that_is_not_an_export(smoke_model, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an earlier export"):
        export_model(smoke_model, "savedmodel", out=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ FaceVerifier


def _pairs(lfw_root):
    from facelib.data import datasets

    return [(p.left.path(lfw_root), p.right.path(lfw_root)) for p in datasets.view1_pairs("test")[:10]]


@pytest.mark.parametrize("runtime", ["onnxruntime", "tflite"])
def test_faceverifier_on_an_export_gives_the_same_verdicts(runtime, exported_model, exports, lfw_root):
    keras_verifier = FaceVerifier(exported_model, no_face="whole", runtime="keras")
    exported = FaceVerifier(exported_model, no_face="whole", runtime=runtime)
    folder = FaceVerifier(exports[export.RUNTIME_FORMAT[runtime]].folder, no_face="whole")
    assert exported.model is None and exported.runtime == folder.runtime == runtime
    assert exported.threshold == keras_verifier.threshold == folder.threshold
    for a, b in _pairs(lfw_root):
        expected = keras_verifier.verify(a, b)
        for result in (exported.verify(a, b), folder.verify(a, b)):
            assert result.runtime == runtime and result.to_dict()["runtime"] == runtime
            assert result.same_person == expected.same_person
            assert abs(result.distance - expected.distance) <= 2 * PARITY_TOLERANCE
            # The confidence and each face's quality do not depend on what embedded the faces.
            assert result.confidence == pytest.approx(expected.confidence, abs=1e-3)
            assert (result.calibration, result.confidence_note) == (
                expected.calibration,
                expected.confidence_note,
            )
            assert [f.quality for f in result.faces] == [f.quality for f in expected.faces]
            assert all(f.quality is not None for f in result.faces)
    # The export folder's copy of the card carries the confidence mapping with it.
    assert folder.card.confidence == exported.card.confidence


def test_faceverifier_tta_on_an_export_matches_keras(exported_model, exports, lfw_root):
    a, b = _pairs(lfw_root)[0]
    crops = [FaceVerifier(exported_model).face_crop(p)[0] for p in (a, b)]
    expected = FaceVerifier(exported_model, tta=True, threshold=1.0, runtime="keras").embed_crops(crops)
    got = FaceVerifier(exported_model, tta=True, threshold=1.0, runtime="onnxruntime").embed_crops(crops)
    assert np.abs(got - expected).max() <= PARITY_TOLERANCE


def test_the_default_runtime_is_onnxruntime_where_the_onnx_export_is_of_this_model(
    smoke_model, exported_model, exports
):
    assert FaceVerifier(exported_model).runtime == "onnxruntime"
    assert FaceVerifier(smoke_model).runtime == "keras"  # no export there
    # An export left by another model (another training under the same name) is not used.
    ModelCard.update(exported_model, lambda card: setattr(card, "created", "2000-01-01T00:00:00"))
    try:
        assert FaceVerifier(exported_model).runtime == "keras"
        with pytest.raises(ExportError, match="is an export of another model"):
            FaceVerifier(exported_model, runtime="onnxruntime")
    finally:
        ModelCard.load(smoke_model).save(exported_model)


def test_faceverifier_says_how_to_make_a_missing_export(smoke_model_copy):
    with pytest.raises(
        ExportError, match=rf"no tflite export .*facelib export {smoke_model_copy} --format tflite"
    ):
        FaceVerifier(smoke_model_copy, runtime="tflite")
    with pytest.raises(FacelibError, match="runtime must be one of auto, keras, onnxruntime, tflite"):
        FaceVerifier(smoke_model_copy, runtime="tensorrt")


def test_faceverifier_refuses_a_savedmodel_export_and_a_runtime_its_export_does_not_run(exports):
    with pytest.raises(FacelibError, match="a SavedModel is for TensorFlow's own tools"):
        FaceVerifier(exports["savedmodel"].folder)
    with pytest.raises(FacelibError, match="it runs on the onnxruntime runtime, not tflite"):
        FaceVerifier(exports["onnx"].folder, runtime="tflite")
