"""Benchmark: TensorFlow's oneDNN kernels on and off, for each kind of work facelib does.

    python bench/math_speed.py [--rounds 2] [--sizes 64 112] [--isa AVX2] [--no-write]

Each setting runs in a process of its own (TF_ENABLE_ONEDNN_OPTS is read once, when
TensorFlow loads), alternating on/off for --rounds rounds, so that a noisy machine
hurts both alike. Per setting and input size: the ResNet50 train step (P×K = 32
pictures, AdamW, one compiled step, random input) in float32 and, where the CPU runs it
natively, mixed bfloat16 (with oneDNN only: without it bfloat16 runs on slow generic
kernels), in images/s; the compiled embedding of 2 crops (what `verify`
and the dashboard run) in ms, p50, also compiled by XLA (jit_compile); and batched embedding (64 crops, what `evaluate`
and training's validation run) in images/s. The best round of each is kept.
`--isa AVX2` caps oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA) to approximate a CPU without
AVX-512: oneDNN's own code then matches such a CPU; the clock and the caches do not.
Writes the section "oneDNN per kind of work" of docs/benchmarks.md; facelib.core.machine's
rule is read off these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def median_ms(embed, images, warmup: int = 5, calls: int = 40) -> float:
    """The median time of `embed(images)` after a warm-up, in ms."""
    import time

    import numpy as np

    for _ in range(warmup):
        embed(images).numpy()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        embed(images).numpy()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def measure(sizes: list[int], bfloat16: bool, steps: int) -> dict:
    """Runs in the child process: every figure for one oneDNN setting."""
    import time

    from facelib.core import machine as facelib_machine  # first: it sets oneDNN before TensorFlow loads

    import numpy as np  # isort: skip
    import tensorflow as tf  # isort: skip

    from facelib.app.doctor import time_train_step
    from facelib.recognition.model import build_embedding_model

    results = {"onednn": facelib_machine.onednn_state()}
    rng = np.random.default_rng(0)
    for size in sizes:
        for precision in ["float32", *(["bfloat16"] if bfloat16 else [])]:
            results[f"train {size} {precision}"] = time_train_step(size, precision, 32, steps)
        model = build_embedding_model(size, 128, None, "l2")
        embed = tf.function(lambda x, m=model: m(x, training=False))
        pair = tf.constant(rng.uniform(0, 255, (2, size, size, 3)).astype("float32"))
        batch = tf.constant(rng.uniform(0, 255, (64, size, size, 3)).astype("float32"))
        results[f"pair {size}"] = median_ms(embed, pair)
        xla = tf.function(lambda x, m=model: m(x, training=False), jit_compile=True)
        results[f"pair {size} XLA"] = median_ms(xla, pair)
        embed(batch).numpy()
        start = time.perf_counter()
        for _ in range(3):
            embed(batch).numpy()
        results[f"batch {size}"] = 3 * 64 / (time.perf_counter() - start)
    return results


def run_child(onednn: str, args: argparse.Namespace, bfloat16: bool) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("FACELIB_ONEDNN_CHOICE", None)  # the setting given here is the one measured
    if args.isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.isa
    command = [
        sys.executable,
        __file__,
        "--child",
        "--steps",
        str(args.steps),
        "--sizes",
        *map(str, args.sizes),
    ]
    if bfloat16:
        command.append("--bfloat16")
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="timed train steps per figure")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112])
    parser.add_argument("--isa", help="cap oneDNN's instruction set, e.g. AVX2 (ONEDNN_MAX_CPU_ISA)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bfloat16", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.sizes, args.bfloat16, args.steps)))
        return

    from facelib.core import machine as facelib_machine

    cpu = facelib_machine.read_cpu()
    # Emulated bfloat16 runs about 10x slower than float32 (the AVX2 figures):
    # timed only where the CPU has it, unless oneDNN is capped below it on purpose.
    bfloat16 = cpu.native_bfloat16 and not args.isa
    best: dict[str, dict[str, float]] = {"0": {}, "1": {}}
    for round_ in range(args.rounds):
        for onednn in ("1", "0") if round_ % 2 else ("0", "1"):
            # bfloat16 without oneDNN falls back to slow generic kernels: never a choice.
            figures = run_child(onednn, args, bfloat16 and onednn == "1")
            print(f"round {round_ + 1}, TF_ENABLE_ONEDNN_OPTS={onednn}: {figures}", flush=True)
            for key, value in figures.items():
                if key == "onednn":
                    continue
                keep = min if key.startswith("pair") else max
                best[onednn][key] = keep(best[onednn].get(key, value), value)

    def row(key: str, unit: str) -> str:
        off, on = best["0"].get(key), best["1"][key]
        if off is None:
            return f"| {key} | not timed | {on:.1f} {unit} | |"
        ratio = on / off if unit != "ms" else off / on  # > 1: oneDNN is faster
        return f"| {key} | {off:.1f} {unit} | {on:.1f} {unit} | {ratio:.2f}x |"

    rows = [row(k, "ms" if k.startswith("pair") else "img/s") for k in best["1"]]
    isa = f", oneDNN capped at {args.isa} (ONEDNN_MAX_CPU_ISA)" if args.isa else ""
    body = "\n".join(
        [
            f"`python bench/math_speed.py --rounds {args.rounds} --sizes {' '.join(map(str, args.sizes))}"
            f"{' --isa ' + args.isa if args.isa else ''}` on {machine()}; CPU flags: "
            f"{', '.join(cpu.flags) or 'none of note'}{isa}.",
            "",
            "Best of the rounds, off and on alternating, each in a process of its own. train: a ResNet50 "
            "step on 32 pictures; pair: the compiled embedding of 2 crops (verify, the dashboard), p50; "
            "batch: 64 crops at once (evaluate, validation). speed-up > 1: oneDNN is faster.",
            "",
            "| work, input px, precision | oneDNN off | oneDNN on | speed-up with oneDNN |",
            "| --- | ---: | ---: | ---: |",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        title = "oneDNN per kind of work" + (f" ({args.isa} cap)" if args.isa else "")
        write_section(title, body)


if __name__ == "__main__":
    main()
