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

from facelib.data import datasets
from facelib.data.preprocess import read_manifest
from facelib.data.quality import LIMITS

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

    @property
    def people(self) -> list[str]:
        """The identity of each path, in the order of `paths`."""
        return [name for name, count in zip(self.identities, self.counts, strict=True) for _ in range(count)]


@dataclass(frozen=True)
class Split:
    train: FaceSet
    validation: FaceSet


def training_split(
    crops_root: Path,
    validation_fraction: float = 0.1,
    seed: int = 0,
    max_identities: int | None = None,
    single_picture_people: bool = False,
) -> Split:
    """Training identities come only from View 1 `peopleDevTrain.txt`, so every person
    of `peopleDevTest.txt` stays unseen. A seeded slice of those with ≥ 2 pictures is
    held out for validation. The people are drawn from the pictures the manifest lists,
    whatever the detector made of them, so crops made by other detectors or alignments
    hold out the same people and their validation AUCs can be compared. With
    `single_picture_people` the View 1 training people who have one picture join the
    training side (never validation, which needs pairs)."""
    records = read_manifest(crops_root)
    train_people = set(datasets.view1_people("train"))
    pictures = Counter(r["identity"] for r in records if r["identity"] in train_people)
    rng = np.random.default_rng(seed)
    multi = sorted(name for name, n in pictures.items() if n >= 2)
    names = list(rng.permutation(multi))
    if max_identities:
        names = names[:max_identities]
    n_val = max(2, int(round(validation_fraction * len(names))))
    validation = set(names[:n_val])
    train = names[n_val:]
    if single_picture_people:
        singles = list(rng.permutation(sorted(name for name, n in pictures.items() if n == 1)))
        if max_identities:  # as many in proportion as the people with pairs kept
            singles = singles[: round(len(singles) * len(names) / max(len(multi), 1))]
        train += singles
    return Split(
        train=FaceSet.from_records(records, crops_root, sorted(train)),
        validation=FaceSet.from_records(records, crops_root, sorted(validation)),
    )


# ------------------------------------------------------------------ sampling (graph)


def _seed(seed: int, step, salt: int):
    return tf.stack([tf.cast(seed * 7919 + salt, tf.int64), tf.cast(step, tf.int64)])


def pk_indices(faces: FaceSet, p: int, k: int, seed: int):
    """A function batch_index → (image indices [P*K], labels [P*K]): P distinct
    identities, K images each (without repeats where the identity has ≥ K).

    People with one picture (training_split's single_picture_people, and people with
    one usable crop then) fill a share of the P slots equal to their share of the
    pictures (at least one, at most P − 2), so that every picture is drawn about as
    often: their K images are one picture, augmented K ways, an easy positive pair for
    the triplet loss, a class for the margin-softmax head, a negative for all."""
    counts = tf.constant(faces.counts)
    offsets = tf.constant(faces.offsets)
    several = np.flatnonzero(faces.counts >= 2)
    single = np.flatnonzero(faces.counts == 1)
    share = round(p * len(single) / max(faces.images, 1))
    p_single = min(max(share, 1), p - 2, len(single)) if len(single) else 0
    max_count = int(faces.counts.max())
    if len(several) < p - p_single:
        raise ValueError(
            f"P={p} identities per batch ({p - p_single} of them with ≥ 2 images), "
            f"but only {len(several)} identities have ≥ 2 images"
        )

    def draw(pool: np.ndarray, n: int, step, salt: int):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(pool), dtype=tf.int64), _seed(seed, step, salt)
        )
        return tf.gather(tf.constant(pool, tf.int64), order[:n])

    def sample(step):
        ids = draw(several, p - p_single, step, 1)
        if p_single:
            ids = tf.concat([ids, draw(single, p_single, step, 3)], axis=0)
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
    in grey and a fifth blurred, so colour and sharpness say less about who it is.
    "lighting": basic, then light as a home webcam sees it (`relight`); "lighting-mild":
    the same on a third of the pictures only; "shadow-mild": a third of the pictures
    under a hard shadow from one side and then verify's one-curve light correction of the
    time (`side_shadow`).
    "robust": lighting, then the picture as a webcam or phone takes it (`degrade`):
    a turned or tilted face, small, blurred, compressed."""
    if strength == "strong":
        seeds = tf.random.experimental.stateless_split(seed, 9)
        lowest, light, contrast = 0.6, 32.0, (0.7, 1.3)
    else:  # the first 5 of these seeds are basic's own: lighting and robust only add
        seeds = tf.random.experimental.stateless_split(seed, 5 if strength == "basic" else 9)
        lowest, light, contrast = 0.8, 20.0, (0.85, 1.15)
    side = tf.cast(tf.shape(image)[0], tf.float32)
    crop = tf.cast(side * tf.random.stateless_uniform([], seeds[0], lowest, 1.0), tf.int32)
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seeds[1])
    image = tf.image.resize(image, (input_size, input_size), antialias=True)
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    image = tf.image.stateless_random_brightness(image, light, seeds[3])
    image = tf.image.stateless_random_contrast(image, *contrast, seeds[4])
    if strength == "strong":
        image = tf.clip_by_value(image, 0.0, 255.0)
        image = tf.image.stateless_random_saturation(image, 0.7, 1.3, seeds[5])
        grey = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))
        image = tf.where(tf.random.stateless_uniform([], seeds[6]) < 0.2, grey, image)
        image = tf.where(tf.random.stateless_uniform([], seeds[7]) < 0.2, _blur(image), image)
    if strength in ("lighting", "robust"):
        image = relight(tf.clip_by_value(image, 0.0, 255.0), seeds[5])
    if strength == "lighting-mild":  # a third of the pictures relit, the rest as basic leaves them
        image = _sometimes(
            seeds[7], 1 / 3, lambda x: relight(tf.clip_by_value(x, 0.0, 255.0), seeds[5]), image
        )
    if strength == "shadow-mild":  # a third of the pictures shadowed, as verify then sees them
        image = _sometimes(
            seeds[7], 1 / 3, lambda x: side_shadow(tf.clip_by_value(x, 0.0, 255.0), seeds[5]), image
        )
    if strength == "robust":
        image = degrade(image, seeds[6])
    return tf.clip_by_value(image, 0.0, 255.0)


def _coin(seed, probability: float):
    return tf.random.stateless_uniform([], seed) < probability


def _sometimes(seed, probability: float, change, image):
    """`change(image)` on `probability` of the pictures, computed only for those (a
    `tf.where` computes both sides and throws one away); the input pipeline shares the
    CPU with the training step."""
    return tf.cond(_coin(seed, probability), lambda: change(image), lambda: image)


def relight(image, seed):
    """Light unlike LFW's even press-photo light, each part on half the pictures:
    shading from one side (a gain falling linearly across the face in a random
    direction, down to 0.25 of the lit side), a gamma curve (0.5–2: dark or washed
    out), a colour cast (a gain of 0.75–1.25 per channel), and a fifth in grey."""
    seeds = tf.random.experimental.stateless_split(seed, 8)
    size = tf.shape(image)[0]
    axis = tf.linspace(-1.0, 1.0, size)
    angle = tf.random.stateless_uniform([], seeds[0], 0.0, 2 * np.pi)
    along = tf.cos(angle) * axis[None, :] + tf.sin(angle) * axis[:, None]  # −1.4 … 1.4
    depth = tf.random.stateless_uniform([], seeds[1], 0.3, 0.75)
    shade = 1.0 - depth * tf.clip_by_value((along + 1.0) / 2.0, 0.0, 1.0)
    image = _sometimes(seeds[2], 0.5, lambda x: x * shade[:, :, None], image)
    gamma = tf.exp(tf.random.stateless_uniform([], seeds[3], -0.7, 0.7))
    image = _sometimes(seeds[4], 0.5, lambda x: 255.0 * tf.pow(x / 255.0 + 1e-6, gamma), image)
    gains = tf.random.stateless_uniform([3], seeds[5], 0.75, 1.25)
    image = _sometimes(seeds[6], 0.5, lambda x: x * gains, image)
    image = tf.clip_by_value(image, 0.0, 255.0)
    return _sometimes(seeds[7], 0.2, lambda x: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), image)


def side_shadow(image, seed):
    """A face lit from one side as `verify` embeds it: a shadow with a sharp edge over
    part of the face (down to 3–30% of the lit side; the light from the left or right,
    up to 60° off the horizontal), on half the pictures a gamma curve (0.5–2), an 8-bit
    picture again, then verify's light correction of the time (one curve,
    `light_corrected_graph`), which lifts the shadow and the coarse steps of its few grey
    levels."""
    seeds = tf.random.experimental.stateless_split(seed, 7)
    size = tf.shape(image)[0]
    axis = tf.linspace(-1.0, 1.0, size)
    angle = tf.random.stateless_uniform([], seeds[0], -np.pi / 3, np.pi / 3)
    angle += tf.where(_coin(seeds[1], 0.5), np.pi, 0.0)
    along = tf.cos(angle) * axis[None, :] + tf.sin(angle) * axis[:, None]
    edge = tf.random.stateless_uniform([], seeds[2], -0.4, 0.4)  # in half-widths from the middle
    softness = tf.random.stateless_uniform([], seeds[3], 0.05, 0.3)
    darkest = tf.random.stateless_uniform([], seeds[4], 0.03, 0.3)
    gain = darkest + (1.0 - darkest) * tf.sigmoid((edge - along) / softness)
    image = image * gain[:, :, None]
    gamma = tf.exp(tf.random.stateless_uniform([], seeds[5], -0.7, 0.7))
    image = _sometimes(seeds[6], 0.5, lambda x: 255.0 * tf.pow(x / 255.0 + 1e-6, gamma), image)
    return light_corrected_graph(tf.round(tf.clip_by_value(image, 0.0, 255.0)))


def light_corrected_graph(image):
    """Verify's light correction as it was when `shadow-mild` was measured, in the graph:
    a face whose middle 60% is dark, washed out or lit from one side (`quality.LIMITS`)
    brought to mid-grey by one gamma curve (`quality.one_curve`), in 8-bit steps as its
    table gives them; any other face as it is. Verify now uses a curve per half
    (`quality.light_corrected`); this one stays so that the rejected row's command trains
    what was measured. (cv2 rounds the grey levels it measures and this does not: a face
    within half a grey level of a limit may be judged otherwise.)"""
    size = tf.shape(image)[0]
    low, high = (
        tf.cast(tf.round(0.2 * tf.cast(size, tf.float32)), tf.int32),
        tf.cast(tf.round(0.8 * tf.cast(size, tf.float32)), tf.int32),
    )
    middle = tf.image.rgb_to_grayscale(image)[low:high, low:high, 0]
    half = tf.shape(middle)[1] // 2
    left, right = tf.reduce_mean(middle[:, :half]), tf.reduce_mean(middle[:, half:])
    brightness = tf.reduce_mean(middle)
    sided = tf.minimum(left, right) / tf.maximum(tf.maximum(left, right), 1e-6)
    outside = (
        (brightness < LIMITS["darkest_brightness"])
        | (brightness > LIMITS["brightest_brightness"])
        | (sided < LIMITS["side_light_ratio"])
    )
    level = tf.clip_by_value(brightness, 1.0, 254.0) / 255.0
    gamma = tf.math.log(0.5) / tf.math.log(level)
    corrected = tf.floor(tf.clip_by_value(255.0 * tf.pow(image / 255.0, gamma), 0.0, 255.0))
    return tf.where(outside, corrected, image)


def degrade(image, seed):
    """The picture as a webcam or phone takes it, each part on a third of the pictures
    (a quarter for the perspective): rotated in the plane (±20°), turned a little (a
    perspective warp), made small (down to a quarter of its side and back up),
    blurred (σ up to 1.5 px) and JPEG-compressed (quality 20–80)."""
    seeds = tf.random.experimental.stateless_split(seed, 10)
    size = tf.shape(image)[0]
    side = tf.cast(size, tf.float32)
    angle = tf.random.stateless_uniform([], seeds[0], -20.0, 20.0) * (np.pi / 180)
    turn = tf.random.stateless_uniform([], seeds[1], -0.25, 0.25) / side  # edges ±12% in scale
    use_rotation = tf.cast(_coin(seeds[2], 1 / 3), tf.float32)
    use_turn = tf.cast(_coin(seeds[3], 0.25), tf.float32)
    image = warp(image, angle * use_rotation, turn * use_turn)
    factor = tf.random.stateless_uniform([], seeds[4], 0.25, 0.7)
    small = tf.maximum(8, tf.cast(side * factor, tf.int32))
    shrunk = tf.image.resize(tf.image.resize(image, (small, small), antialias=True), (size, size))
    image = tf.where(_coin(seeds[5], 1 / 3), shrunk, image)
    sigma = tf.random.stateless_uniform([], seeds[6], 0.5, 1.5)
    image = tf.where(_coin(seeds[7], 1 / 3), gaussian_blur(image, sigma), image)
    compressed = tf.image.stateless_random_jpeg_quality(
        tf.cast(tf.clip_by_value(image, 0.0, 255.0), tf.uint8), 20, 80, seeds[8]
    )
    return tf.where(_coin(seeds[9], 1 / 3), tf.cast(compressed, tf.float32), image)


def warp(image, angle, turn):
    """`image` rotated by `angle` radians about its centre and seen from the side: the
    perspective term `turn` (per pixel from the centre) makes one side larger and the
    other smaller, roughly as a head turned a little does."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    c = (size - 1.0) / 2.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    # ImageProjectiveTransform maps each output pixel (x, y) to the input pixel
    # ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1. Here, with
    # u = x − c and v = y − c: input = c + (cos u − sin v, sin u + cos v) / (1 + turn u).
    d = 1.0 - turn * c
    transform = tf.stack(
        [
            cos + c * turn,
            -sin,
            c - cos * c + sin * c - c * c * turn,
            sin + c * turn,
            cos,
            c - sin * c - cos * c - c * c * turn,
            turn,
            0.0,
        ]
    ) / tf.stack([d, d, d, d, d, d, d, 1.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform[None],
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    return out[0]


def gaussian_blur(image, sigma):
    """A Gaussian blur of one H×W×3 image (a 7-tap separable kernel)."""
    taps = tf.range(-3.0, 4.0)
    kernel = tf.exp(-(taps**2) / (2.0 * sigma**2))
    kernel = kernel / tf.reduce_sum(kernel)
    rows = tf.tile(tf.reshape(kernel, [7, 1, 1, 1]), [1, 1, 3, 1])
    cols = tf.tile(tf.reshape(kernel, [1, 7, 1, 1]), [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="SYMMETRIC")
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")[0]


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


def embed_arrays(model, images: np.ndarray, input_size: int, batch: int = 64) -> np.ndarray:
    """Embeddings of crops held in memory (N × S × S × 3, 0–255), through the same
    `eval_transform` as stored crops."""
    data = (
        tf.data.Dataset.from_tensor_slices(np.asarray(images, np.float32))
        .map(lambda image: eval_transform(image, input_size))
        .batch(batch)
    )
    return model.predict(data, verbose=0)


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
