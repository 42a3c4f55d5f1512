"""What a training run measures each epoch (validation AUC, speed, memory) and the
order of its callbacks."""

from __future__ import annotations

import sys
import time

import keras
import numpy as np

from facelib.core import machine
from facelib.core.decision import embedding_distance
from facelib.core.metrics import best_threshold, roc_auc
from facelib.data.pipeline import embed_files
from facelib.training.budget import Plan
from facelib.training.distribution import WorkerBackup
from facelib.training.run_folder import EpochBackup, EpochWeights, HistoryCSV, RunFolder
from facelib.training.tensorboard_logs import tensorboard_callback


def verification_auc(distances: np.ndarray, same: np.ndarray) -> float:
    return roc_auc(distances, same)


class ValidationAUC(keras.callbacks.Callback):
    """Each epoch: embed the validation pairs, log `val_auc` (and the distance gap)
    into the epoch's logs, so the progress bar, history.csv and the card all see it."""

    def __init__(
        self, paths: list[str], left: np.ndarray, right: np.ndarray, same: np.ndarray, input_size: int
    ):
        super().__init__()
        self.used = np.unique(np.concatenate([left, right]))
        self.paths = [paths[i] for i in self.used]
        position = {int(i): n for n, i in enumerate(self.used)}
        self.left = np.array([position[int(i)] for i in left])
        self.right = np.array([position[int(i)] for i in right])
        self.same, self.input_size = same, input_size
        self.embedding_model: keras.Model | None = None  # when training wraps it with a head

    def distances(self, model: keras.Model) -> np.ndarray:
        embeddings = embed_files(model, self.paths, self.input_size)
        return embedding_distance(embeddings[self.left], embeddings[self.right])

    def threshold(self, model: keras.Model) -> float:
        """The most accurate threshold on the validation pairs: a first calibration,
        until `facelib evaluate` sets one on LFW View 1."""
        return best_threshold(self.distances(model), self.same.astype(bool))

    def on_epoch_end(self, epoch, logs=None):
        distances = self.distances(self.embedding_model or self.model)
        if logs is not None:
            logs["val_auc"] = verification_auc(distances, self.same)
            logs["val_gap"] = float(distances[self.same == 0].mean() - distances[self.same == 1].mean())


class EpochTimer(keras.callbacks.Callback):
    """Logs `train_seconds` (the epoch's training steps, without validation) and
    `images_per_second`: throughput comparisons read them from history.csv."""

    def __init__(self, batch_images: int):
        super().__init__()
        self.batch_images = batch_images

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            seconds = time.perf_counter() - self.started
            logs["train_seconds"] = round(seconds, 2)
            logs["images_per_second"] = round(self.steps * self.batch_images / max(seconds, 1e-9), 2)


class PeakMemory(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["peak_rss_mb"] = peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident memory in MB (Linux reports KiB, macOS bytes;
    Windows has no `resource` module: psutil, which ipykernel brings, reads it there)."""
    try:
        import resource
    except ImportError:
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def training_callbacks(
    run: RunFolder,
    validation: ValidationAUC,
    plan: Plan,
    cpu: machine.Cpu,
    precision: str,
    batch_images: int,
    extra: list[keras.callbacks.Callback] | None,
    keep_epochs: bool = False,
) -> list[keras.callbacks.Callback]:
    """In the order their epoch ends run: each one sees the logs of those before it."""
    kept = keep_epochs and run.chief and validation.embedding_model is not None
    return [
        EpochTimer(batch_images),  # first: its epoch ends before validation starts
        validation,
        PeakMemory(),
        keras.callbacks.TerminateOnNaN(),
        *([HistoryCSV(run.history_csv, plan, cpu, precision)] if run.chief else []),
        # After every callback that fills the epoch's logs: it writes them all (tensorboard_logs).
        *([tensorboard_callback(run.path)] if run.chief else []),
        *(extra or []),
        *([EpochWeights(run.epochs, validation.embedding_model)] if kept else []),
        # Last, so that an epoch is backed up only after everything above has seen it.
        EpochBackup(run.backup) if run.chief else WorkerBackup(),
    ]
