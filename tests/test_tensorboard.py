"""Training's TensorBoard logs (the smoke fixture's run writes them) and `make tensorboard`."""

import csv
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port
from PIL import Image

from facelib.training.tensorboard_logs import LOGS, PROJECTOR_CONFIG, PROJECTOR_RUN, THUMBNAIL

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parent.parent


def _scalars(folder: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    # Keras writes TF2 summaries: scalars come as tensors
    return {
        tag: [float(np.asarray(_value(e))) for e in events.Tensors(tag)] for tag in events.Tags()["tensors"]
    }


def _value(event):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto)


def test_training_writes_each_epochs_scalars_beside_history_csv(smoke_model):
    logs = smoke_model / LOGS
    train, validation = _scalars(logs / "train"), _scalars(logs / PROJECTOR_RUN)
    for tag in ("epoch_loss", "epoch_learning_rate", "epoch_images_per_second"):
        assert tag in train, f"{tag} missing from {sorted(train)}"
    assert "epoch_auc" in validation, sorted(validation)
    with open(smoke_model / "history.csv") as f:
        history = list(csv.DictReader(f))
    # the same figures as history.csv, one an epoch
    assert np.allclose(validation["epoch_auc"], [float(r["val_auc"]) for r in history], atol=1e-6)
    assert np.allclose(train["epoch_loss"], [float(r["loss"]) for r in history], atol=1e-5)
    assert all(lr > 0 for lr in train["epoch_learning_rate"])


def test_training_writes_a_projector_of_the_validation_people(smoke_model):
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    from facelib.recognition.card import ModelCard

    folder = smoke_model / LOGS / PROJECTOR_RUN
    config = text_format.Parse((folder / PROJECTOR_CONFIG).read_text(), ProjectorConfig())
    (embedding,) = config.embeddings
    vectors = np.loadtxt(folder / embedding.tensor_path, delimiter="\t", ndmin=2)
    rows = (folder / embedding.metadata_path).read_text().splitlines()
    card = ModelCard.load(smoke_model)
    assert rows[0] == "person\tpicture" and len(rows) - 1 == len(vectors) > 0
    assert vectors.shape[1] == card.embedding_dim
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)  # the L2 head's embeddings
    assert {r.split("\t")[0] for r in rows[1:]} == set(card.validation_identities)  # validation people only
    side = int(np.ceil(np.sqrt(len(vectors))))
    assert list(embedding.sprite.single_image_dim) == [THUMBNAIL, THUMBNAIL]
    assert Image.open(folder / embedding.sprite.image_path).size == (side * THUMBNAIL, side * THUMBNAIL)


def test_tensorboard_serves_the_scalars_and_the_projector(smoke_model):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(smoke_model.parent)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, runs = time.monotonic() + 60, ""
        while time.monotonic() < deadline and PROJECTOR_RUN not in runs:
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/projector/runs") as r:
                    runs = r.read().decode()
            except OSError:
                continue
        assert f"{smoke_model.name}/{LOGS}/{PROJECTOR_RUN}" in runs
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags") as r:
            assert "epoch_auc" in r.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_make_tensorboard_serves_the_models_folder_on_loopback():
    out = subprocess.run(
        ["make", "-n", "tensorboard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    command = next(line for line in out.splitlines() if "tensorboard --logdir" in line)
    assert "config.models_dir()" in command and ".venv/bin/tensorboard" in command
    assert "--host 127.0.0.1" in out and "--port 6006" in out
