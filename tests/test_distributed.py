"""Training on several replicas: the losses see each batch whole however many replicas
hold slices of it, and a run on two worker processes finishes with one model, written
by the chief alone.

Strategies need TensorFlow configured before it starts (logical devices, TF_CONFIG), so
each case runs in fresh Python processes."""

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import free_ports
from test_losses import reference_batch_hard, reference_semihard

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow

# (mining, margin, soft, P, K): every Keras loss facelib trains with. 4×3 = 12 images
# give each of two replicas 6, two whole identities; with 3×2 the second identity is
# split between the replicas, and neither slice holds a positive pair of it.
CASES = [
    ("batch_hard", 0.2, False, 4, 3),
    ("batch_hard", 0.2, True, 4, 3),
    ("batch_hard", 0.2, False, 3, 2),
    ("batch_semihard", 0.2, False, 4, 3),
    ("random", 0.5, False, 4, 3),
]
DIM_IN, DIM = 6, 4


def _batch(mining, p, k):
    """A fixed batch laid out as the pipeline lays it out: P×K (identities in runs of K),
    or [anchors; positives; negatives] for random triplets; images and labels."""
    x = np.random.default_rng(p * k).normal(size=(p * k, DIM_IN)).astype(np.float32)
    if mining != "random":
        return x, np.repeat(np.arange(p), k)
    anchors = np.arange(p * k // 3)
    return x, np.concatenate([anchors, anchors, (anchors + 1) % len(anchors)])


def _one_step_on_two_replicas() -> dict:
    """Child process: one SGD step (learning rate 1) of a linear + L2 embedding, for each
    case, under MirroredStrategy on two logical CPUs; the weights before and after."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    keras.config.disable_traceback_filtering()  # whole tracebacks, shown when this fails

    from facelib.training.losses import make_loss

    dist = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": dist.num_replicas_in_sync, "cases": []}
    for mining, margin, soft, p, k in CASES:
        x, labels = _batch(mining, p, k)
        with dist.scope():
            inputs = keras.Input((DIM_IN,))
            dense = keras.layers.Dense(
                DIM, use_bias=False, kernel_initializer=keras.initializers.RandomNormal(seed=1)
            )
            model = keras.Model(inputs, keras.layers.UnitNormalization()(dense(inputs)))
            model.compile(optimizer=keras.optimizers.SGD(1.0), loss=make_loss(mining, margin, soft))
        before = model.get_weights()[0].tolist()
        # The same path as facelib.training.train: an infinite dataset of global batches.
        data = tf.data.Dataset.from_tensors((x, labels)).repeat()
        history = model.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        results["cases"].append(
            {"loss": history.history["loss"][0], "before": before, "after": model.get_weights()[0].tolist()}
        )
    return results


@pytest.fixture(scope="module")
def two_replica_steps() -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "two-replicas"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _numpy_loss(mining, margin, soft, x, labels, w):
    e = x.astype(np.float64) @ w
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    if mining == "batch_hard":
        return reference_batch_hard(labels, e, margin, soft)
    if mining == "batch_semihard":
        return reference_semihard(labels, e, margin)
    a, p, n = np.split(e, 3)
    return float(
        np.mean(np.maximum(np.linalg.norm(a - p, axis=1) - np.linalg.norm(a - n, axis=1) + margin, 0))
    )


def _numpy_gradient(loss, w, h=1e-6):
    grad = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[i] = h
        grad[i] = (loss(w + step) - loss(w - step)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "case", range(len(CASES)), ids=[f"{m}{'-soft' if s else ''}-{p}x{k}" for m, _, s, p, k in CASES]
)
def test_two_replicas_compute_the_whole_batch_loss_and_gradient(two_replica_steps, case):
    """Each replica holds half the batch. The loss Keras reports and the step it takes
    must be those of one replica on the whole batch: brute-force NumPy loss and its
    finite-difference gradient (SGD with learning rate 1 steps by minus the gradient)."""
    assert two_replica_steps["replicas"] == 2
    mining, margin, soft, p, k = CASES[case]
    x, labels = _batch(mining, p, k)
    step = two_replica_steps["cases"][case]
    before, after = np.array(step["before"], np.float64), np.array(step["after"], np.float64)

    def loss(w):
        return _numpy_loss(mining, margin, soft, x, labels, w)

    assert loss(before) > 0.05  # enough triplets active for the step to say something
    assert step["loss"] == pytest.approx(loss(before), rel=1e-4, abs=1e-5)
    np.testing.assert_allclose(before - after, _numpy_gradient(loss, before), rtol=1e-3, atol=1e-4)


def test_a_batch_that_does_not_split_evenly_over_the_replicas_is_refused(monkeypatch):
    """Keras 3's fit fails on unequal per-replica slices: say so before anything runs."""
    import facelib.core.config
    import facelib.training.train
    from facelib.core.errors import ConfigError

    three = SimpleNamespace(num_replicas_in_sync=3, extended=SimpleNamespace(should_checkpoint=True))
    monkeypatch.setattr(facelib.training.train, "strategy", lambda: three)
    with pytest.raises(ConfigError, match="8 images does not split evenly over 3 replicas"):
        facelib.training.train.train(facelib.training.train.TrainConfig.preset("smoke"), "uneven")
    assert not (facelib.core.config.models_dir() / "uneven").exists()


# ----------------------------------------------------------------- two workers


def test_two_workers_train_and_only_the_chief_writes_the_run(smoke_crops, tmp_path):
    """Two processes on loopback, each with the same command and its own TF_CONFIG index,
    sharing FACELIB_HOME (as workers sharing storage would). Both finish; models/<run>/
    holds one model, one config, one history and one set of TensorBoard logs written by
    worker 0 alone; the other worker's own saves go to its temporary folder and are removed."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
        out, err = open(tmp_path / f"out{index}", "w"), open(tmp_path / f"err{index}", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "facelib", "train", "--preset", "smoke", "--name", "two-workers"]
        workers.append((subprocess.Popen(command, env=env, stdout=out, stderr=err), out, err))
    deadline = time.monotonic() + 600
    try:
        for process, _, _ in workers:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process, out, err in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            out.close()
            err.close()
    stdout = [(tmp_path / f"out{i}").read_text() for i in range(2)]
    for i, (process, _, _) in enumerate(workers):
        assert process.returncode == 0, (tmp_path / f"err{i}").read_text()[-3000:]
        assert "MultiWorkerMirroredStrategy, 2 replica(s)" in stdout[i]
    assert "validation AUC" in stdout[0]
    assert "the chief worker saves the model" in stdout[1]

    folder = smoke_crops.parents[2] / "models" / "two-workers"
    assert sorted(p.name for p in folder.iterdir()) == [
        "card.json",
        "config.json",
        "history.csv",
        "logs",
        "model.keras",
        "sources",
    ]
    # the training people's manifest, written once, by the chief
    assert [p.name for p in (folder / "sources").iterdir()] == ["0-lfw.csv"]
    # TensorBoard's logs too: one events file a writer, the chief's
    assert len(list((folder / "logs" / "train").glob("events.*"))) == 1
    assert (folder / "logs" / "validation" / "projector_config.pbtxt").is_file()
    epochs = [int(row.split(",")[0]) for row in (folder / "history.csv").read_text().splitlines()[1:]]
    assert epochs == [0, 1]  # once each: only the chief logs
    assert [p.name for p in tmp_path.glob("tmp*/*")] == []

    from facelib.data.pipeline import embed_files, training_split
    from facelib.recognition.model import load_model_folder

    model, card = load_model_folder(folder)
    assert card.history["epochs"] == 2
    paths = training_split(smoke_crops).validation.paths[:2]
    embeddings = embed_files(model, paths, card.input_size)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


if __name__ == "__main__" and sys.argv[1:] == ["two-replicas"]:
    print(json.dumps(_one_step_on_two_replicas()))
