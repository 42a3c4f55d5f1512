"""The plan of a run: how many steps it trains.

A run with a time budget (`minutes`) times a few real steps once the train step is
compiled, then fixes its length: epochs × steps per epoch, epochs as configured. The
plan is stored in models/<run>/plan.json before the first epoch, so --resume, even on
another machine, trains the same steps under the same schedule.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from facelib.core.errors import ConfigError
from facelib.training.training_config import TrainConfig

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
