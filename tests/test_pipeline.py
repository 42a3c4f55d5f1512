"""The tf.data pipeline on tiny synthetic crops: the training augmentation, the
evaluation transform, and the training stream's determinism and start step (what a
resumed run relies on to see the batches it had not seen yet)."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from facelib.data import quality
from facelib.data.pipeline import (
    FaceSet,
    augment,
    eval_transform,
    light_corrected_graph,
    relight,
    side_shadow,
    training_dataset,
    warp,
)

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow

SIZE = 24  # model input side in these tests


def _noise(side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> FaceSet:
    """6 people × 3 crops of 40 px noise, as JPEG files."""
    root = tmp_path_factory.mktemp("crops")
    names, paths = [f"person_{i}" for i in range(6)], []
    for i, name in enumerate(names):
        (root / name).mkdir()
        for j in range(3):
            path = root / name / f"{name}_{j:04d}.jpg"
            Image.fromarray(_noise(40, 10 * i + j).astype(np.uint8)).save(path, quality=90)
            paths.append(str(path))
    counts = np.full(len(names), 3, np.int64)
    return FaceSet(names, paths, np.arange(0, 3 * len(names), 3, dtype=np.int64), counts)


# ------------------------------------------------------------------ augment


def _augment(image: np.ndarray, seed: tuple[int, int], strength: str = "basic") -> np.ndarray:
    return augment(tf.constant(image), SIZE, tf.constant(seed, tf.int64), strength).numpy()


def test_augment_gives_the_input_size_in_pixel_range():
    image = _noise(40, 0)
    for seed in range(5):
        out = _augment(image, (seed, 0))
        assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 255.0
    # brightness jitter would push a white picture past 255: it is clipped
    assert _augment(np.full((40, 40, 3), 255.0, np.float32), (1, 0)).max() <= 255.0


def test_augment_is_deterministic_for_a_seed_and_varies_between_seeds():
    image = _noise(40, 1)
    assert np.array_equal(_augment(image, (3, 7)), _augment(image, (3, 7)))
    outputs = [_augment(image, (step, 7)) for step in range(4)] + [_augment(image, (3, 8))]
    for a in range(len(outputs)):
        for b in range(a + 1, len(outputs)):
            assert not np.allclose(outputs[a], outputs[b]), (a, b)


def test_strong_augmentation_stays_in_range_is_seeded_and_makes_grey_pictures():
    image = _noise(40, 2)
    outputs = [_augment(image, (seed, 0), "strong") for seed in range(40)]
    for out in outputs:
        assert out.shape == (SIZE, SIZE, 3) and out.min() >= 0.0 and out.max() <= 255.0
    assert np.array_equal(outputs[3], _augment(image, (3, 0), "strong"))
    grey = [
        np.allclose(o[..., 0], o[..., 1], atol=1e-3) and np.allclose(o[..., 1], o[..., 2], atol=1e-3)
        for o in outputs
    ]
    # a fifth of the pictures, drawn per picture: 40 draws hold some grey, not all
    assert 2 <= sum(grey) <= 20
    assert not any(np.allclose(_augment(image, (s, 0)), outputs[s]) for s in range(5))  # not the basic one


@pytest.mark.parametrize(
    ("strength", "fewest_changed"),
    [("lighting", 30), ("lighting-mild", 10), ("shadow-mild", 10), ("robust", 30)],
)
def test_lighting_and_robust_augmentations_stay_in_range_are_seeded_and_vary(strength, fewest_changed):
    image = _noise(40, 3)
    outputs = [_augment(image, (seed, 0), strength) for seed in range(60)]
    for out in outputs:
        assert out.shape == (SIZE, SIZE, 3) and out.min() >= 0.0 and out.max() <= 255.0
    assert np.array_equal(outputs[4], _augment(image, (4, 0), strength))
    basic = [_augment(image, (seed, 0)) for seed in range(60)]
    changed = sum(not np.allclose(b, o, atol=1e-3) for b, o in zip(basic, outputs, strict=True))
    # the -mild ones change a third: about 20 of 60 (two thirds would be about 40)
    assert fewest_changed <= changed <= 30 if strength.endswith("-mild") else changed >= fewest_changed
    # It only adds to the basic augmentation: its first draws are basic's own.
    seed = tf.constant([4, 0], tf.int64)
    first = tf.random.experimental.stateless_split(seed, 5).numpy()
    assert np.array_equal(first, tf.random.experimental.stateless_split(seed, 9).numpy()[:5])


@pytest.mark.parametrize("strength", ["lighting", "lighting-mild", "shadow-mild", "robust"])
def test_augment_gives_the_same_pictures_in_a_graph_as_eagerly(strength):
    # tf.data runs augment as a graph, where its tf.cond branches are traced, not run
    image = tf.constant(_noise(40, 5))
    graph = tf.function(lambda seed: augment(image, SIZE, seed, strength))
    for seed in range(12):
        seed_pair = tf.constant([seed, 2], tf.int64)
        eager = augment(image, SIZE, seed_pair, strength).numpy()
        assert np.allclose(graph(seed_pair).numpy(), eager, atol=1e-3), seed


def test_relight_shades_one_side_and_makes_some_pictures_grey():
    flat = tf.ones((32, 32, 3)) * tf.constant([200.0, 120.0, 60.0])  # one colour, no gradient
    shaded = grey = 0
    for seed in range(40):
        out = relight(flat, tf.constant([seed, 1], tf.int64)).numpy()
        spread = out.mean(axis=2)
        shaded += spread.max() - spread.min() > 30  # a gradient across the picture
        grey += np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 1], out[..., 2])
    assert 10 <= shaded <= 30 and 2 <= grey <= 16


def _lit(left: float, right: float, seed: int) -> np.ndarray:
    """A 50-px picture whose left and right halves have these mean grey levels, in colour
    (red over green over blue, so the grey conversion's weights matter) with noise."""
    rng = np.random.default_rng(seed)
    level = np.where(np.arange(50) < 25, left, right)[None, :, None]
    tint = np.array([1.25, 1.0, 0.5])  # grey weights 0.299, 0.587, 0.114: about 1.0 overall
    picture = level * tint / (tint @ [0.299, 0.587, 0.114]) + rng.normal(0, 8, (50, 50, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("left", "right", "outside"),
    [
        (130, 130, False),  # LFW's light
        (40, 40, True),  # dark (below 70)
        (78, 78, False),  # just above the dark limit
        (62, 62, True),  # just below it
        (215, 215, True),  # washed out (above 195)
        (187, 187, False),  # just below that limit
        (200, 60, True),  # lit from one side: 0.3 of the other half
        (60, 200, True),  # from the other side
        (200, 90, True),  # 0.45 of the other half: just under the 0.5 limit
        (200, 110, False),  # 0.55: just inside it
    ],
)
def test_the_graph_light_correction_is_verifys_one_curve(left, right, outside):
    # shadow-mild shows shadowed faces as verify embedded them when it was measured: the
    # same measures and limits as verify now, and the one gamma curve of then
    picture = _lit(left, right, seed=left + right)
    conditions = quality.face_conditions(picture, None)
    flagged = quality.light_corrected(picture, conditions) is not picture
    expected = quality.one_curve(picture, conditions.brightness) if flagged else picture
    assert flagged == outside, conditions  # the case is what it says
    got = light_corrected_graph(tf.constant(picture, tf.float32)).numpy()
    assert (not np.array_equal(got, picture)) == (expected is not picture)
    differ = np.abs(got - expected.astype(np.float32))
    # cv2 rounds the grey levels it measures, the graph does not: a slightly other gamma
    # moves a few pixels by one step (up to 7% here); rounding instead of verify's floor
    # would move about half of them
    assert differ.max() <= 1.0 and (differ > 0).mean() < 0.15


def test_side_shadow_darkens_one_side_before_verifys_correction():
    flat = tf.ones((32, 32, 3)) * 150.0
    for seed in range(10):
        out = side_shadow(flat, tf.constant([seed, 3], tf.int64)).numpy()
        assert out.min() >= 0.0 and out.max() <= 255.0 and np.array_equal(out, np.round(out))
        columns = out.mean(axis=(0, 2))
        assert abs(columns[:4].mean() - columns[-4:].mean()) > 20  # a shadow across, left or right


def test_warp_without_angle_or_turn_keeps_the_picture_and_a_right_angle_rotates_it():
    image = tf.constant(_noise(16, 4))
    assert np.allclose(warp(image, 0.0, 0.0).numpy(), image.numpy(), atol=1e-3)
    quarter = warp(image, np.pi / 2, 0.0).numpy()
    assert np.allclose(quarter, np.rot90(image.numpy(), 1), atol=1e-2) or np.allclose(
        quarter, np.rot90(image.numpy(), -1), atol=1e-2
    )
    turned = warp(image, 0.0, 0.02).numpy()
    assert not np.allclose(turned, image.numpy(), atol=1.0)
    assert np.allclose(turned[:, 8], image.numpy()[:, 8], atol=30)  # the centre column stays near


# ------------------------------------------------------------------ eval transform


def _framed(border: int, side: int = 100) -> np.ndarray:
    """Blue picture in a red frame `border` pixels wide."""
    image = np.zeros((side, side, 3), np.float32)
    image[...] = (255.0, 0.0, 0.0)
    image[border : side - border, border : side - border] = (0.0, 0.0, 255.0)
    return image


def test_eval_transform_is_the_centre_90_percent_resized():
    # 5 px of 100 on each side is exactly the 10% cut away: nothing of the frame is left.
    out = eval_transform(tf.constant(_framed(5)), SIZE).numpy()
    assert out.shape == (SIZE, SIZE, 3)
    assert np.allclose(out, (0.0, 0.0, 255.0), atol=1e-3)
    # A wider frame shows at the edges, and only there.
    out = eval_transform(tf.constant(_framed(15)), SIZE).numpy()
    assert out[0, 0, 0] > 200 and out[-1, -1, 0] > 200 and out[0, SIZE // 2, 0] > 200
    assert np.allclose(out[SIZE // 2, SIZE // 2], (0.0, 0.0, 255.0), atol=1e-3)


def test_eval_transform_has_no_randomness():
    image = tf.constant(_noise(40, 2))
    first = eval_transform(image, SIZE).numpy()
    assert np.array_equal(first, eval_transform(image, SIZE).numpy())
    assert first.min() >= 0.0 and first.max() <= 255.0


# ------------------------------------------------------------------ training stream


def _batches(faces: FaceSet, mining: str, seed: int = 0, start_step: int = 0, n: int = 4):
    data = training_dataset(faces, mining, p=3, k=2, input_size=SIZE, seed=seed, start_step=start_step)
    return [(images.numpy(), labels.numpy()) for images, labels in data.take(n)]


@pytest.mark.parametrize("mining", ["batch_hard", "random"])
def test_training_stream_is_deterministic_and_starts_at_any_step(faces, mining):
    full = _batches(faces, mining, n=5)
    for images, labels in full:
        assert images.shape == (6, SIZE, SIZE, 3) and images.dtype == np.float32 and labels.shape == (6,)
        assert images.min() >= 0.0 and images.max() <= 255.0
        assert set(labels) <= set(range(len(faces.identities)))

    again = _batches(faces, mining, n=5)
    for (a, la), (b, lb) in zip(full, again, strict=True):
        assert np.array_equal(a, b) and np.array_equal(la, lb)

    # A stream started at step 3 is exactly the full stream from its step 3 on.
    resumed = _batches(faces, mining, start_step=3, n=2)
    for (a, la), (b, lb) in zip(full[3:], resumed, strict=True):
        assert np.array_equal(a, b) and np.array_equal(la, lb)

    # Consecutive steps, and another seed, give other batches.
    assert not np.array_equal(full[0][0], full[1][0])
    other = _batches(faces, mining, seed=1, n=1)
    assert not np.array_equal(full[0][0], other[0][0])
