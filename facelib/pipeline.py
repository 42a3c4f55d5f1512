"""The tf.data input pipeline: identity split, P×K and random-triplet batches,
augmentation, and the evaluation transform.

Batches are drawn in the graph from a batch index (stateless random ops), so the
stream is deterministic for a seed, infinite, and can start at any step: a resumed
run continues with the batches it had not seen yet. Decoding and augmentation run in
parallel (AUTOTUNE) and the next batches are prefetched while the model trains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from facelib import datasets
from facelib.preprocess import read_manifest

USABLE = ("detected", "multiple")  # fallback crops are guesses: left out of training


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


@dataclass(frozen=True)
class FaceSet:
    """Crops grouped by identity: `paths[offsets[i] : offsets[i] + counts[i]]` are
    the images of `identities[i]`."""

    identities: list[str]
    paths: list[str]
    offsets: np.ndarray
    counts: np.ndarray

    @staticmethod
    def from_records(records: list[dict], crops_root: Path, identities: list[str]) -> FaceSet:
        by_identity: dict[str, list[str]] = {name: [] for name in identities}
        for r in records:
            if r["identity"] in by_identity and r["status"] in USABLE:
                by_identity[r["identity"]].append(str(crops_root / r["crop"]))
        kept = [name for name in identities if by_identity[name]]
        counts = np.array([len(by_identity[n]) for n in kept], np.int64)
        return FaceSet(kept, [p for n in kept for p in sorted(by_identity[n])], _offsets(counts), counts)

    def with_at_least(self, n: int) -> FaceSet:
        keep = [i for i, c in enumerate(self.counts) if c >= n]
        names = [self.identities[i] for i in keep]
        paths = [p for i in keep for p in self.paths[self.offsets[i] : self.offsets[i] + self.counts[i]]]
        counts = self.counts[keep]
        return FaceSet(names, paths, _offsets(counts), counts)

    @property
    def images(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class Split:
    train: FaceSet
    validation: FaceSet


def training_split(
    crops_root: Path, validation_fraction: float = 0.1, seed: int = 0, max_identities: int | None = None
) -> Split:
    """Training identities come only from View 1 `peopleDevTrain.txt`, so every person
    of `peopleDevTest.txt` stays unseen. A seeded slice of those with ≥ 2 pictures is
    held out for validation. The people are drawn from the pictures the manifest lists,
    whatever the detector made of them, so crops made by other detectors or alignments
    hold out the same people and their validation AUCs can be compared."""
    records = read_manifest(crops_root)
    train_people = set(datasets.view1_people("train"))
    pictures = Counter(r["identity"] for r in records if r["identity"] in train_people)
    rng = np.random.default_rng(seed)
    names = list(rng.permutation(sorted(name for name, n in pictures.items() if n >= 2)))
    if max_identities:
        names = names[:max_identities]
    n_val = max(2, int(round(validation_fraction * len(names))))
    validation = set(names[:n_val])
    train = names[n_val:]
    return Split(
        train=FaceSet.from_records(records, crops_root, sorted(train)),
        validation=FaceSet.from_records(records, crops_root, sorted(validation)),
    )


# ------------------------------------------------------------------ sampling (graph)


def _seed(seed: int, step, salt: int):
    return tf.stack([tf.cast(seed * 7919 + salt, tf.int64), tf.cast(step, tf.int64)])


def pk_indices(faces: FaceSet, p: int, k: int, seed: int):
    """A function batch_index → (image indices [P*K], labels [P*K]): P distinct
    identities, K images each (without repeats where the identity has ≥ K)."""
    counts = tf.constant(faces.counts)
    offsets = tf.constant(faces.offsets)
    n_ids = len(faces.identities)
    max_count = int(faces.counts.max())
    if n_ids < p:
        raise ValueError(f"P={p} identities per batch, but only {n_ids} identities have ≥ 2 images")

    def sample(step):
        ids = tf.random.experimental.stateless_shuffle(tf.range(n_ids, dtype=tf.int64), _seed(seed, step, 1))[
            :p
        ]
        c = tf.gather(counts, ids)
        noise = tf.random.stateless_uniform((p, max_count), _seed(seed, step, 2))
        slots = tf.range(max_count, dtype=tf.int64)[None, :]
        noise = tf.where(slots < c[:, None], noise, 2.0)  # padding sorts last
        order = tf.argsort(noise, axis=1)[:, :k]
        within = tf.math.floormod(tf.cast(order, tf.int64), c[:, None])  # repeats only when count < K
        index = tf.gather(offsets, ids)[:, None] + within
        labels = tf.repeat(ids, k)
        return tf.reshape(index, [-1]), labels

    return sample


def random_triplet_indices(faces: FaceSet, batch: int, seed: int):
    """The seed's scheme: `batch` random (anchor, positive, negative) triplets, laid
    out as [anchors; positives; negatives]."""
    counts = tf.constant(faces.counts)
    offsets = tf.constant(faces.offsets)
    n_ids = len(faces.identities)

    def sample(step):
        u = tf.random.stateless_uniform((5, batch), _seed(seed, step, 3), maxval=2**31 - 1, dtype=tf.int64)
        anchor_id = u[0] % n_ids
        negative_id = (anchor_id + 1 + u[1] % (n_ids - 1)) % n_ids  # never the anchor's
        c = tf.gather(counts, anchor_id)
        a = u[2] % c
        pos = (a + 1 + u[3] % (c - 1)) % c  # another image of the same person
        n = u[4] % tf.gather(counts, negative_id)
        base_a, base_n = tf.gather(offsets, anchor_id), tf.gather(offsets, negative_id)
        index = tf.concat([base_a + a, base_a + pos, base_n + n], 0)
        labels = tf.concat([anchor_id, anchor_id, negative_id], 0)
        return index, labels

    return sample


# ------------------------------------------------------------- decode and augment


def decode(path):
    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)


def eval_transform(image, input_size: int):
    """Centre 90% of the stored crop, resized: the mean of the training crop scales."""
    image = tf.image.central_crop(image, 0.9)
    return tf.image.resize(image, (input_size, input_size), antialias=True)


def augment(image, input_size: int, seed, strength: str = "basic"):
    """Random crop of 80–100% of the stored crop, flip, brightness and contrast jitter.
    "strong" (for about 6k training pictures, which a ResNet50 soon memorises): crops of
    60–100%, wider brightness/contrast, saturation jitter, and a fifth of the pictures
    in grey and a fifth blurred, so colour and sharpness say less about who it is."""
    if strength == "basic":
        seeds = tf.random.experimental.stateless_split(seed, 5)
        lowest, light, contrast = 0.8, 20.0, (0.85, 1.15)
    else:
        seeds = tf.random.experimental.stateless_split(seed, 9)
        lowest, light, contrast = 0.6, 32.0, (0.7, 1.3)
    side = tf.cast(tf.shape(image)[0], tf.float32)
    crop = tf.cast(side * tf.random.stateless_uniform([], seeds[0], lowest, 1.0), tf.int32)
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seeds[1])
    image = tf.image.resize(image, (input_size, input_size), antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    image = tf.image.stateless_random_brightness(image, light, seeds[3])
    image = tf.image.stateless_random_contrast(image, *contrast, seeds[4])
    if strength != "basic":
        image = tf.clip_by_value(image, 0.0, 255.0)
        image = tf.image.stateless_random_saturation(image, 0.7, 1.3, seeds[5])
        grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
        image = tf.where(tf.random.stateless_uniform([], seeds[6]) < 0.2, grey, image)
        image = tf.where(tf.random.stateless_uniform([], seeds[7]) < 0.2, _blur(image), image)
    return tf.clip_by_value(image, 0.0, 255.0)


def _blur(image):
    """A 3×3 Gaussian blur of one H×W×3 image."""
    kernel = tf.constant([1.0, 2.0, 1.0])
    kernel = tf.tensordot(kernel, kernel, axes=0) / 16.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    return tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "SAME")[0]


def training_dataset(
    faces: FaceSet,
    mining: str,
    p: int,
    k: int,
    input_size: int,
    seed: int = 0,
    start_step: int = 0,
    augmentation: str = "basic",
) -> tf.data.Dataset:
    """Infinite dataset of (images [B, S, S, 3] float 0–255, labels [B]) batches."""
    # Random mode fills the same number of images per step with whole triplets, so
    # both schemes train on the same image budget.
    triplets = max(1, (p * k) // 3)
    if mining == "random":
        sample, batch = random_triplet_indices(faces, triplets, seed), 3 * triplets
    else:
        sample, batch = pk_indices(faces, p, k, seed), p * k
    paths = tf.constant(faces.paths)

    def load(step, position, index, label):
        seed_pair = tf.stack([tf.cast(step, tf.int64) * 4096 + position, tf.cast(seed, tf.int64)])
        image = augment(
            tf.cast(decode(tf.gather(paths, index)), tf.float32), input_size, seed_pair, augmentation
        )
        return image, label

    def expand(step):
        index, labels = sample(step)
        positions = tf.range(tf.shape(index, out_type=tf.int64)[0])
        steps = tf.fill(tf.shape(index), tf.cast(step, tf.int64))
        return tf.data.Dataset.from_tensor_slices((steps, positions, index, labels))

    return (
        tf.data.Dataset.range(start_step, 2**62)
        .flat_map(expand)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(paths: list[str], input_size: int, batch: int = 64) -> tf.data.Dataset:
    return (
        tf.data.Dataset.from_tensor_slices(tf.constant([str(p) for p in paths]))
        .map(
            lambda p: eval_transform(tf.cast(decode(p), tf.float32), input_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )


def embed_files(
    model, paths: list[str], input_size: int, mirrored: bool = False, batch: int = 64
) -> np.ndarray:
    """Embeddings of crop files through `eval_transform` (of their mirror images with
    `mirrored`): the one way training, evaluation and benchmarks embed stored crops."""
    data = eval_dataset(paths, input_size, batch)
    return model.predict(data.map(tf.image.flip_left_right) if mirrored else data, verbose=0)


def validation_pairs(faces: FaceSet, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` same-person and `n` different-person pairs of image indices into
    `faces.paths`, with labels (1 = same)."""
    rng = np.random.default_rng(seed)
    multi = [i for i, c in enumerate(faces.counts) if c >= 2]
    left, right = [], []
    for _ in range(n):
        i = rng.choice(multi)
        a, b = rng.choice(faces.counts[i], 2, replace=False)
        left.append(faces.offsets[i] + a)
        right.append(faces.offsets[i] + b)
    for _ in range(n):
        i, j = rng.choice(len(faces.counts), 2, replace=False)
        left.append(faces.offsets[i] + rng.integers(faces.counts[i]))
        right.append(faces.offsets[j] + rng.integers(faces.counts[j]))
    return np.array(left), np.array(right), np.array([1] * n + [0] * n)
