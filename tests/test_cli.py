import os
import subprocess
import sys

import pytest

from facelib.app.cli import main
from facelib.recognition.card import ModelCard


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


# ------------------------------------------------------------------ evaluate by run name
# In-process (main(argv)), with the protocols cut to 20 pairs, so that the evaluation
# takes seconds; the run is a copy of the smoke model (model.keras linked) that says it
# was trained on 96 px crops, so its evaluation crops into a folder of its own.


@pytest.fixture
def run_name(smoke_model_copy, monkeypatch, mirror):
    from facelib.data import datasets

    view1 = datasets.view1_pairs("test")
    monkeypatch.setattr(datasets, "view1_pairs", lambda split: view1[:10] + view1[500:510])
    return smoke_model_copy


def _card(name: str) -> dict:
    from facelib.core import config

    return ModelCard.load(config.models_dir() / name)


def test_evaluate_by_run_name_then_if_needed_skips_it(run_name, capsys):
    assert main(["evaluate", "--model", run_name]) == 0
    out = capsys.readouterr().out
    assert "View 2 skipped: the smoke preset evaluates View 1 only (--view2 adds it)" in out
    assert (
        f"models/{run_name} " in out
        and "view1: accuracy" in out
        and "(20 pairs: 10 same, 10 different)" in out
    )
    threshold = _card(run_name).threshold
    assert f"threshold {threshold:.4f} (View 1) saved in card.json" in out

    assert main(["evaluate", "--if-needed", "--model", run_name]) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        f"{run_name} is already evaluated (threshold {threshold:.4f} in its card); "
        "skipping (run without --if-needed to evaluate it again)"
    )
    assert len(_card(run_name).evaluations) == 1


def test_evaluate_again_keeps_the_threshold_and_recalibrate_replaces_it(run_name, capsys):
    from facelib.core import config

    assert main(["evaluate", "--model", run_name]) == 0
    ModelCard.update(config.models_dir() / run_name, lambda card: setattr(card, "threshold", 0.5))
    capsys.readouterr()

    assert main(["evaluate", "--model", run_name]) == 0
    assert "kept the calibrated threshold 0.5000 in card.json" in capsys.readouterr().out
    assert _card(run_name).threshold == 0.5

    assert main(["evaluate", "--model", run_name, "--recalibrate"]) == 0
    new = _card(run_name).threshold
    assert f"threshold replaced (--recalibrate): 0.5000 → {new:.4f}" in capsys.readouterr().out
    assert new == _card(run_name).evaluations[-1]["threshold"] != 0.5


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--model", "no-such-run"],
        ["evaluate", "--if-needed", "--model", "no-such-run"],
        ["verify", "a.jpg", "b.jpg", "--model", "no-such-run"],
        ["embed", "a.jpg", "--out", "e.npy", "--model", "no-such-run"],
    ],
)
def test_a_model_name_that_matches_nothing_lists_the_trained_runs(run_name, capsys, argv):
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert lines[0].startswith("error: model 'no-such-run' does not exist")
    assert "trained runs there: " in lines[0] and run_name in lines[0]


def test_if_needed_and_recalibrate_cannot_be_combined(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--if-needed", "--recalibrate"])
    assert exit_info.value.code == 2
    assert "--recalibrate: not allowed with argument --if-needed" in capsys.readouterr().err


@pytest.mark.tensorflow  # `facelib train` loads it before reading --set
def test_train_set_refuses_an_unknown_or_mistyped_setting():
    for bad in ["--set=nosuch=1", "--set=p=two"]:
        result = _facelib("train", "--preset", "smoke", "--name", "never-made", bad)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("error: --set") and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.tensorflow  # facelib.training.train loads it
def test_train_set_values_reach_the_config_as_given(monkeypatch, capsys):
    import facelib.training.train
    from facelib.core.errors import FacelibError

    seen = []

    def fake_train(cfg, name, **kwargs):
        seen.append((cfg, name))
        raise FacelibError("stopped before training")

    monkeypatch.setattr(facelib.training.train, "train", fake_train)
    argv = ["train", "--preset", "smoke", "--name", "never-made", "--epochs", "3"]
    assert main([*argv, "--set", "max_identities=none", "--set", "weights=none"]) == 1
    assert main(argv) == 1
    assert capsys.readouterr().err.splitlines() == ["error: stopped before training"] * 2
    (lifted, _), (plain, _) = seen
    assert (lifted.max_identities, lifted.weights, lifted.epochs) == (None, None, 3)
    assert (plain.max_identities, plain.epochs) == (24, 3)  # the preset's, where no --set says otherwise


@pytest.mark.parametrize(
    ("resumable", "advice"),
    [(True, "pass --resume to continue it, or choose another --name"), (False, "choose another --name")],
)
def test_a_run_folder_error_gets_the_command_lines_advice_at_the_boundary(
    monkeypatch, capsys, resumable, advice
):
    """The library's message names no flag (notebooks get it too); the command adds one."""
    import facelib.training.train
    from facelib.core.errors import RunFolderError

    def fake_train(cfg, name, **kwargs):
        raise RunFolderError(f"models/{name} holds an interrupted run (1 epoch(s) done)", name, resumable)

    monkeypatch.setattr(facelib.training.train, "train", fake_train)
    assert main(["train", "--preset", "smoke", "--name", "busy", "--epochs", "1"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: models/busy holds an interrupted run (1 epoch(s) done); {advice}"
    ]


def test_train_resume_of_a_finished_run_with_other_settings_is_one_clear_line(smoke_model, capsys):
    argv = ["train", "--preset", "smoke", "--name", smoke_model.name, "--resume"]
    assert main([*argv, "--epochs", "20"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {smoke_model.name} already finished with other settings (epochs 2 → 20); choose another --name"
    ]
    assert "Traceback" not in captured.out


@pytest.mark.tensorflow  # main(['train', …]) loads it
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--preset", "smoke"],
            "run it again with --resume to continue from the last finished epoch",
        ),
        (["preprocess", "--preset", "smoke"], "run the same command again to continue"),
        (["fetch"], "run the same command again to continue"),
        (["evaluate"], None),
        (["verify", "a.jpg", "b.jpg"], None),
    ],
)
def test_ctrl_c_says_how_to_go_on_for_each_command(monkeypatch, capsys, argv, message):
    import facelib.app.cli

    def interrupted(args):
        raise KeyboardInterrupt

    for command in ("cmd_train", "cmd_preprocess", "cmd_fetch", "cmd_evaluate", "cmd_verify"):
        monkeypatch.setattr(facelib.app.cli, command, interrupted)
    assert main(argv) == 130
    expected = f"error: interrupted; {message}" if message else "error: interrupted"
    assert capsys.readouterr().err.splitlines() == [expected]


@pytest.mark.tensorflow  # main(['verify', …]) loads it
def test_verify_names_the_centre_crop_when_no_face_was_found(monkeypatch, capsys):
    import facelib.recognition.verification as verification

    result = verification.VerifyResult(
        distance=0.5,
        threshold=0.7,
        same_person=True,
        faces=[
            verification.FaceFound(box=None, faces_found=0, whole_image=True),
            verification.FaceFound(box=(1, 2, 30, 30), faces_found=1),
        ],
        detector="haar",
        model="models/m",
        threshold_source="card",
        timings_ms={"total": 12.0},
    )

    class FakeVerifier:
        def __init__(self, model, no_face):
            assert no_face == "whole"

        def verify(self, a, b):
            return result

    monkeypatch.setattr(verification, "FaceVerifier", FakeVerifier)
    assert main(["verify", "a.jpg", "b.jpg", "--whole-image"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "  a.jpg: centre of the picture (no face found)"
    assert lines[2] == "  b.jpg: face at (1, 2, 30, 30)"
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "use the centre of the picture" in " ".join(capsys.readouterr().out.split())
