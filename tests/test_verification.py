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
from facelib.errors import ImageError, ImageTooLargeError, NoFaceError
from facelib.model import ModelError


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
        assert data["model"] == "smoke-fixture" and data["detector"] == "haar"
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


def test_module_level_verify(smoke_model, lfw_root):
    result = facelib.verify(
        _lfw(lfw_root, "George_W_Bush", 1), _lfw(lfw_root, "George_W_Bush", 3), model=smoke_model
    )
    assert isinstance(result.same_person, bool)


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
