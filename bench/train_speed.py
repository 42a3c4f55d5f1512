"""Benchmark: training throughput, three ways side by side in one run.

    python bench/train_speed.py [--input-size 112] [--steps 30] [--run models/cpu-batch_hard-112]

(1) bare: ResNet50 train steps on one in-memory batch (no input cost at all);
(2) facelib: the full pipeline (read + decode + augment + P×K sampling + batch-hard step);
(3) seed-style: a Python generator that picks random triplets and reads and resizes
    their images one by one on every step, as the seed project did.
Goals: (2)/(1) ≥ 0.9 and (2)/(3) ≥ 3. With --run, the section also reports that
training run (time, validation AUC, peak memory) from its card. Writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def images_per_second(model, data, batch_images: int, steps: int) -> float:
    model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch_images / (time.perf_counter() - start)


def seed_style_generator(faces, triplets: int, input_size: int, seed: int = 0):
    """The seed's loop: per step, choose triplets in Python and load each image."""
    import cv2

    rng = np.random.default_rng(seed)
    multi = [i for i, c in enumerate(faces.counts) if c >= 2]

    def load(index):
        bgr = cv2.imread(faces.paths[index])
        return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (input_size, input_size)).astype("float32")

    while True:
        anchors, positives, negatives, labels = [], [], [], []
        for _ in range(triplets):
            i = rng.choice(multi)
            j = rng.choice([x for x in range(len(faces.counts)) if x != i])
            a, p = rng.choice(faces.counts[i], 2, replace=False)
            anchors.append(load(faces.offsets[i] + a))
            positives.append(load(faces.offsets[i] + p))
            negatives.append(load(faces.offsets[j] + rng.integers(faces.counts[j])))
            labels.append((i, j))
        images = np.stack(anchors + positives + negatives)
        la, ln = np.array(labels).T
        yield images, np.concatenate([la, la, ln])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--run", type=Path, help="a trained model folder to report")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from facelib.data.pipeline import training_dataset, training_split
    from facelib.data.preprocess import ensure_crops
    from facelib.recognition.card import ModelCard
    from facelib.recognition.model import build_embedding_model
    from facelib.training.losses import make_loss
    from facelib.training.train import TrainConfig

    cfg = TrainConfig.preset("cpu", input_size=args.input_size)
    faces = training_split(ensure_crops(progress=False)).train.with_at_least(2)
    batch = cfg.p * cfg.k
    size = args.input_size

    def compiled(mining: str):
        model = build_embedding_model(size, cfg.embedding_dim)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4), loss=make_loss(mining, cfg.margin, cfg.soft_margin)
        )
        return model

    keras.utils.set_random_seed(0)
    x = tf.random.uniform((batch, size, size, 3), 0, 255)
    y = tf.repeat(tf.range(cfg.p), cfg.k)
    bare = images_per_second(
        compiled("batch_hard"), tf.data.Dataset.from_tensors((x, y)).repeat(), batch, args.steps
    )
    pipeline = training_dataset(faces, "batch_hard", cfg.p, cfg.k, size, seed=0)
    full = images_per_second(compiled("batch_hard"), pipeline, batch, args.steps)
    triplets = batch // 3  # whole triplets, as facelib's random mode
    seed_data = tf.data.Dataset.from_generator(
        lambda: seed_style_generator(faces, triplets, size),
        output_signature=(
            tf.TensorSpec((3 * triplets, size, size, 3), tf.float32),
            tf.TensorSpec((3 * triplets,), tf.int64),
        ),
    )
    seed = images_per_second(compiled("random"), seed_data, 3 * triplets, args.steps)

    run_lines = ""
    if args.run:
        card = ModelCard.load(args.run)
        h = card.history
        run_lines = f"""
Training run `{card.name}` (`facelib train --preset cpu`, its card.json): {h["epochs"]} epochs,
{(card.train_seconds_last_session or 0) / 60:.1f} min in its last session, final validation AUC
{h["final_val_auc"]:.4f} (best {h["best_val_auc"]:.4f}), peak RSS {h["peak_rss_mb"]:,.0f} MB (goal ≤ 6,000 MB).
"""
    body = f"""
Command: `python bench/train_speed.py --input-size {size} --steps {args.steps}{f" --run {args.run}" if args.run else ""}`
Machine: {machine()}; ResNet50, batch {batch} ({cfg.p} identities × {cfg.k}), {size}x{size} px, {args.steps} timed steps each.

| input | images/s | ratio to bare |
| --- | ---: | ---: |
| (1) bare step, in-memory batch | {bare:.1f} | 1.00 |
| (2) facelib pipeline (decode + augment + P×K + batch-hard) | {full:.1f} | {full / bare:.2f} |
| (3) seed-style Python generator (random triplets) | {seed:.1f} | {seed / bare:.2f} |

(2)/(1) = {full / bare:.2f} (goal ≥ 0.9); (2)/(3) = {full / seed:.2f} (goal ≥ 3).
{run_lines}"""
    print(body)
    write_section(f"Training throughput ({size} px)", body)


if __name__ == "__main__":
    main()
