"""Triplet losses, written with keras.ops so they read next to the papers, one per
mining mode (`TRIPLET_LOSSES`), and `make_loss(mining, margin, soft)` the Keras loss
that trains with one of them.

- `random`: the seed's scheme. The batch is [anchors; positives;
  negatives] in three equal thirds; loss = mean max(d(a,p) − d(a,n) + margin, 0).
- `batch_hard` (Hermans et al. 2017): for each anchor in a P×K batch, its
  farthest positive and its closest negative; hinge with a margin, or the soft margin
  log(1 + exp(d(a,p) − d(a,n))).
- `batch_semihard` (Schroff et al. 2015, FaceNet): for each (anchor,
  positive) pair, the closest negative that is still farther than the positive; if
  there is none, the farthest negative.

Distances are Euclidean. Anchors without a positive or without a negative in the batch
take no part; a batch with no valid triplet has loss 0.

Under tf.distribute (MirroredStrategy, MultiWorkerMirroredStrategy) each replica holds
one contiguous slice of the batch. The Keras losses below gather the slices back in
replica order, so mining and the [anchors; positives; negatives] thirds see the whole
batch, and every replica computes the one-replica loss; it is then divided by the
number of replicas because Keras sums the replicas' gradients and leaves scalar losses
unscaled. The functions take a whole batch and know nothing of replicas.
"""

from __future__ import annotations

import keras
from keras import ops

from facelib.core.errors import ConfigError

BIG = 1e9  # stands in for "no such element" in masked minima and maxima


def pairwise_distances(embeddings):
    """Euclidean distance matrix; the epsilon keeps sqrt's gradient finite at 0."""
    squared = ops.sum(ops.square(embeddings), axis=1)
    d2 = ops.expand_dims(squared, 1) - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings))
    d2 = ops.maximum(d2 + ops.expand_dims(squared, 0), 0.0)
    d2 = d2 * (1.0 - ops.eye(ops.shape(d2)[0], dtype=d2.dtype))  # rounding leaves ~1e-7 there
    zero = ops.cast(ops.equal(d2, 0.0), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


def _masks(labels):
    labels = ops.reshape(labels, (-1,))
    same = ops.equal(ops.expand_dims(labels, 0), ops.expand_dims(labels, 1))
    not_self = ops.logical_not(ops.cast(ops.eye(ops.shape(labels)[0]), "bool"))
    positive = ops.logical_and(same, not_self)
    negative = ops.logical_not(same)
    return positive, negative


def _safe_mean(values, weights):
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


def batch_hard_triplet_loss(labels, embeddings, margin: float = 0.2, soft: bool = False):
    d = pairwise_distances(ops.cast(embeddings, "float32"))
    positive, negative = _masks(labels)
    hardest_positive = ops.max(ops.where(positive, d, -BIG), axis=1)
    hardest_negative = ops.min(ops.where(negative, d, BIG), axis=1)
    valid = ops.cast(ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1)), "float32")
    gap = ops.where(valid > 0, hardest_positive - hardest_negative, 0.0)
    per_anchor = ops.softplus(gap) if soft else ops.relu(gap + margin)
    return _safe_mean(per_anchor, valid)


def batch_semihard_triplet_loss(labels, embeddings, margin: float = 0.2):
    d = pairwise_distances(ops.cast(embeddings, "float32"))
    positive, negative = _masks(labels)
    d_ap = ops.expand_dims(d, 2)  # [anchor, positive, 1]
    d_an = ops.expand_dims(d, 1)  # [anchor, 1, negative]
    negative_3d = ops.expand_dims(negative, 1)
    farther = ops.logical_and(negative_3d, d_an > d_ap)
    semi_hard = ops.min(ops.where(farther, d_an, BIG), axis=2)  # [anchor, positive]
    farthest = ops.max(ops.where(negative_3d, d_an, -BIG), axis=2)
    chosen = ops.where(ops.any(farther, axis=2), semi_hard, farthest)
    valid = ops.cast(ops.logical_and(positive, ops.any(negative, axis=1, keepdims=True)), "float32")
    per_pair = ops.relu(d - ops.where(valid > 0, chosen, 0.0) + margin)
    return _safe_mean(per_pair, valid)


def random_triplet_loss(embeddings, margin: float = 0.2):
    anchor, positive, negative = ops.split(ops.cast(embeddings, "float32"), 3, axis=0)
    d_ap = ops.sqrt(ops.sum(ops.square(anchor - positive), axis=1) + 1e-12)
    d_an = ops.sqrt(ops.sum(ops.square(anchor - negative), axis=1) + 1e-12)
    return ops.mean(ops.relu(d_ap - d_an + margin))


def _replica_context():
    """The replica context when this runs inside one replica of several, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None in cross-replica context
    return context if context is not None and context.num_replicas_in_sync > 1 else None


class _WholeBatchLoss(keras.losses.Loss):
    """A loss over the whole batch, however many replicas hold slices of it."""

    def whole_batch(self, labels, embeddings):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        context = _replica_context()
        if context is None:
            return self.whole_batch(y_true, y_pred)
        # all_gather concatenates in replica order (the order of the slices), and its
        # gradient sums the replicas' upstream gradients and hands each its own slice.
        labels = context.all_gather(y_true, axis=0)
        embeddings = context.all_gather(y_pred, axis=0)
        # Keras applies no 1/replicas to a scalar loss, yet sums gradients (and reports
        # the sum of the replicas' losses): each replica's share is 1/replicas.
        return self.whole_batch(labels, embeddings) / context.num_replicas_in_sync


# mining → the whole-batch loss, each called (labels, embeddings, margin, soft). The soft
# margin is batch-hard's (Hermans et al.); the other two keep the hinge.
TRIPLET_LOSSES = {
    "random": lambda labels, embeddings, margin, soft: random_triplet_loss(embeddings, margin),
    "batch_hard": batch_hard_triplet_loss,
    "batch_semihard": lambda labels, embeddings, margin, soft: batch_semihard_triplet_loss(
        labels, embeddings, margin
    ),
}
_LOSS_NAMES = {"random": "random_triplet"}  # Keras's name of the loss object; the others are the mode


@keras.saving.register_keras_serializable(package="facelib")
class TripletLoss(_WholeBatchLoss):
    """The triplet loss of one mining mode of TRIPLET_LOSSES."""

    def __init__(
        self, mining: str, margin: float = 0.2, soft: bool = False, name: str | None = None, **kwargs
    ):
        if mining not in TRIPLET_LOSSES:
            raise ConfigError(f"unknown mining mode {mining!r}; choose one of {', '.join(TRIPLET_LOSSES)}")
        super().__init__(name=name or _LOSS_NAMES.get(mining, mining), **kwargs)
        self.mining, self.margin, self.soft = mining, margin, soft

    def whole_batch(self, labels, embeddings):
        return TRIPLET_LOSSES[self.mining](labels, embeddings, self.margin, self.soft)

    def get_config(self):
        return {**super().get_config(), "mining": self.mining, "margin": self.margin, "soft": self.soft}


# ------------------------------------------------------------- margin-softmax head


def cosface_loss(labels, cosines, scale: float = 30.0, margin: float = 0.35):
    """CosFace (Wang et al. 2018, "large margin cosine loss"): softmax cross-entropy over
    s·(cos θ_j − m·[j = y]). `cosines` [B, classes] come from a CosineClassifier on
    unit-length embeddings; the margin is taken from the true class only."""
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    cosines = ops.cast(cosines, "float32")
    target = ops.one_hot(labels, ops.shape(cosines)[-1], dtype="float32")
    logits = scale * (cosines - margin * target)
    return ops.mean(keras.losses.categorical_crossentropy(target, logits, from_logits=True))


@keras.saving.register_keras_serializable(package="facelib")
class CosFaceLoss(_WholeBatchLoss):
    def __init__(self, scale: float = 30.0, margin: float = 0.35, name: str = "cosface", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale, self.margin = scale, margin

    def whole_batch(self, labels, cosines):
        return cosface_loss(labels, cosines, self.scale, self.margin)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


def make_loss(mining: str, margin: float = 0.2, soft: bool = False) -> keras.losses.Loss:
    """The Keras loss of `mining`, one of TRIPLET_LOSSES (ConfigError for another)."""
    return TripletLoss(mining, margin, soft)
