"""Which model the page serves, and what it says when there is none it can use."""

import pytest

from facelib.app.dashboard import Dashboard

pytestmark = pytest.mark.tensorflow  # Dashboard(...) loads it, a model or none


def test_displayed_the_page_names_the_model_it_serves(board, smoke_model):
    bundle = board._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == board.widget.model_id
    assert bundle["text/plain"] == (
        f"facelib dashboard: model {smoke_model.name} ({smoke_model}), threshold {board.verifier.threshold:.3f}"
    )


def _fake_runs(home, *names):
    for name in names:
        (home / "models" / name).mkdir(parents=True)
        (home / "models" / name / "model.keras").write_bytes(b"")


def test_without_any_model_the_page_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_HOME", str(tmp_path / "home"))
    for model in (None, "cpu-batch_hard-112"):
        board = Dashboard(model, gallery_folder=tmp_path / "g")
        assert (
            "No trained model yet" in board.message.value and "<code>make run</code>" in board.message.value
        )
        assert board.controller is None and board.verifier is None
        assert board._repr_mimebundle_()["text/plain"].startswith("facelib dashboard: no model. No trained")


def test_a_model_asked_for_that_does_not_exist_is_named_with_the_runs_there_are(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _fake_runs(home, "run-b", "run-a")
    monkeypatch.setenv("FACELIB_HOME", str(home))
    board = Dashboard("typo-run", gallery_folder=tmp_path / "g")
    text = board.message.value
    assert "No trained model" not in text and board.controller is None
    assert "Model <code>typo-run</code> was asked for (FACELIB_MODEL) but there is no such run" in text
    assert f"Trained runs in {home / 'models'}: <code>run-a</code>, <code>run-b</code>." in text
    assert "<code>make dashboard RUN=&lt;name&gt;</code>" in text
    assert "typo-run" in board.summary() and "run-a" in board.summary()


def test_a_model_that_cannot_be_loaded_says_why(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _fake_runs(home, "run-a", "run-b")  # model.keras but no card.json
    monkeypatch.setenv("FACELIB_HOME", str(home))
    board = Dashboard("run-a", gallery_folder=tmp_path / "g")
    text = board.message.value
    assert "No trained model" not in text and "was asked for" not in text
    assert "Model <code>run-a</code> cannot be used:" in text and "no card.json" in text
    assert "<code>run-a</code>, <code>run-b</code>" in text and "make dashboard RUN=" in text
