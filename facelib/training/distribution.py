"""Training on several devices or machines with tf.distribute, and what Keras 3 needs
around it, kept in one place: the strategy, the checks a batch must pass, the data
sharding, the multi-worker fit workaround and the saves every worker takes part in.

Only the chief (worker 0) writes models/<run>/: the other workers would race it on
shared storage, or leave partial copies on their own machines.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from facelib.core.errors import ConfigError
from facelib.recognition.card import ModelCard
from facelib.recognition.model import save_model_folder
from facelib.training.training_config import TrainConfig


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


def describe(dist: tf.distribute.Strategy) -> str:
    kind = {
        "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",  # its class name
        "_DefaultDistributionStrategy": "one device",
    }.get(type(dist).__name__, type(dist).__name__)
    return f"{kind}, {dist.num_replicas_in_sync} replica(s)"


def check_replicas(cfg: TrainConfig, replicas: int, own_data: bool) -> None:
    """Refuse, before anything runs, what several replicas cannot train."""
    if not own_data and cfg.batch_images % replicas:  # Keras 3's fit fails on unequal slices
        raise ConfigError(
            f"a batch of {cfg.batch_images} images does not split evenly over {replicas} replicas; "
            "choose --p and --k so that it does"
        )
    if cfg.minutes is not None and replicas > 1:
        raise ConfigError(
            "a time budget (minutes) is planned by timing steps, and each replica's worker would "
            "plan its own number of them: with several replicas give epochs and steps_per_epoch instead"
        )


def sharded(stream: tf.data.Dataset) -> tf.data.Dataset:
    # Every worker builds the same deterministic stream and keeps its replicas' slices
    # of each batch, in replica order: the losses gather the slices back into the batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return stream.with_options(options)


def several_workers(dist: tf.distribute.Strategy) -> bool:
    """Whether some of the strategy's replicas run in other processes."""
    return isinstance(dist, tf.distribute.MultiWorkerMirroredStrategy) and (
        dist.num_replicas_in_sync > len(dist.extended.worker_devices)
    )


def fit_across_workers(model: keras.Model, dist: tf.distribute.Strategy, element_spec) -> None:
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


def save_on_worker(model: keras.Model, run_name: str) -> None:
    """Every worker takes part in saving, as Keras asks of multi-worker runs; only the
    chief's copy is kept, so a non-chief saves into a folder removed at once."""
    with tempfile.TemporaryDirectory(prefix=f"facelib-{run_name}-worker-") as scratch:
        save_model_folder(Path(scratch), model, ModelCard(run_name, 0, 0))
