"""Each loss against a brute-force NumPy loop over every triplet of the batch."""

import numpy as np
import pytest

from facelib.training.losses import (
    batch_hard_triplet_loss,
    batch_semihard_triplet_loss,
    pairwise_distances,
    random_triplet_loss,
)

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


def _distances(e):
    return np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))


def reference_batch_hard(labels, e, margin, soft):
    d = _distances(e)
    losses = []
    for a in range(len(labels)):
        pos = [d[a, p] for p in range(len(labels)) if p != a and labels[p] == labels[a]]
        neg = [d[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
        if pos and neg:
            gap = max(pos) - min(neg)
            losses.append(np.log1p(np.exp(gap)) if soft else max(gap + margin, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def reference_semihard(labels, e, margin):
    d = _distances(e)
    losses = []
    for a in range(len(labels)):
        negatives = [d[a, n] for n in range(len(labels)) if labels[n] != labels[a]]
        if not negatives:
            continue
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            farther = [x for x in negatives if x > d[a, p]]
            chosen = min(farther) if farther else max(negatives)
            losses.append(max(d[a, p] - chosen + margin, 0.0))
    return float(np.mean(losses)) if losses else 0.0


def _batch(seed, n_ids=4, k=3, dim=8, normalise=True):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), k)
    rng.shuffle(labels)
    e = rng.normal(size=(len(labels), dim)).astype(np.float32)
    if normalise:
        e /= np.linalg.norm(e, axis=1, keepdims=True)
    return labels, e


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_matches_reference(seed, soft):
    labels, e = _batch(seed)
    got = float(batch_hard_triplet_loss(labels, e, margin=0.3, soft=soft))
    assert got == pytest.approx(reference_batch_hard(labels, e, 0.3, soft), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_batch_semihard_matches_reference(seed):
    labels, e = _batch(seed, n_ids=5, k=2, normalise=seed % 2 == 0)
    got = float(batch_semihard_triplet_loss(labels, e, margin=0.2))
    assert got == pytest.approx(reference_semihard(labels, e, 0.2), rel=1e-4, abs=1e-5)


def test_random_triplets_match_reference():
    rng = np.random.default_rng(7)
    a, p, n = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
    expected = np.mean(np.maximum(np.linalg.norm(a - p, axis=1) - np.linalg.norm(a - n, axis=1) + 0.5, 0))
    assert float(random_triplet_loss(np.concatenate([a, p, n]), margin=0.5)) == pytest.approx(
        expected, rel=1e-4
    )


def test_pairwise_distances_match_numpy_and_have_a_zero_diagonal():
    _, e = _batch(3)
    d = np.asarray(pairwise_distances(e))
    assert np.allclose(d, _distances(e), atol=1e-5)
    assert np.all(np.diag(d) == 0)


def test_all_one_identity_gives_zero_loss():
    labels = np.zeros(6, int)
    _, e = _batch(1, n_ids=1, k=6)
    assert float(batch_hard_triplet_loss(labels, e)) == 0.0
    assert float(batch_semihard_triplet_loss(labels, e)) == 0.0


def test_no_valid_positive_gives_zero_loss():
    labels = np.arange(6)  # every image its own person
    _, e = _batch(2, n_ids=6, k=1)
    assert float(batch_hard_triplet_loss(labels, e)) == 0.0
    assert float(batch_semihard_triplet_loss(labels, e)) == 0.0
    assert reference_batch_hard(labels, e, 0.2, False) == 0.0


def test_separated_clusters_give_zero_hinge_loss():
    labels = np.array([0, 0, 1, 1])
    e = np.array([[1, 0], [0.99, 0.01], [-1, 0], [-0.99, 0.01]], np.float32)
    assert float(batch_hard_triplet_loss(labels, e, margin=0.2)) == 0.0
    assert float(batch_semihard_triplet_loss(labels, e, margin=0.2)) == 0.0


def test_gradients_are_finite_for_identical_embeddings():
    import tensorflow as tf

    e = tf.Variable(np.ones((4, 3), np.float32))
    with tf.GradientTape() as tape:
        loss = batch_hard_triplet_loss(np.array([0, 0, 1, 1]), e)
    assert np.isfinite(tape.gradient(loss, e).numpy()).all()


@pytest.mark.parametrize("mining", ["batch_hard", "batch_semihard", "random"])
def test_keras_losses_on_one_device_are_the_whole_batch_functions(mining):
    """What fit calls: the Keras loss objects (their replica handling is a no-op on one
    device; tests/test_distributed.py checks two replicas)."""
    from facelib.training.losses import make_loss

    labels, e = _batch(4, n_ids=4, k=3)
    a, p, n = np.split(e, 3)
    expected = {
        "batch_hard": reference_batch_hard(labels, e, 0.3, True),
        "batch_semihard": reference_semihard(labels, e, 0.3),
        "random": float(
            np.mean(np.maximum(np.linalg.norm(a - p, axis=1) - np.linalg.norm(a - n, axis=1) + 0.3, 0))
        ),
    }[mining]
    loss = make_loss(mining, margin=0.3, soft=True)
    assert float(loss(labels, e)) == pytest.approx(expected, rel=1e-4, abs=1e-5)


def reference_cosface(labels, cosines, scale, margin):
    losses = []
    for y, row in zip(labels, cosines, strict=True):
        logits = scale * (row - margin * (np.arange(len(row)) == y))
        logits = logits - logits.max()
        losses.append(-(logits[y] - np.log(np.exp(logits).sum())))
    return float(np.mean(losses))


@pytest.mark.parametrize("margin", [0.0, 0.35])
def test_cosface_matches_reference(margin):
    from facelib.training.losses import cosface_loss

    rng = np.random.default_rng(3)
    cosines = rng.uniform(-1, 1, (10, 7)).astype(np.float32)
    labels = rng.integers(0, 7, 10)
    got = float(cosface_loss(labels, cosines, 30.0, margin))
    assert got == pytest.approx(reference_cosface(labels, cosines, 30.0, margin), rel=1e-5)


def test_cosface_margin_makes_a_correct_answer_cost_more():
    from facelib.training.losses import cosface_loss

    cosines = np.array([[0.9, 0.1, 0.0]], np.float32)  # right class, confidently
    plain = float(cosface_loss(np.array([0]), cosines, 5.0, 0.0))
    with_margin = float(cosface_loss(np.array([0]), cosines, 5.0, 0.35))
    assert with_margin > plain > 0
    # degenerate: every class at the same cosine gives log(classes) without a margin
    flat = np.zeros((4, 5), np.float32)
    assert float(cosface_loss(np.arange(4), flat, 30.0, 0.0)) == pytest.approx(np.log(5), rel=1e-5)


def test_cosine_classifier_outputs_cosines_of_normalised_vectors():
    from facelib.recognition.model import CosineClassifier

    layer = CosineClassifier(4)
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    out = np.asarray(layer(x))
    w = np.asarray(layer.centres)
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    assert out.shape == (6, 4) and np.allclose(out, expected, atol=1e-5)
    assert np.all(np.abs(out) <= 1 + 1e-6)


def test_every_mining_mode_a_config_accepts_has_a_loss_and_back():
    """TrainConfig checks its mining mode against config.MINING_MODES without loading
    TensorFlow; the registry it must name is TRIPLET_LOSSES."""
    from facelib.core import config
    from facelib.training.losses import TRIPLET_LOSSES

    assert set(config.MINING_MODES) == set(TRIPLET_LOSSES)
