"""Benchmark: what an augmentation costs in training, side by side in one run.

    python bench/augmentation_speed.py [--augmentations basic lighting-mild] [--steps 30] [--rounds 3]

For each augmentation, at the `cpu` preset's size and precision on this machine:
(1) the input pipeline alone (read + decode + augment + P×K), batches drawn as fast as
it gives them; (2) training steps of ResNet50 with batch-hard triplet loss (no CosFace head) fed by that
pipeline, the second of two epochs on one iterator. Each measurement runs in a process
of its own, so that one measurement's pipelines cannot slow the next, and rounds alternate the
augmentations so that a change in the machine's load falls on all of them; the table
gives the median of the rounds and the ratio to the first augmentation. Writes
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def measure(augmentation: str, steps: int) -> dict:
    """One augmentation's input-alone and training images/s, in this process."""
    import keras

    from facelib.core import config
    from facelib.core import machine as facelib_machine
    from facelib.data.pipeline import training_dataset, training_split
    from facelib.recognition.model import build_embedding_model
    from facelib.training.losses import make_loss
    from facelib.training.train import KERAS_POLICIES, TrainConfig, gpu_present
    from facelib.training.training_callbacks import EpochTimer

    cfg = TrainConfig.preset("cpu")
    precision, _ = facelib_machine.resolve_precision(cfg.precision, facelib_machine.read_cpu(), gpu_present())
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    faces = training_split(config.processed_dir() / cfg.crops).train.with_at_least(2)
    batch = cfg.p * cfg.k

    def stream():
        return training_dataset(
            faces, "batch_hard", cfg.p, cfg.k, cfg.input_size, seed=0, augmentation=augmentation
        )

    batches = iter(stream())
    for _ in range(3):  # trace, and fill the prefetch buffer
        next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    input_alone = steps * batch / (time.perf_counter() - start)
    del batches

    keras.utils.set_random_seed(0)
    model = build_embedding_model(cfg.input_size, cfg.embedding_dim)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss=make_loss("batch_hard", cfg.margin, cfg.soft_margin)
    )

    # One iterator over both epochs: the first traces and warms up, the second is timed.
    history = model.fit(stream(), epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[EpochTimer(batch)])
    training = history.history["images_per_second"][-1]
    return dict(
        input=input_alone,
        train=training,
        precision=precision,
        setup=f"the `cpu` preset's input ({cfg.input_size} px, batch {batch}: {cfg.p} people × {cfg.k}, "
        f"crops `{cfg.crops}`), precision {precision}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--augmentations", nargs="+", default=["basic", "lighting-mild"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a measurement's own process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.steps)))
        return

    about = machine()  # the load before the measurements start
    measured = {name: {"input": [], "train": []} for name in args.augmentations}
    setup = ""
    for round_ in range(args.rounds):
        order = args.augmentations if round_ % 2 == 0 else args.augmentations[::-1]
        for name in order:
            done = subprocess.run(
                [sys.executable, __file__, "--one", name, "--steps", str(args.steps)],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            setup = result["setup"]
            measured[name]["input"].append(result["input"])
            measured[name]["train"].append(result["train"])
            print(
                f"round {round_ + 1}, {name}: input {result['input']:.0f} images/s, "
                f"training {result['train']:.1f} images/s",
                flush=True,
            )

    first = args.augmentations[0]
    median = {n: {k: statistics.median(v) for k, v in m.items()} for n, m in measured.items()}
    rows = "\n".join(
        f"| `{name}` | {m['input']:.0f} | {m['input'] / median[first]['input']:.2f} "
        f"| {m['train']:.1f} | {m['train'] / median[first]['train']:.2f} "
        f"| {', '.join(f'{x:.1f}' for x in measured[name]['train'])} |"
        for name, m in median.items()
    )
    spread = max(max(m["train"]) / min(m["train"]) for m in measured.values())
    noise = (
        f"\nThe training rounds of one augmentation differ by up to {spread:.2f}x here.\n"
        if spread > 1.1
        else ""
    )
    body = f"""
Command: `python bench/augmentation_speed.py --augmentations {" ".join(args.augmentations)} --steps {args.steps} --rounds {args.rounds}`
Machine: {about}; {setup}; ResNet50 with batch-hard triplet loss (no CosFace head);
{args.steps} timed steps per measurement, each in a process of its own, median of {args.rounds} alternating rounds.

| augmentation | input alone, images/s | ratio | training, images/s | ratio | training, each round |
| --- | ---: | ---: | ---: | ---: | --- |
{rows}
{noise}"""
    print(body)
    write_section("Augmentation cost in training", body)


if __name__ == "__main__":
    main()
