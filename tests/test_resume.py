"""Resume loses nothing. A smoke run is SIGKILLed, in a child process, at each point
where a kill once lost or repeated work, and continued each time: before the first
epoch's backup, while validating epoch 2, after training before saving, and after
saving before removing the backup. Nothing runs at a SIGKILL (no `finally`, no
handler), so each step sees exactly what a killed run leaves on disk.

The child is this file run as a script: `python test_resume.py MODE KILL_AT RUN`."""

import hashlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from facelib.core import config
from facelib.core.errors import ConfigError
from facelib.recognition.model import load_model_folder
from facelib.training.run_folder import is_finished, read_backup
from facelib.training.train import train, train_or_resume
from facelib.training.training_config import TrainConfig

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


def digest(variables) -> str:
    h = hashlib.sha256()
    for v in variables:
        h.update(np.asarray(v).tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------- the child


def _child(mode: str, kill_at: str, run: str) -> None:
    """Train the smoke preset (`train`, or `resume`: what --resume runs), printing
    EVENT lines (data start step, epochs begun and ended with digests of the weights
    and the optimizer state), and SIGKILL itself at `kill_at`."""
    import keras

    import facelib.training.run_folder as run_folder
    import facelib.training.train as t
    import facelib.training.training_callbacks as training_callbacks

    def event(**fields):
        print("EVENT " + json.dumps(fields), flush=True)

    def kill(*args, **kwargs):
        event(killed=kill_at)
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at == "first-backup":  # epoch 0 validated and logged, its backup not yet begun
        run_folder.EpochBackup.on_epoch_end = kill
    elif kill_at == "validation-of-epoch-2":  # while embedding the validation pairs after epoch 1
        embed, calls = training_callbacks.embed_files, []

        def embed_files(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                kill()
            return embed(*args, **kwargs)

        training_callbacks.embed_files = embed_files
    elif kill_at == "save":  # fit has returned; model.keras and card.json not yet written
        t.save_model_folder = kill
    elif kill_at == "backup-removal":  # model.keras and card.json written; backup still there
        t.remove_backup = kill
    else:
        raise SystemExit(f"unknown kill point {kill_at}")

    dataset = t.training_dataset

    def training_dataset(*args, **kwargs):
        event(start_step=kwargs["start_step"])
        return dataset(*args, **kwargs)

    t.training_dataset = training_dataset

    class Events(keras.callbacks.Callback):
        def state(self):
            return {
                "weights": digest(self.model.weights),
                "optimizer": digest(self.model.optimizer.variables),
            }

        def on_epoch_begin(self, epoch, logs=None):
            event(begin=epoch, **self.state())

        def on_epoch_end(self, epoch, logs=None):
            event(end=epoch, **self.state())

    cfg = t.TrainConfig.preset("smoke")
    run_it = t.train if mode == "train" else t.train_or_resume
    run_it(cfg, run, extra_callbacks=[Events()], verbose=0)
    event(finished=True)


# ------------------------------------------------------------------- the test


def _run_until_killed(mode: str, kill_at: str, run: str) -> tuple[list[dict], str]:
    result = subprocess.run(
        [sys.executable, __file__, mode, kill_at, run],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    events = [json.loads(line[6:]) for line in result.stdout.splitlines() if line.startswith("EVENT ")]
    assert result.returncode == -signal.SIGKILL and events and events[-1] == {"killed": kill_at}, (
        f"{mode} was not killed at {kill_at} (exit status {result.returncode})\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return events, result.stdout


def _history(folder) -> list[int]:
    lines = (folder / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,") and all("NA" not in row.split(",") for row in lines[1:]), lines
    return [int(row.split(",")[0]) for row in lines[1:]]


def _begun(events) -> list[int]:
    return [e["begin"] for e in events if "begin" in e]


def _at(events, key: str, epoch: int) -> dict:
    (found,) = [e for e in events if e.get(key) == epoch]
    return found


def test_a_run_killed_at_each_step_resumes_without_losing_or_repeating_anything(smoke_crops):
    cfg = TrainConfig.preset("smoke")
    assert cfg.epochs == 2  # the kill points below are placed for two epochs
    run = "killed-at-each-step"
    folder = config.models_dir() / run

    # 1. Killed before the first backup: config.json, and a history row of an epoch
    # that no backup holds.
    _run_until_killed("train", "first-backup", run)
    assert (folder / "config.json").is_file() and read_backup(folder) is None
    assert _history(folder) == [0]

    # 2. Nothing to lose, so even a plain `train` starts it again, from step 0, without a
    # second row for epoch 0. Killed while validating epoch 2 (index 1): its row is not
    # written, and the backup still holds epoch 1 only.
    events, stdout = _run_until_killed("train", "validation-of-epoch-2", run)
    assert "starting it afresh" in stdout and "already holds" not in stdout
    assert [e["start_step"] for e in events if "start_step" in e] == [0]
    assert _begun(events) == [0, 1]
    assert read_backup(folder).epochs == 1 and _history(folder) == [0]
    backed_up = _at(events, "end", 0)

    with pytest.raises(ConfigError, match=r"interrupted run \(1 epoch\(s\) done\)") as refused:
        train(cfg, run, verbose=0)
    assert refused.value.resumable  # the command line adds "pass --resume" (test_cli.py)

    # 3. --resume: epoch 1 again, the data stream at its first step, from exactly the
    # backed-up weights and optimizer state. Killed after fit returned, before saving.
    events, _ = _run_until_killed("resume", "save", run)
    assert [e["start_step"] for e in events if "start_step" in e] == [1 * cfg.steps_per_epoch]
    assert _begun(events) == [1]
    resumed = _at(events, "begin", 1)
    assert (resumed["weights"], resumed["optimizer"]) == (backed_up["weights"], backed_up["optimizer"])
    trained = _at(events, "end", 1)
    assert read_backup(folder).epochs == 2 and _history(folder) == [0, 1]
    assert not (folder / "model.keras").exists()
    history = (folder / "history.csv").read_text()

    # 4. --resume after training: nothing trained again, the model saved. Killed after
    # saving, before the backup is removed.
    events, _ = _run_until_killed("resume", "backup-removal", run)
    assert _begun(events) == []
    assert is_finished(folder) and read_backup(folder).epochs == 2
    assert (folder / "history.csv").read_text() == history

    # 5. Finished: --resume reports it and clears the leftover backup; a plain train refuses.
    with pytest.raises(ConfigError, match="already holds a trained model") as refused:
        train(cfg, run, verbose=0)
    assert not refused.value.resumable  # the command line adds "choose another --name"
    assert train_or_resume(cfg, run, verbose=0) == folder
    assert not (folder / "backup").exists()
    assert _history(folder) == list(range(cfg.epochs))
    model, card = load_model_folder(folder)
    assert card.history["epochs"] == cfg.epochs
    assert digest(model.weights) == trained["weights"]  # the model the killed run had trained


if __name__ == "__main__":
    _child(*sys.argv[1:4])
