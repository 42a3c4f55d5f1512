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

import dataclasses
import functools
import hashlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import typing
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib import config
from facelib.config import MINING_MODES
from facelib.decision import embedding_distance
from facelib.errors import ConfigError, FacelibError
from facelib.files import atomic_path, write_atomic, write_json_atomic
from facelib.losses import CosFaceLoss, make_loss
from facelib.model import build_embedding_model, build_training_model, read_card, save_model_folder
from facelib.pipeline import embed_files, training_dataset, training_split, validation_pairs


@dataclass(frozen=True)
class TrainConfig:
    p: int = 8  # identities per batch
    k: int = 4  # images per identity
    steps_per_epoch: int = 180
    epochs: int = 8
    learning_rate: float = 1e-3
    schedule: str = "cosine"  # or "constant"
    warmup_steps: int = 100
    margin: float = 0.2
    soft_margin: bool = True  # batch_hard only: log(1 + exp(d_ap − d_an)), no margin to tune
    mining: str = "batch_hard"  # random | batch_hard | batch_semihard
    input_size: int = 112
    embedding_dim: int = 128
    head: str = "l2"  # l2 | relu (the seed's unnormalised embedding, a baseline)
    weights: str | None = None  # None (scratch) | "imagenet" | a facelib model folder
    seed: int = 0
    validation_fraction: float = 0.1
    validation_pairs: int = 300  # same + as many different pairs, each epoch
    max_identities: int | None = None  # a subset of training identities (smoke tests)
    mixed_precision: bool = False  # mixed_float16 (GPUs)
    bfloat16: bool = False  # mixed_bfloat16: CPUs with AVX512_BF16 (and recent GPUs)
    # A margin-softmax head over the training identities, beside the triplet loss:
    # "none" or "cosface" (training only; the saved model still ends at the embedding).
    classifier: str = "none"
    classifier_scale: float = 30.0
    classifier_margin: float = 0.35
    classifier_weight: float = 1.0
    optimizer: str = "adam"  # adam | adamw
    augmentation: str = "basic"  # basic | strong (pipeline.augment)
    weight_decay: float = 0.0  # adamw only
    crops: str = "lfw-deepfunneled-haar-160"  # folder under data/processed/

    def __post_init__(self) -> None:
        if self.mining not in MINING_MODES:
            raise ConfigError(f"mining must be one of {', '.join(MINING_MODES)}, not {self.mining!r}")
        if self.p < 2 or self.k < 2:
            raise ConfigError("a P×K batch needs P ≥ 2 identities and K ≥ 2 images each")
        if self.head not in config.HEADS:
            raise ConfigError(f"head must be one of {', '.join(config.HEADS)}, not {self.head!r}")
        if self.schedule not in config.SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(config.SCHEDULES)}, not {self.schedule!r}")
        if self.classifier not in ("none", "cosface"):
            raise ConfigError(f"classifier must be 'none' or 'cosface', not {self.classifier!r}")
        if self.augmentation not in config.AUGMENTATIONS:
            raise ConfigError(
                f"augmentation must be one of {', '.join(config.AUGMENTATIONS)}, not {self.augmentation!r}"
            )
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be 'adam' or 'adamw', not {self.optimizer!r}")
        if self.input_size < 32:
            raise ConfigError(f"input size {self.input_size} is too small (ResNet50 needs ≥ 32 px)")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, not {self.epochs}")
        if self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be at least 1, not {self.steps_per_epoch}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be above 0, not {self.learning_rate}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be 0 or more, not {self.weight_decay}")
        if self.weight_decay > 0 and self.optimizer != "adamw":
            raise ConfigError(
                f"weight_decay {self.weight_decay} needs optimizer adamw (optimizer is {self.optimizer!r}): "
                "set optimizer=adamw, or weight_decay=0"
            )
        if self.mixed_precision and self.bfloat16:
            raise ConfigError(
                "mixed_precision (float16) and bfloat16 exclude each other: set one of them to false"
            )

    @staticmethod
    def preset(name: str, settings: dict | None = None, **overrides) -> TrainConfig:
        """The preset's settings (config.PRESETS), then `overrides` that are not None
        (None: keep the preset's), then `settings` as given (from --set, where None
        is a value: `--set max_identities=none` lifts the preset's limit)."""
        settings = {
            **config.preset(name).train,
            **{k: v for k, v in overrides.items() if v is not None},
            **(settings or {}),
        }
        unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return TrainConfig(**settings)

    @staticmethod
    def parse_settings(items: list[str]) -> dict:
        """`["p=16", "bfloat16=true", "max_identities=none"]` → {"p": 16, "bfloat16": True,
        "max_identities": None}, typed by the fields' annotations ("none" is None only
        where a field may be None)."""
        kinds = _field_kinds()
        settings = {}
        for item in items:
            key, sep, text = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in kinds:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(kinds)}")
            kind, optional = kinds[key]
            try:
                if optional and text.strip().lower() in ("", "none"):
                    value = None
                elif kind is bool:
                    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(text)
                    value = text.lower() in ("true", "1", "yes")
                else:
                    value = kind(text)
            except ValueError as exc:
                what = f"{kind.__name__} or none" if optional else kind.__name__
                raise ConfigError(f"--set {item!r}: {text!r} is not a valid {what}") from exc
            settings[key] = value
        return settings

    @property
    def batch_images(self) -> int:
        return 3 * max(1, self.p * self.k // 3) if self.mining == "random" else self.p * self.k


@functools.cache
def _field_kinds() -> dict[str, tuple[type, bool]]:
    """Each TrainConfig field's type and whether it may be None, from its annotation
    (`int | None` → (int, True))."""
    kinds = {}
    for name, hint in typing.get_type_hints(TrainConfig).items():
        args = typing.get_args(hint)
        if args:  # a union: X | None
            (kind,) = [a for a in args if a is not type(None)]
            kinds[name] = (kind, type(None) in args)
        else:
            kinds[name] = (hint, False)
    return kinds


def config_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """The settings in which a run's saved config.json differs from `cfg`, as
    "epochs 8 → 20"; a setting the saved file lacks (written before it existed)
    counts as its default."""
    requested = json.loads(json.dumps(asdict(cfg)))
    defaults = json.loads(json.dumps(asdict(TrainConfig())))
    saved = {**defaults, **saved}

    def show(value) -> str:
        return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    return [
        f"{key} {show(saved.get(key))} → {show(requested.get(key))}"
        for key in [*requested, *(k for k in saved if k not in requested)]
        if saved.get(key) != requested.get(key)
    ]


def default_run_name(cfg: TrainConfig, preset: str) -> str:
    return f"{preset}-{cfg.mining}-{cfg.input_size}"


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


def cpu_has_bfloat16() -> bool:
    """Whether the CPU lists bfloat16 instructions (Linux; elsewhere: assume it does)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate(cfg), weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(learning_rate(cfg))


def learning_rate(cfg: TrainConfig):
    total = cfg.epochs * cfg.steps_per_epoch
    if cfg.schedule == "constant":
        return cfg.learning_rate
    warmup = min(cfg.warmup_steps, total // 2)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else cfg.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=cfg.learning_rate if warmup else None,
        warmup_steps=warmup,
        alpha=0.01,
    )


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
            logs["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
        return int(line.split(",", 1)[0])  # CSVLogger writes the epoch first
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
        history_csv.unlink(missing_ok=True)  # CSVLogger writes a fresh header
    elif len(kept) != len(rows):
        write_atomic(history_csv, lines[0] + "".join(kept))


def history_summary(history_csv: Path) -> dict:
    import csv

    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    last = rows[-1]
    best = max(rows, key=lambda r: float(r.get("val_auc") or 0))
    return {
        "epochs": len(rows),
        "final_loss": float(last["loss"]),
        "final_val_auc": float(last.get("val_auc") or "nan"),
        "best_val_auc": float(best.get("val_auc") or "nan"),
        "best_epoch": int(best["epoch"]) + 1,
        "peak_rss_mb": max(float(r.get("peak_rss_mb") or 0) for r in rows),
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
            saved = read_card(folder).get("config")
        differences = config_differences(saved, cfg) if saved is not None else []
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

    Training sets Keras's global dtype policy (bfloat16, mixed_precision); it is
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
    differences = config_differences(saved, cfg) if done else []
    if differences:
        raise ConfigError(
            f"--resume needs the settings {run_name} started with; they differ ({', '.join(differences)}): "
            "resume with those, or choose another --name"
        )
    # Before anything is written: a run folder is no place to find out the crops are missing.
    crops_root = config.processed_dir() / cfg.crops
    if not (crops_root / "manifest.csv").is_file():
        raise FacelibError(_missing_crops_message(crops_root))
    if chief:
        keep_history(history_csv, done)
        if not done and backup.exists():
            remove_backup(backup)  # at most stray temporary files of an unfinished first save
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "config.json", asdict(cfg))

    split = training_split(crops_root, cfg.validation_fraction, cfg.seed, cfg.max_identities)
    train_faces = split.train.with_at_least(2)
    left, right, same = validation_pairs(split.validation, cfg.validation_pairs, cfg.seed)

    # Set every time: the policy is global, and an earlier run in this process may have changed it.
    policy = "mixed_bfloat16" if cfg.bfloat16 else "mixed_float16" if cfg.mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
    if cfg.bfloat16 and not cpu_has_bfloat16() and not tf.config.list_physical_devices("GPU"):
        print(
            "note: bfloat16 is on but this CPU lists no bfloat16 instructions (avx512_bf16, amx_bf16): "
            "it may train slower than float32 here; `--set bfloat16=false` turns it off"
        )
    keras.utils.set_random_seed(cfg.seed)
    kind = {
        "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",  # its class name
        "_DefaultDistributionStrategy": "one device",
    }.get(type(dist).__name__, type(dist).__name__)
    print(
        f"training {run_name}: {train_faces.images:,} images of {len(train_faces.identities):,} identities, "
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
        model.compile(optimizer=make_optimizer(cfg), loss=loss, loss_weights=weights)

    start_epoch = done
    if found:
        with dist.scope():
            model.optimizer.build(model.trainable_variables)  # its state is in the backup too
            model.load_weights(found.weights)
        print(f"resuming {run_name} after epoch {done} of {cfg.epochs} (backup {found.weights.name})")
    data = data or training_dataset(
        train_faces,
        cfg.mining,
        cfg.p,
        cfg.k,
        cfg.input_size,
        cfg.seed,
        start_step=start_epoch * cfg.steps_per_epoch,
        augmentation=cfg.augmentation,
    )
    if cfg.classifier != "none":  # both outputs learn from the identity labels
        data = data.map(lambda images, labels: (images, {"embedding": labels, "cosines": labels}))
    # Every worker builds the same deterministic stream and keeps its replicas' slices
    # of each batch, in replica order: the losses gather the slices back into the batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    data = data.with_options(options)
    if several_workers(dist):
        _fit_across_workers(model, dist, data.element_spec)
    validation = ValidationAUC(split.validation.paths, left, right, same, cfg.input_size)
    validation.embedding_model = embedding_model
    callbacks = [
        EpochTimer(cfg.batch_images),  # first: its epoch ends before validation starts
        validation,
        PeakMemory(),
        keras.callbacks.TerminateOnNaN(),
        *([keras.callbacks.CSVLogger(str(history_csv), append=True)] if chief else []),
        *(extra_callbacks or []),
        # Last, so that an epoch is backed up only after everything above has seen it.
        EpochBackup(backup) if chief else WorkerBackup(),
    ]
    started = time.time()
    if start_epoch < cfg.epochs:
        model.fit(
            data,
            epochs=cfg.epochs,
            initial_epoch=start_epoch,
            steps_per_epoch=cfg.steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the stream is already shuffled, deterministically
        )
    else:
        print(f"{run_name}: all {cfg.epochs} epochs were trained before it stopped; saving the model")
    if model.stop_training and not np.isfinite(embedding_model.get_weights()[-1]).all():
        raise FacelibError(f"training of {run_name} diverged (NaN loss); lower --lr and start a new run")
    if keras.mixed_precision.global_policy().name != "float32":
        # Layers keep the policy they were built under, and a saved model keeps its
        # layers' policies: rebuilt in float32, the saved model (and verify, evaluate)
        # computes in full precision whatever precision it was trained in.
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
            save_model_folder(Path(scratch), model, {"name": run_name})
        return folder
    card = {
        "name": run_name,
        "validation_threshold": threshold,
        "crop_settings": stored_crop_settings(crops_root),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": asdict(cfg),
        "data_manifest_sha256": _sha256_file(crops_root / "manifest.csv"),
        "training_identities": split.train.identities,
        "validation_identities": split.validation.identities,
        "training_images": train_faces.images,
        "git_commit": _git_commit(),
        "history": history_summary(history_csv),
        "train_seconds_last_session": round(time.time() - started, 1),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }
    save_model_folder(folder, model, card)
    remove_backup(backup)  # only now: until model.keras and card.json exist, it is the run
    return folder
