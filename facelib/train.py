"""Triplet training of the embedding network, resumable.

    from facelib.train import TrainConfig, train
    folder = train(TrainConfig.preset("cpu", epochs=20), run_name="my-run")
    facelib train --preset cpu [--resume] [--epochs 20 --mining batch_semihard ...]

Every epoch: Keras progress bar, validation verification AUC on held-out training
identities, a row in history.csv, and a backup of the full training state, so
`--resume` continues from the last complete epoch after a crash or kill. The final
model.keras is written atomically, with card.json beside it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facelib import config
from facelib.config import MINING_MODES
from facelib.decision import embedding_distance
from facelib.errors import ConfigError, FacelibError
from facelib.files import write_json_atomic
from facelib.losses import make_loss
from facelib.model import build_embedding_model, save_model_folder
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
    mixed_precision: bool = False
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
        if self.input_size < 32:
            raise ConfigError(f"input size {self.input_size} is too small (ResNet50 needs ≥ 32 px)")

    @staticmethod
    def preset(name: str, **overrides) -> TrainConfig:
        """The preset's settings (config.PRESETS), with `overrides` that are not None."""
        settings = {**config.preset(name).train, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(settings) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(sorted(unknown))}")
        return TrainConfig(**settings)

    @property
    def batch_images(self) -> int:
        return 3 * max(1, self.p * self.k // 3) if self.mining == "random" else self.p * self.k


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


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def strategy() -> tf.distribute.Strategy:
    """Several machines: TF_CONFIG → MultiWorkerMirroredStrategy; several GPUs on
    one machine → MirroredStrategy; otherwise the default (one device)."""
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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

    def distances(self, model: keras.Model) -> np.ndarray:
        embeddings = embed_files(model, self.paths, self.input_size)
        return embedding_distance(embeddings[self.left], embeddings[self.right])

    def threshold(self, model: keras.Model) -> float:
        """The most accurate threshold on the validation pairs: a first calibration,
        until `facelib evaluate` sets one on LFW View 1."""
        from facelib.evaluate import best_threshold

        return best_threshold(self.distances(model), self.same.astype(bool))

    def on_epoch_end(self, epoch, logs=None):
        distances = self.distances(self.model)
        if logs is not None:
            logs["val_auc"] = verification_auc(distances, self.same)
            logs["val_gap"] = float(distances[self.same == 0].mean() - distances[self.same == 1].mean())


class PeakMemory(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def completed_epochs(history_csv: Path) -> int:
    if not history_csv.is_file():
        return 0
    return max(0, len([line for line in history_csv.read_text().splitlines() if line.strip()]) - 1)


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


def ensure_model(preset: str | None = None) -> Path:
    """The newest trained model, or (when there is none) the preset's, trained now."""
    from facelib.model import ModelError, newest_model_folder
    from facelib.preprocess import ensure_crops

    try:
        return newest_model_folder()
    except ModelError:
        name = config.preset(preset).name
        print(f"no trained model yet: training the {name!r} preset (`facelib train --preset {name}`)")
        ensure_crops(limit=config.preset(name).preprocess_limit)
        cfg = TrainConfig.preset(name)
        return train_or_resume(cfg, default_run_name(cfg, name))


def train_or_resume(cfg: TrainConfig, run_name: str, **kwargs) -> Path:
    """What re-running a notebook should do: return a finished run, resume an
    interrupted one, or start a new one."""
    folder = config.models_dir() / run_name
    if (folder / "model.keras").is_file() and not (folder / "backup").exists():
        print(f"{run_name} is already trained: {folder}")
        return folder
    return train(cfg, run_name, resume=folder.exists(), **kwargs)


def train(
    cfg: TrainConfig,
    run_name: str,
    resume: bool = False,
    extra_callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int | str = "auto",
    data: tf.data.Dataset | None = None,
) -> Path:
    """Train and save `models/<run_name>/`; returns that folder. `data` replaces the
    P×K stream (an infinite dataset of (images, labels) batches), e.g. in tests."""
    folder = config.models_dir() / run_name
    backup = folder / "backup"
    history_csv = folder / "history.csv"
    if folder.exists() and not resume:
        state = "an interrupted run" if backup.exists() else "a model"
        raise ConfigError(
            f"{folder} already holds {state}; pass --resume to continue it, or choose another --name"
        )
    if resume and (folder / "model.keras").is_file() and not backup.exists():
        raise ConfigError(f"{run_name} already finished ({folder / 'model.keras'}); nothing to resume")
    if resume and (folder / "config.json").is_file():
        saved = json.loads((folder / "config.json").read_text())
        if saved != json.loads(json.dumps(asdict(cfg))):
            raise ConfigError(f"--resume needs the settings {run_name} started with; they differ: {saved}")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "config.json", asdict(cfg))

    crops_root = config.processed_dir() / cfg.crops
    if not (crops_root / "manifest.csv").is_file():
        raise FacelibError(f"no face crops in {crops_root}: run `facelib preprocess` first")
    split = training_split(crops_root, cfg.validation_fraction, cfg.seed, cfg.max_identities)
    train_faces = split.train.with_at_least(2)
    left, right, same = validation_pairs(split.validation, cfg.validation_pairs, cfg.seed)

    dist = strategy()  # first: a multi-worker strategy must exist before any TF op runs
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
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
        model = build_embedding_model(cfg.input_size, cfg.embedding_dim, cfg.weights, cfg.head)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(cfg)),
            loss=make_loss(cfg.mining, cfg.margin, cfg.soft_margin),
        )

    start_epoch = completed_epochs(history_csv) if resume else 0
    data = data or training_dataset(
        train_faces,
        cfg.mining,
        cfg.p,
        cfg.k,
        cfg.input_size,
        cfg.seed,
        start_step=start_epoch * cfg.steps_per_epoch,
    )
    callbacks = [
        # Restores weights, optimizer and epoch counter from the last complete epoch.
        keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch", delete_checkpoint=True),
        ValidationAUC(split.validation.paths, left, right, same, cfg.input_size),
        PeakMemory(),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        *(extra_callbacks or []),
    ]
    started = time.time()
    model.fit(
        data,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the stream is already shuffled, deterministically
    )
    if model.stop_training and not np.isfinite(model.get_weights()[-1]).all():
        raise FacelibError(f"training of {run_name} diverged (NaN loss); lower --lr and start a new run")

    validation = next(c for c in callbacks if isinstance(c, ValidationAUC))
    card = {
        "name": run_name,
        "validation_threshold": validation.threshold(model),
        "crop_settings": json.loads((crops_root / "settings.json").read_text()),
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
    shutil.rmtree(backup, ignore_errors=True)
    return folder
