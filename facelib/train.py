"""Triplet training of the embedding network, resumable.

    from facelib.train import TrainConfig, train
    folder = train(TrainConfig.preset("cpu", epochs=20), run_name="my-run")
    facelib train --preset cpu [--resume] [--epochs 20 --mining batch_semihard ...]

Every epoch: Keras progress bar, validation verification AUC on held-out training
identities, a row in history.csv, then a backup of the full training state, so
`--resume` continues from the last complete epoch after a crash or kill, with the
data stream at the step it had reached. The final model.keras is written atomically,
with card.json beside it; the backup is removed only after both exist.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib import config, machine
from facelib.card import ModelCard
from facelib.decision import embedding_distance
from facelib.errors import ConfigError, FacelibError
from facelib.files import atomic_path, write_atomic, write_json_atomic
from facelib.losses import CosFaceLoss, make_loss
from facelib.machine import ALLOW_EMULATED_BFLOAT16, resolve_precision  # noqa: F401 (part of this API)
from facelib.model import build_embedding_model, build_training_model, save_model_folder
from facelib.pipeline import embed_files, training_dataset, training_split, validation_pairs
from facelib.training_config import (  # noqa: F401 (train's API: TrainConfig lives there, light)
    LEGACY_PRECISION,
    PRECISIONS,
    TrainConfig,
    config_differences,
    default_run_name,
    upgrade_settings,
)

# ----------------------------------------------------------------------- pieces


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def stored_crop_settings(crops_root: Path) -> dict:
    """The crop folder's settings with every field filled in (older folders lack the
    newer ones), so the card states the whole policy the verifier must repeat."""
    from facelib.crop import CropSettings

    stored = json.loads((crops_root / "settings.json").read_text())
    return {**stored, **asdict(CropSettings.from_dict(stored))}


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def strategy() -> tf.distribute.Strategy:
    """Several machines: TF_CONFIG → MultiWorkerMirroredStrategy; several GPUs on
    one machine → MirroredStrategy; otherwise the default (one device). The same one
    for the whole process: a multi-worker strategy is set up once, and `strategy()
    .extended.should_checkpoint` tells the chief from the other workers."""
    if os.environ.get("TF_CONFIG"):
        return _created_strategy(multi_worker=True)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return _created_strategy(multi_worker=False)
    return tf.distribute.get_strategy()


@functools.cache
def _created_strategy(multi_worker: bool) -> tf.distribute.Strategy:
    return tf.distribute.MultiWorkerMirroredStrategy() if multi_worker else tf.distribute.MirroredStrategy()


def several_workers(dist: tf.distribute.Strategy) -> bool:
    """Whether some of the strategy's replicas run in other processes."""
    return isinstance(dist, tf.distribute.MultiWorkerMirroredStrategy) and (
        dist.num_replicas_in_sync > len(dist.extended.worker_devices)
    )


def _fit_across_workers(model: keras.Model, dist: tf.distribute.Strategy, element_spec) -> None:
    """Keras 3's fit fails under MultiWorkerMirroredStrategy with several workers
    (keras-team/keras#20585, still so in 3.15): it reduces the first batch, a nested
    structure, in one call, and each step's scalar logs along axis 0, and that strategy
    takes neither. So, on this model alone: the symbolic build takes the batch's shapes
    from the dataset instead, and the step's logs get a leading axis of one, which the
    mean over the workers removes again."""

    def symbolic_build(iterator=None, data_batch=None):
        with dist.scope():
            model._symbolic_build(data_batch=element_spec)

    train_step = model.train_step
    model._maybe_symbolic_build = symbolic_build
    model.train_step = lambda batch: tf.nest.map_structure(lambda v: tf.reshape(v, [1]), train_step(batch))


class WorkerBackup(keras.callbacks.Callback):
    """EpochBackup's counterpart on a non-chief worker: every worker takes part in
    saving, so this one saves the same weights each epoch, into a temporary folder
    removed at once. On resume every worker loads the chief's backup, so resuming a
    multi-worker run needs models/ on storage the workers share."""

    def on_epoch_end(self, epoch, logs=None):
        with tempfile.TemporaryDirectory(prefix="facelib-worker-backup-") as scratch:
            self.model.save_weights(str(Path(scratch) / "latest.weights.h5"))


KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def gpu_present() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def auto_precision() -> str:
    """What precision auto picks on this machine."""
    return resolve_precision("auto", machine.read_cpu(), gpu_present())[0]


def make_optimizer(cfg: TrainConfig, schedule) -> keras.optimizers.Optimizer:
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(schedule)


class PlannedCosineDecay(keras.optimizers.schedules.CosineDecay):
    """Keras's CosineDecay with its linear warm-up, whose length in steps is fixed
    after the compiled train step exists: the warm-up and decay lengths are variables
    that the step reads, so a budget's calibration can set them without a new trace."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        super().__init__(
            0.0 if warmup_steps else peak,
            decay_steps=1,
            warmup_target=peak if warmup_steps else None,
            warmup_steps=1 if warmup_steps else 0,
            alpha=0.01,
        )
        self.requested_warmup = warmup_steps
        self.decay_steps = keras.Variable(1.0, trainable=False, name="decay_steps")
        self.warmup_steps = keras.Variable(0.0, trainable=False, name="warmup_steps")
        self.set_total(total_steps)

    def set_total(self, total_steps: int) -> None:
        warmup = min(self.requested_warmup, total_steps // 2)
        self.warmup_steps.assign(float(warmup))
        self.decay_steps.assign(float(max(1, total_steps - warmup)))

    def get_config(self):  # the saved model has no optimizer; this rebuilds the schedule
        return {
            "peak": self.warmup_target or self.initial_learning_rate,
            "warmup_steps": self.requested_warmup,
            "total_steps": self.total_steps,
        }

    @property
    def total_steps(self) -> int:
        return int(self.warmup_steps.numpy() + self.decay_steps.numpy())


def learning_rate(cfg: TrainConfig, total_steps: int):
    if cfg.schedule == "constant":
        return cfg.learning_rate
    return PlannedCosineDecay(cfg.learning_rate, cfg.warmup_steps, total_steps)


# ----------------------------------------------------------------------- the plan
#
# A run with a time budget (`minutes`) times a few real steps once the train step is
# compiled, then fixes its length: epochs × steps per epoch, epochs as configured. The
# plan is stored in models/<run>/plan.json before the first epoch, so --resume, even on
# another machine, trains the same steps under the same schedule.

PLAN = "plan.json"
CALIBRATION_WARMUP_STEPS = 3  # the first includes building the graph
CALIBRATION_STEPS = 10


@dataclass(frozen=True)
class Plan:
    epochs: int
    steps_per_epoch: int
    budget_minutes: float | None = None
    images_per_second: float | None = None  # the calibration's, None without a budget
    machine: str | None = None  # where the plan was made
    precision: str | None = None
    onednn: str | None = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def describe(self, batch_images: int) -> str:
        steps = (
            f"{self.epochs} epoch(s) × {self.steps_per_epoch:,} steps = {self.total_steps:,} steps "
            f"of {batch_images} pictures"
        )
        if self.budget_minutes is None:
            return f"plan: {steps} (fixed by the settings)"
        return (
            f"plan: {steps}, to fit a budget of {self.budget_minutes:g} min at the "
            f"{self.images_per_second:.1f} images/s timed on {self.machine} ({self.precision}, "
            f"oneDNN {self.onednn})"
        )


def plan_from_speed(cfg: TrainConfig, images_per_second: float, **where) -> Plan:
    """The steps that `cfg.minutes` of training buy at `images_per_second`."""
    total = int(cfg.minutes * 60 * images_per_second / cfg.batch_images)
    steps_per_epoch = max(1, total // cfg.epochs)
    return Plan(
        cfg.epochs,
        steps_per_epoch,
        budget_minutes=cfg.minutes,
        images_per_second=round(images_per_second, 2),
        **where,
    )


def read_plan(folder: Path) -> Plan | None:
    path = Path(folder) / PLAN
    if not path.is_file():
        return None
    try:
        return Plan(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}); the run cannot be resumed") from exc


class StepTimer(keras.callbacks.Callback):
    """Times the steps of a calibration after its warm-up steps."""

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup, self.timed, self.started = warmup, 0, None

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.warmup:
            self.started = time.perf_counter()
        elif batch + 1 > self.warmup:
            self.timed += 1
            self.seconds = time.perf_counter() - self.started


def calibrate_speed(
    model: keras.Model, data: tf.data.Dataset, batch_images: int, dist: tf.distribute.Strategy
) -> float:
    """Images/s of the compiled train step on the real data stream. The steps change
    nothing: weights (batch-norm statistics included) and the optimizer's state are
    put back, so the run starts as if they had not been taken."""
    with dist.scope():
        model.optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    optimizer_state = [v.numpy() for v in model.optimizer.variables]
    timer = StepTimer(CALIBRATION_WARMUP_STEPS)
    model.fit(
        data,
        epochs=1,
        steps_per_epoch=CALIBRATION_WARMUP_STEPS + CALIBRATION_STEPS,
        callbacks=[timer],
        verbose=0,
        shuffle=False,
    )
    model.set_weights(weights)
    for variable, value in zip(model.optimizer.variables, optimizer_state, strict=True):
        variable.assign(value)
    return timer.timed * batch_images / max(timer.seconds, 1e-9)


class HistoryCSV(keras.callbacks.Callback):
    """history.csv: a row per epoch of its logs, and where and how it was trained (a
    resumed run may go on on another machine). The record goes to the file only: the
    progress bar averages every value in the logs, and text is no number. The file is
    rewritten whole (atomically) each epoch under the union of the columns, so a run
    resumed by a newer facelib, with more columns, keeps its rows aligned."""

    def __init__(self, path: Path, plan: Plan, cpu: machine.Cpu, precision: str):
        super().__init__()
        self.path = Path(path)
        self.record = {
            "cpu": cpu.model,
            "cpu_flags": " ".join(cpu.flags),
            "cores": cpu.cores,
            "precision": precision,
            "onednn": machine.onednn_state(),
            "budget_minutes": plan.budget_minutes if plan.budget_minutes is not None else "",
            "planned_steps": plan.total_steps,
        }

    def on_epoch_end(self, epoch, logs=None):
        import csv
        import io

        rows, columns = [], ["epoch"]
        if self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                rows, columns = list(reader), list(reader.fieldnames or columns)
        steps = int(self.model.optimizer.iterations.numpy())  # counted, not planned
        values = {k: float(v) for k, v in (logs or {}).items()}
        row = {"epoch": epoch, **values, **self.record, "steps_done": steps}
        columns += sorted(k for k in row if k not in columns)
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        write_atomic(self.path, out.getvalue())


def verification_auc(distances: np.ndarray, same: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(same, -distances))


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
        from facelib.evaluate import best_threshold

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


# ----------------------------------------------------------------------- backup and resume
#
# models/<run>/backup/ holds the whole training state after the last complete epoch:
# epoch-<n>.weights.h5 (weights, optimizer and its step counter) and state.json, which
# names it and is written last, so a backup is whole or absent. The backup is the run's
# only record of progress until model.keras and card.json exist: it is removed after
# them, never before.

BACKUP_STATE = "state.json"
# keras.callbacks.BackupAndRestore's files, used by facelib before it wrote its own:
# runs interrupted then still resume.
_KERAS_BACKUP = ("training_metadata.json", "latest.weights.h5")


@dataclass(frozen=True)
class Backup:
    epochs: int  # complete epochs
    weights: Path


def read_backup(folder: Path) -> Backup | None:
    """The backup of the run in `folder`, or None when no epoch has been backed up."""
    backup = Path(folder) / "backup"
    state, legacy = backup / BACKUP_STATE, backup / _KERAS_BACKUP[0]
    if not state.is_file() and not legacy.is_file():
        return None
    source = state if state.is_file() else legacy
    try:
        saved = json.loads(source.read_text())
        epochs = int(saved["epoch"])
        weights = backup / (saved["weights"] if source == state else _KERAS_BACKUP[1])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{source} is damaged ({exc}); start a new run with another --name") from exc
    if not weights.is_file():
        raise ConfigError(
            f"{source} names {weights.name}, which is missing; start a new run with another --name"
        )
    return Backup(epochs, weights)


def _saved_config(folder: Path) -> dict | None:
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is damaged ({exc}); start a new run with another --name") from exc


def is_finished(folder: Path) -> bool:
    """Training saved model.keras and card.json, its last step (a kill just after may
    have left the backup: it is no longer needed)."""
    return (Path(folder) / "model.keras").is_file() and (Path(folder) / "card.json").is_file()


def remove_backup(backup: Path) -> None:
    # state.json first: a kill part-way through leaves no backup that looks whole.
    (backup / BACKUP_STATE).unlink(missing_ok=True)
    (backup / _KERAS_BACKUP[0]).unlink(missing_ok=True)
    shutil.rmtree(backup, ignore_errors=True)


class EpochBackup(keras.callbacks.Callback):
    """Backs up the training state after each epoch. It must be the last callback: an
    epoch counts as done only once its validation AUC and history.csv row exist."""

    def __init__(self, backup: Path):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        if logs and not np.isfinite(float(logs.get("loss", 0.0))):
            return  # a diverged state is nothing to resume from
        name = f"epoch-{epoch + 1}.weights.h5"
        with atomic_path(self.backup / name, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        write_json_atomic(self.backup / BACKUP_STATE, {"epoch": epoch + 1, "weights": name})
        for old in self.backup.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _row_epoch(line: str) -> int | None:
    try:
        return int(line.split(",", 1)[0])  # HistoryCSV writes the epoch first
    except ValueError:
        return None


def keep_history(history_csv: Path, epochs: int) -> None:
    """Cut history.csv back to the rows of the `epochs` epochs in the backup: a kill
    after an epoch's row but before its backup leaves a row for an epoch that is
    trained again."""
    lines = history_csv.read_text().splitlines(keepends=True) if history_csv.is_file() else []
    rows = lines[1:]
    kept = [r for r in rows if (_row_epoch(r) is not None and _row_epoch(r) < epochs)]
    if [_row_epoch(r) for r in kept] != list(range(epochs)):
        raise ConfigError(
            f"{history_csv} does not hold one row for each of the {epochs} epoch(s) in the backup; "
            "start a new run with another --name"
        )
    if not kept:
        history_csv.unlink(missing_ok=True)  # HistoryCSV writes a fresh header
    elif len(kept) != len(rows):
        write_atomic(history_csv, lines[0] + "".join(kept))


def history_summary(history_csv: Path) -> dict:
    import csv

    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    last = rows[-1]
    speeds = [float(r["images_per_second"]) for r in rows if r.get("images_per_second")]
    best = max(rows, key=lambda r: float(r.get("val_auc") or 0))
    return {
        "epochs": len(rows),
        "final_loss": float(last["loss"]),
        "final_val_auc": float(last.get("val_auc") or "nan"),
        "best_val_auc": float(best.get("val_auc") or "nan"),
        "best_epoch": int(best["epoch"]) + 1,
        "peak_rss_mb": max(float(r.get("peak_rss_mb") or 0) for r in rows),
        # the median epoch's, of the epochs that timed it
        "images_per_second": float(np.median(speeds)) if speeds else None,
    }


# ----------------------------------------------------------------------- training


def _missing_crops_message(crops_root: Path) -> str:
    """No crops where the config says: name the crop folders that do exist (made with
    other settings, e.g. --detector yunet), or say how to make them."""
    parent = crops_root.parent
    found = (
        sorted(p.name for p in parent.iterdir() if (p / "manifest.csv").is_file()) if parent.is_dir() else []
    )
    if not found:
        return f"no face crops in {crops_root}: run `facelib preprocess` first"
    return (
        f"no face crops in {crops_root}; crop folders there: {', '.join(found)}: "
        "pass --crops NAME (or --set crops=NAME) to train on one of them, "
        "or run `facelib preprocess` with the settings that make this one"
    )


def train_or_resume(cfg: TrainConfig, run_name: str, **kwargs) -> Path:
    """What re-running a notebook should do: return a finished run, resume an
    interrupted one, or start a new one."""
    folder = config.models_dir() / run_name
    if is_finished(folder):
        saved = _saved_config(folder)
        if saved is None:  # config.json lost: the card holds the same settings
            saved = ModelCard.load(folder).config
        differences = config_differences(saved, cfg, auto_precision()) if saved is not None else []
        if differences:
            raise ConfigError(
                f"{run_name} already finished with other settings ({', '.join(differences)}); "
                "choose another --name"
            )
        if (folder / "backup").exists():
            remove_backup(folder / "backup")  # killed after saving, before this clean-up
        print(f"{run_name} is already trained: {folder}")
        return folder
    return train(cfg, run_name, resume=True, **kwargs)


def train(
    cfg: TrainConfig,
    run_name: str,
    resume: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    data: tf.data.Dataset | None = None,
) -> Path:
    """Train and save `models/<run_name>/`; returns that folder. `data` replaces the
    P×K stream (an infinite dataset of (images, labels) batches), e.g. in tests.
    On a non-chief worker of a multi-worker run nothing is written there (the chief
    writes it, maybe on another machine) and the chief's folder is returned.

    Training sets Keras's global dtype policy (for precision bfloat16 or float16); it is
    restored afterwards, so later code in the process (a notebook) runs as before."""
    policy_before = keras.mixed_precision.global_policy()
    try:
        return _train(cfg, run_name, resume, extra_callbacks, verbose, data)
    finally:
        keras.mixed_precision.set_global_policy(policy_before)


def _train(
    cfg: TrainConfig,
    run_name: str,
    resume: bool,
    extra_callbacks: list[keras.callbacks.Callback] | None,
    verbose: int | str,
    data: tf.data.Dataset | None,
) -> Path:
    dist = strategy()  # first: a multi-worker strategy must exist before any TF op runs
    # Only the chief (worker 0) writes models/<run>/: the other workers would race it
    # on shared storage, or leave partial copies on their own machines.
    chief = dist.extended.should_checkpoint
    replicas = dist.num_replicas_in_sync
    if data is None and cfg.batch_images % replicas:  # Keras 3's fit fails on unequal slices
        raise ConfigError(
            f"a batch of {cfg.batch_images} images does not split evenly over {replicas} replicas; "
            "choose --p and --k so that it does"
        )
    if cfg.minutes is not None and replicas > 1:
        raise ConfigError(
            "a time budget (minutes) is planned by timing steps, and each replica's worker would "
            "plan its own number of them: with several replicas give epochs and steps_per_epoch instead"
        )
    folder = config.models_dir() / run_name
    backup = folder / "backup"
    history_csv = folder / "history.csv"
    if is_finished(folder):
        raise ConfigError(
            f"{run_name} already finished ({folder / 'model.keras'}); nothing to resume"
            if resume
            else f"{folder} already holds a trained model; choose another --name"
        )
    # The backup, not history.csv, says how far the run got: the epoch fit resumes at
    # and the step the data stream restarts from.
    found = read_backup(folder)
    done = found.epochs if found else 0
    saved = _saved_config(folder)
    if chief and folder.exists() and not done:  # a non-chief may find the chief's new folder
        if saved is None and any(not p.name.startswith(".") for p in folder.iterdir()):
            raise ConfigError(
                f"{folder} holds files but no training run (no config.json); choose another --name"
            )
        if saved is not None:
            print(f"{run_name}: no epoch of the earlier attempt was backed up; starting it afresh")
    if done and not resume and chief:
        raise ConfigError(
            f"{folder} holds an interrupted run ({done} epoch(s) done); "
            "pass --resume to continue it, or choose another --name"
        )
    if done and saved is None:
        raise ConfigError(f"{folder} has a backup but no config.json; start a new run with another --name")
    differences = config_differences(saved, cfg, auto_precision()) if done else []
    if differences:
        raise ConfigError(
            f"--resume needs the settings {run_name} started with; they differ ({', '.join(differences)}): "
            "resume with those, or choose another --name"
        )
    # Before anything is written: a run folder is no place to find out the crops are missing.
    crops_root = config.processed_dir() / cfg.crops
    if not (crops_root / "manifest.csv").is_file():
        raise FacelibError(_missing_crops_message(crops_root))
    # Refused before anything is written: a precision this CPU only emulates.
    cpu = machine.read_cpu()
    precision, why = resolve_precision(cfg.precision, cpu, gpu_present())
    # A plan is kept only with the epochs it planned: a fresh start times the machine anew.
    if done:
        plan = read_plan(folder)
        if plan is None and saved.get("minutes") is not None:
            raise ConfigError(f"{folder} holds a backup of a budget run but not its {PLAN}")
        if plan is None:  # a fixed-steps run, or one made before budgets: its own steps
            plan = Plan(saved.get("epochs", cfg.epochs), saved.get("steps_per_epoch", cfg.steps_per_epoch))
            if cfg.minutes is not None:  # made before budgets; stored, so a later resume keeps it too
                print(f"{run_name} was started with fixed steps: it keeps them, without a budget")
                if chief:
                    write_json_atomic(folder / PLAN, asdict(plan))
    else:
        plan = None if cfg.minutes is not None else Plan(cfg.epochs, cfg.steps_per_epoch)
    if chief:
        keep_history(history_csv, done)
        if not done and backup.exists():
            remove_backup(backup)  # at most stray temporary files of an unfinished first save
        folder.mkdir(parents=True, exist_ok=True)
        if not done:
            (folder / PLAN).unlink(missing_ok=True)
        write_json_atomic(folder / "config.json", asdict(cfg))

    split = training_split(
        crops_root, cfg.validation_fraction, cfg.seed, cfg.max_identities, cfg.single_picture_people
    )
    train_faces = split.train.with_at_least(1 if cfg.single_picture_people else 2)
    left, right, same = validation_pairs(split.validation, cfg.validation_pairs, cfg.seed)

    # Set every time: the policy is global, and an earlier run in this process may have changed it.
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    print(f"machine: {cpu.describe()}; precision {precision} ({why}); {machine.math_state().describe()}")
    keras.utils.set_random_seed(cfg.seed)
    kind = {
        "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",  # its class name
        "_DefaultDistributionStrategy": "one device",
    }.get(type(dist).__name__, type(dist).__name__)
    print(
        f"training {run_name}: {train_faces.images:,} images of {len(train_faces.identities):,} identities"
        f"{f' ({int((train_faces.counts == 1).sum()):,} with one picture)' if cfg.single_picture_people else ''}, "
        f"{len(split.validation.identities)} held out for validation; {kind}, "
        f"{dist.num_replicas_in_sync} replica(s)"
    )
    with dist.scope():
        embedding_model = build_embedding_model(cfg.input_size, cfg.embedding_dim, cfg.weights, cfg.head)
        triplet = make_loss(cfg.mining, cfg.margin, cfg.soft_margin)
        if cfg.classifier == "none":
            model, loss, weights = embedding_model, triplet, None
        else:  # trained beside the triplet loss; saved models end at the embedding
            model = build_training_model(embedding_model, len(train_faces.identities))
            loss = {"embedding": triplet, "cosines": CosFaceLoss(cfg.classifier_scale, cfg.classifier_margin)}
            weights = {"embedding": 1.0, "cosines": cfg.classifier_weight}
        # Without a plan yet the schedule's length is set after calibration.
        schedule = learning_rate(cfg, plan.total_steps if plan else 1)
        model.compile(optimizer=make_optimizer(cfg, schedule), loss=loss, loss_weights=weights)

    start_epoch = done
    if found:
        with dist.scope():
            model.optimizer.build(model.trainable_variables)  # its state is in the backup too
            model.load_weights(found.weights)
        print(f"resuming {run_name} after epoch {done} of {plan.epochs} (backup {found.weights.name})")

    def stream(start_step: int) -> tf.data.Dataset:
        stream = data or training_dataset(
            train_faces,
            cfg.mining,
            cfg.p,
            cfg.k,
            cfg.input_size,
            cfg.seed,
            start_step=start_step,
            augmentation=cfg.augmentation,
        )
        if cfg.classifier != "none":  # both outputs learn from the identity labels
            stream = stream.map(lambda images, labels: (images, {"embedding": labels, "cosines": labels}))
        # Every worker builds the same deterministic stream and keeps its replicas' slices
        # of each batch, in replica order: the losses gather the slices back into the batch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return stream.with_options(options)

    if plan is None:  # a budget, not yet planned: time the compiled step on the real stream
        print(f"timing {CALIBRATION_STEPS} steps to plan {cfg.minutes:g} min of training …", flush=True)
        speed = calibrate_speed(model, stream(0), cfg.batch_images, dist)
        plan = plan_from_speed(
            cfg, speed, machine=cpu.model, precision=precision, onednn=machine.onednn_state()
        )
        if isinstance(schedule, PlannedCosineDecay):
            schedule.set_total(plan.total_steps)
        if chief:
            write_json_atomic(folder / PLAN, asdict(plan))
    elif plan.budget_minutes is not None:
        print(f"{run_name}: keeping the plan it started with ({PLAN})")
    print(plan.describe(cfg.batch_images), flush=True)
    data = stream(start_epoch * plan.steps_per_epoch)
    if several_workers(dist):
        _fit_across_workers(model, dist, data.element_spec)
    validation = ValidationAUC(split.validation.paths, left, right, same, cfg.input_size)
    validation.embedding_model = embedding_model
    callbacks = [
        EpochTimer(cfg.batch_images),  # first: its epoch ends before validation starts
        validation,
        PeakMemory(),
        keras.callbacks.TerminateOnNaN(),
        *([HistoryCSV(history_csv, plan, cpu, precision)] if chief else []),
        *(extra_callbacks or []),
        # Last, so that an epoch is backed up only after everything above has seen it.
        EpochBackup(backup) if chief else WorkerBackup(),
    ]
    started = time.time()
    if start_epoch < plan.epochs:
        model.fit(
            data,
            epochs=plan.epochs,
            initial_epoch=start_epoch,
            steps_per_epoch=plan.steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the stream is already shuffled, deterministically
        )
    else:
        print(f"{run_name}: all {plan.epochs} epochs were trained before it stopped; saving the model")
    steps_run = int(model.optimizer.iterations.numpy())  # the optimizer's count, resumed ones too
    if model.stop_training and not np.isfinite(embedding_model.get_weights()[-1]).all():
        raise FacelibError(f"training of {run_name} diverged (NaN loss); lower --lr and start a new run")
    # Layers keep the policy they were built under, and a saved model keeps its layers'
    # policies and its optimizer: rebuilt in float32 without one, the saved model (and
    # verify, evaluate) computes in full precision whatever precision it was trained in.
    keras.mixed_precision.set_global_policy("float32")
    with dist.scope():
        full = build_embedding_model(cfg.input_size, cfg.embedding_dim, None, cfg.head)
        full.set_weights(embedding_model.get_weights())
    embedding_model = full
    model = embedding_model  # what is saved and scored: a classifier head was for training only
    threshold = validation.threshold(model)  # on every worker: predict runs on them all
    if not chief:
        # Every worker takes part in saving, as Keras asks of multi-worker runs; only
        # the chief's copy is kept.
        with tempfile.TemporaryDirectory(prefix=f"facelib-{run_name}-worker-") as scratch:
            save_model_folder(Path(scratch), model, ModelCard(run_name, cfg.input_size, cfg.embedding_dim))
        return folder
    card = ModelCard(
        name=run_name,
        input_size=cfg.input_size,
        embedding_dim=cfg.embedding_dim,
        validation_threshold=threshold,
        crop_settings=stored_crop_settings(crops_root),
        created=time.strftime("%Y-%m-%dT%H:%M:%S"),
        config=asdict(cfg),
        data_manifest_sha256=_sha256_file(crops_root / "manifest.csv"),
        training_identities=split.train.identities,
        validation_identities=split.validation.identities,
        training_images=train_faces.images,
        git_commit=_git_commit(),
        history=history_summary(history_csv),
        train_seconds_last_session=round(time.time() - started, 1),
        # Where and how the last session trained (history.csv has each epoch's).
        machine={"cpu": cpu.model, "arch": cpu.arch, "flags": list(cpu.flags), "cores": cpu.cores},
        precision=precision,
        onednn=machine.onednn_state(),
        plan={**asdict(plan), "total_steps": plan.total_steps},
        steps_run=steps_run,
        keras=keras.__version__,
        tensorflow=tf.__version__,
    )
    save_model_folder(folder, model, card)
    remove_backup(backup)  # only now: until model.keras and card.json exist, it is the run
    return folder
