"""The model a run trains and how: the embedding network, an optional CosFace head
beside the triplet loss, the losses, the optimizer and its learning-rate schedule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from facelib.recognition.model import build_embedding_model, build_training_model
from facelib.training.losses import CosFaceLoss, make_loss
from facelib.training.training_config import TrainConfig
from facelib.training.training_data import frozen_prefixes


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


@dataclass
class Assembled:
    embedding_model: keras.Model  # what is validated and saved
    model: keras.Model  # what fit trains: the embedding model, or it with a CosFace head
    schedule: float | PlannedCosineDecay


def assemble(cfg: TrainConfig, identities: int, total_steps: int, dist: tf.distribute.Strategy) -> Assembled:
    """The compiled training model, its variables made under `dist`. The schedule spans
    `total_steps`; a budget not yet planned sets it after calibration."""
    with dist.scope():
        embedding_model = build_embedding_model(
            cfg.input_size, cfg.embedding_dim, cfg.weights, cfg.head, cfg.embedding_dropout
        )
        freeze(embedding_model, cfg.freeze_until)
        triplet = make_loss(cfg.mining, cfg.margin, cfg.soft_margin)
        if cfg.classifier == "none":
            model, loss, weights = embedding_model, triplet, None
        else:  # trained beside the triplet loss; saved models end at the embedding
            model = build_training_model(embedding_model, identities)
            loss = {"embedding": triplet, "cosines": CosFaceLoss(cfg.classifier_scale, cfg.classifier_margin)}
            weights = {"embedding": 1.0, "cosines": cfg.classifier_weight}
        schedule = learning_rate(cfg, total_steps)
        model.compile(optimizer=make_optimizer(cfg, schedule), loss=loss, loss_weights=weights)
    return Assembled(embedding_model, model, schedule)


def freeze(embedding_model: keras.Model, freeze_until: str | None) -> int:
    """Freeze the backbone's layers up to and including stage `freeze_until` (before
    compiling: the train step takes the trainable variables then); returns how many.
    A frozen BatchNormalization layer also keeps its statistics (inference mode), so
    the early stages stay exactly the model's that is fine-tuned."""
    prefixes = frozen_prefixes(freeze_until)
    if not prefixes:
        return 0
    backbone = embedding_model.get_layer("resnet50")
    frozen = [layer for layer in backbone.layers if layer.name.startswith(prefixes)]
    for layer in frozen:
        layer.trainable = False
    return len(frozen)


def with_targets(stream: tf.data.Dataset, cfg: TrainConfig) -> tf.data.Dataset:
    """(images, labels) batches as the model's outputs take them: with a CosFace head,
    both outputs learn from the identity labels."""
    if cfg.classifier == "none":
        return stream
    return stream.map(lambda images, labels: (images, {"embedding": labels, "cosines": labels}))


def restore(model: keras.Model, weights: Path, dist: tf.distribute.Strategy) -> None:
    """The weights and optimizer state of a backup."""
    with dist.scope():
        model.optimizer.build(model.trainable_variables)  # its state is in the backup too
        model.load_weights(weights)


def in_float32(embedding_model: keras.Model, cfg: TrainConfig, dist: tf.distribute.Strategy) -> keras.Model:
    """The embedding model rebuilt in float32, without an optimizer. Layers keep the
    policy they were built under, and a saved model keeps its layers' policies and its
    optimizer: so the saved model (and verify, evaluate) computes in full precision
    whatever precision it was trained in, and without the training's dropout. Sets the
    global policy to float32."""
    keras.mixed_precision.set_global_policy("float32")
    with dist.scope():
        full = build_embedding_model(cfg.input_size, cfg.embedding_dim, None, cfg.head)
        full.set_weights(embedding_model.get_weights())
    return full
