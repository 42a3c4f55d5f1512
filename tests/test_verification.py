import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import facelib
from facelib import FaceVerifier
from facelib.core import config
from facelib.core.errors import ImageError, ImageTooLargeError, NoFaceError
from facelib.recognition.card import ModelCard
from facelib.recognition.model import ModelError

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


@pytest.fixture(scope="module")
def verifier(smoke_model):
    return FaceVerifier(smoke_model)


def _lfw(lfw_root, person, n):
    return lfw_root / person / f"{person}_{n:04d}.jpg"


def test_verify_gives_a_well_formed_json_result(verifier, lfw_root):
    same = verifier.verify(_lfw(lfw_root, "George_W_Bush", 1), _lfw(lfw_root, "George_W_Bush", 2))
    other = verifier.verify(_lfw(lfw_root, "George_W_Bush", 1), _lfw(lfw_root, "Serena_Williams", 1))
    for result in (same, other):
        data = json.loads(json.dumps(result.to_dict()))
        assert data["distance"] >= 0 and data["threshold"] > 0
        assert data["same_person"] == (data["distance"] < data["threshold"])
        assert data["model"] == "smoke-fixture" and data["detector"] == config.preset("smoke").detector
        assert all(f["box"] is not None and f["faces_found"] >= 1 for f in data["faces"])
        assert data["timings_ms"]["total"] > 0
    assert same.distance != other.distance


def test_every_input_kind_gives_the_same_embedding(verifier, lfw_root):
    path = _lfw(lfw_root, "George_W_Bush", 4)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    e = verifier.embed([path, str(path), path.read_bytes(), rgb, Image.open(path)])
    assert e.shape == (5, 32)
    assert np.allclose(e[0], e[1:4], atol=1e-5)
    bgr = FaceVerifier(verifier.folder, bgr=True).embed([np.ascontiguousarray(rgb[..., ::-1])])
    assert np.allclose(bgr[0], e[0], atol=1e-5)
    assert np.allclose(e[4], e[0], atol=0.05)  # PIL's JPEG decoder differs by a few levels


def test_flip_tta_embeds_each_face_as_the_mean_with_its_mirror_image(verifier, lfw_root):
    from facelib.evaluation.evaluate import mean_embedding

    crops = [verifier.face_crop(_lfw(lfw_root, "George_W_Bush", n))[0] for n in (1, 2)]
    plain = verifier.embed_crops(crops)
    mirrored = verifier.embed_crops([np.ascontiguousarray(c[:, ::-1]) for c in crops])
    tta = FaceVerifier(verifier.folder, tta=True, threshold=1.0).embed_crops(crops)
    np.testing.assert_allclose(tta, mean_embedding(plain, mirrored), atol=1e-5)
    assert not np.allclose(tta, plain, atol=1e-4)


def test_flip_tta_takes_the_threshold_evaluate_set_for_it(smoke_model, tmp_path):
    import shutil

    from facelib.core.errors import FacelibError

    folder = tmp_path / "model"
    shutil.copytree(smoke_model, folder)
    with pytest.raises(FacelibError, match="evaluate --tta"):
        FaceVerifier(folder, tta=True)
    card = ModelCard.load(folder)
    card.evaluations.append(
        {"tta": True, "metrics": {"view1": {"threshold": 1.2}, "view1 +TTA": {"threshold": 0.9}}}
    )
    card.save(folder)
    flipped = FaceVerifier(folder, tta=True)
    assert flipped.threshold == 0.9 and "test-time" in flipped.threshold_source
    assert FaceVerifier(folder).threshold != 0.9  # plain embeddings keep the card's
    card.evaluations[-1]["crops"] = "other-crops"  # evaluated on crops the card's threshold was not
    card.save(folder)
    with pytest.raises(FacelibError, match="evaluate --tta"):
        FaceVerifier(folder, tta=True)
    with pytest.raises(FacelibError, match="plain embeddings"):
        FaceVerifier(folder, tta=True, threshold=1.0, calibration="mine")
    with pytest.raises(FacelibError, match="plain embeddings"):
        FaceVerifier(folder, tta=True, threshold=1.0).open_set_rule()


def _jpeg(rgb: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def test_module_level_verify(smoke_model, lfw_root):
    bush = _lfw(lfw_root, "George_W_Bush", 1)
    itself = facelib.verify(bush, bush, model=smoke_model)
    assert itself.distance < 1e-5 and itself.same_person is True
    assert itself.model == "smoke-fixture" and itself.faces[0] == itself.faces[1]
    # The same picture shifted by 4 pixels and saved again lies nearer than another person.
    rgb = np.asarray(Image.open(bush))
    near = facelib.verify(bush, _jpeg(np.ascontiguousarray(rgb[4:, 4:]), quality=90), model=smoke_model)
    other = facelib.verify(bush, _lfw(lfw_root, "Serena_Williams", 1), model=smoke_model)
    assert 0 < near.distance < other.distance / 2


@pytest.mark.parametrize(
    ("orientation", "stored_as"), [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)]
)
def test_a_sideways_phone_picture_verifies_as_the_upright_one(
    verifier, lfw_root, tmp_path, orientation, stored_as
):
    bush = _lfw(lfw_root, "George_W_Bush", 1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.open(bush).transpose(stored_as).save(path, "JPEG", quality=95, exif=exif)
    other = verifier.verify(bush, _lfw(lfw_root, "Serena_Williams", 1)).distance
    for picture in (path, Image.open(path)):  # a file, and a PIL image opened by the caller
        result = verifier.verify(bush, picture)
        assert result.distance < other / 4
        assert np.allclose(result.faces[0].box, result.faces[1].box, atol=4)


def _policy_pictures(lfw_root) -> dict[str, np.ndarray]:
    face = np.asarray(Image.open(_lfw(lfw_root, "George_W_Bush", 1)))
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    canvas[300:550, 900:1150] = face
    blank = np.full((200, 300, 3), 30, np.uint8)
    blank[45:155, 95:205] = 220
    return {
        "lfw": face,
        "tight": np.ascontiguousarray(face[82:168, 87:168]),  # found on the padded copy only
        "small": canvas,  # a 115 px face in a 1600x1200 picture
        "none": blank,  # no face: the central half
    }


def test_verification_crops_pictures_as_preprocessing_did(smoke_model, lfw_root, tmp_path, monkeypatch):
    from facelib.data import preprocess
    from facelib.data.crop import CropSettings
    from facelib.data.images import load_image

    # The crop policy alone: verify's light correction comes after it (tests/test_quality.py).
    verifier = FaceVerifier(smoke_model, no_face="whole", correct_light=False)
    settings = CropSettings.from_dict(verifier.card.crop_settings)
    assert verifier.crop_settings == settings
    monkeypatch.setattr(preprocess, "_detector", settings.make_detector())  # a worker's, from the card
    for name, rgb in _policy_pictures(lfw_root).items():
        path = tmp_path / "Someone" / f"{name}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_jpeg(rgb, quality=98))
        record = preprocess.process_image(path, f"x/Someone/{name}.jpg", tmp_path / "crops", settings)
        stored = load_image(tmp_path / "crops" / record["crop"])  # saved as JPEG (quality 95)
        crop, found = verifier.face_crop(path)
        assert np.abs(crop.astype(int) - stored.astype(int)).mean() < 2, name
        assert found.whole_image == (record["status"] == "fallback") == (name == "none"), name
        if not found.whole_image:
            assert list(found.box) == [int(record[k]) for k in "xywh"], name


def test_an_older_card_gets_the_default_crop_policy(verifier, smoke_model, lfw_root, tmp_path):
    from dataclasses import replace

    from facelib.data.crop import CropSettings

    older = tmp_path / "older-card"
    older.mkdir()
    (older / "model.keras").symlink_to(smoke_model / "model.keras")
    card = ModelCard.load(smoke_model)
    for added in ("min_face_px", "pad_retry", "fallback_fraction"):  # what an older facelib wrote
        del card.crop_settings[added]
    card.crop_settings["margin"] = 0.35
    card.save(older)

    loaded = FaceVerifier(older)
    assert loaded.crop_settings == replace(CropSettings.from_dict(verifier.card.crop_settings), margin=0.35)
    assert loaded.crop_settings.pad_retry == CropSettings().pad_retry
    bush = _lfw(lfw_root, "George_W_Bush", 1)
    wider, _ = loaded.face_crop(bush)
    assert (
        np.abs(wider.astype(int) - verifier.face_crop(bush)[0].astype(int)).mean() > 10
    )  # the card's margin


def test_no_face_is_an_error_or_falls_back_to_the_whole_image(verifier, smoke_model, lfw_root):
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="image 2: no face"):
        verifier.verify(_lfw(lfw_root, "George_W_Bush", 1), blank)
    result = FaceVerifier(smoke_model, no_face="whole").verify(_lfw(lfw_root, "George_W_Bush", 1), blank)
    assert result.faces[1].whole_image and result.faces[1].box is None


def test_several_faces_keep_one_and_report_the_count(verifier, lfw_root):
    a = np.asarray(Image.open(_lfw(lfw_root, "George_W_Bush", 1)))
    b = np.asarray(Image.open(_lfw(lfw_root, "Serena_Williams", 1)))
    two = np.concatenate([a, b], axis=1)  # two portraits side by side
    result = verifier.verify(two, a)
    assert result.faces[0].faces_found >= 2


def test_bad_inputs_give_clear_errors(verifier, tmp_path, lfw_root):
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    good = _lfw(lfw_root, "George_W_Bush", 1)
    with pytest.raises(ImageError, match="image 1: .*not an image"):
        verifier.verify(text, good)
    with pytest.raises(ImageError, match="truncated"):
        verifier.verify(good, good.read_bytes()[:3000])
    with pytest.raises(ImageError, match="empty"):
        verifier.verify(b"", good)
    big = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(big, format="PNG")
    with pytest.raises(ImageTooLargeError, match="limit"):
        FaceVerifier(verifier.folder, max_pixels=10_000_000).verify(big.getvalue(), good)


def test_missing_or_invalid_model_folder(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        FaceVerifier(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelError, match="no card.json"):
        FaceVerifier(tmp_path / "junk")


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "facelib", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


def test_cli_verify_prints_distance_threshold_and_verdict(smoke_model, lfw_root):
    result = _cli(
        "verify",
        str(_lfw(lfw_root, "George_W_Bush", 1)),
        str(_lfw(lfw_root, "George_W_Bush", 2)),
        "--model",
        str(smoke_model),
    )
    assert result.returncode == 0, result.stderr
    assert "distance" in result.stdout and "threshold" in result.stdout
    assert "same person" in result.stdout or "different people" in result.stdout
    as_json = _cli(
        "verify",
        str(_lfw(lfw_root, "George_W_Bush", 1)),
        str(_lfw(lfw_root, "Serena_Williams", 1)),
        "--model",
        str(smoke_model),
        "--json",
    )
    assert json.loads(as_json.stdout)["model"] == "smoke-fixture"


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda d: d / "missing.jpg", "no such image"),
        (lambda d: (d / "t.jpg").write_text("x") and d / "t.jpg", "not an image"),
        (lambda d: (d / "e.jpg").write_bytes(b"") is not None and d / "e.jpg", "empty"),
    ],
)
def test_cli_verify_bad_input_is_one_line_on_stderr(smoke_model, lfw_root, tmp_path, make_bad, message):
    bad = make_bad(tmp_path)
    result = _cli("verify", str(bad), str(_lfw(lfw_root, "George_W_Bush", 1)), "--model", str(smoke_model))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: image 1: ") and message in lines[0]


def test_cli_verify_without_a_model(tmp_path, lfw_root):
    env = {**os.environ, "FACELIB_HOME": str(tmp_path)}
    image = str(_lfw(lfw_root, "George_W_Bush", 1))
    result = subprocess.run(
        [sys.executable, "-m", "facelib", "verify", image, image],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 1 and "facelib train" in result.stderr


def test_cli_embed_writes_npy(smoke_model, lfw_root, tmp_path):
    out = tmp_path / "e.npy"
    files = [str(_lfw(lfw_root, "George_W_Bush", n)) for n in (1, 2, 3)]
    result = _cli("embed", *files, "--out", str(out), "--model", str(smoke_model))
    assert result.returncode == 0, result.stderr
    assert np.load(out).shape == (3, 32)
