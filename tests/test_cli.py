import os
import subprocess
import sys


def _facelib(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "facelib", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_fetch_prints_the_census(lfw_root):
    result = _facelib("fetch")
    assert result.returncode == 0, result.stderr
    assert "5,749 people, 13,233 images" in result.stdout


def test_preprocess_smoke_preset_prints_a_summary(lfw_root):
    result = _facelib("preprocess", "--preset", "smoke", "--size", "80", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "120 images" in result.stdout and "detected" in result.stdout


def test_errors_are_one_line_on_stderr(tmp_path):
    result = _facelib("fetch", env={"FACELIB_MIRROR": str(tmp_path), "FACELIB_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0]


def test_bad_preset_is_a_clear_error(tmp_path):
    result = _facelib("preprocess", env={"FACELIB_PRESET": "huge", "FACELIB_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown preset 'huge'")
