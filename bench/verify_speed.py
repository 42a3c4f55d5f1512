"""Benchmark: end-to-end `verify` latency against two bare embeddings, in one run.

    python bench/verify_speed.py [--model DIR] [--pairs 200]

For LFW View 1 test pairs: (a) `FaceVerifier.verify(path1, path2)`: read, decode,
detect, crop and embed both pictures; (b) the model alone on the two ready crops,
through the same compiled function verify uses (the fair baseline); (c) the same
model called eagerly, as facelib did before. Reports p50 and p95, the verify/bare
ratio (goal ≤ 1.5x) and the p50 goal (≤ 60 ms), and batched `embed` throughput.
Writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()

    import tensorflow as tf

    from facelib import datasets
    from facelib.pipeline import eval_transform
    from facelib.verification import FaceVerifier

    verifier = FaceVerifier(args.model)
    root = datasets.fetch_lfw()
    pairs = datasets.view1_pairs("test")[: args.pairs]
    crops = {}
    end_to_end, bare, eager = [], [], []
    for pair in pairs:
        a, b = pair.left.path(root), pair.right.path(root)
        try:
            start = time.perf_counter()
            verifier.verify(a, b)
            end_to_end.append(time.perf_counter() - start)
        except Exception:  # no face in one picture: not a latency sample
            continue
        for path in (a, b):
            if path not in crops:
                crops[path] = verifier.face_crop(path)[0]
        # the model alone on the same two ready crops: compiled, then eager
        ready = np.stack([crops[p].astype(np.float32) for p in (a, b)])
        start = time.perf_counter()
        verifier._compiled(ready).numpy()
        bare.append(time.perf_counter() - start)
        batch = tf.stack(
            [eval_transform(tf.constant(crops[p], tf.float32), verifier.input_size) for p in (a, b)]
        )
        start = time.perf_counter()
        verifier.model(batch, training=False).numpy()
        eager.append(time.perf_counter() - start)

    images = [pair.left.path(root) for pair in pairs[:64]]
    verifier.embed(images[:8])  # warm-up
    start = time.perf_counter()
    verifier.embed(images)
    throughput = len(images) / (time.perf_counter() - start)

    p = lambda xs, q: 1000 * float(np.percentile(xs[5:], q))  # noqa: E731  (first calls warm up)
    body = f"""
Command: `python bench/verify_speed.py{f" --model {args.model}" if args.model else ""} --pairs {args.pairs}`
Machine: {machine()}; model `{verifier.folder.name}` ({verifier.input_size} px), detector {verifier.detector.name};
{len(end_to_end)} View 1 test pairs with a face in both pictures.

| | p50 | p95 |
| --- | ---: | ---: |
| `verify(a.jpg, b.jpg)`: read + decode + detect + crop + 2 embeddings | {p(end_to_end, 50):.1f} ms | {p(end_to_end, 95):.1f} ms |
| the model alone on the 2 ready crops, compiled (what verify runs) | {p(bare, 50):.1f} ms | {p(bare, 95):.1f} ms |
| ratio verify / compiled model | {p(end_to_end, 50) / p(bare, 50):.2f}x | {p(end_to_end, 95) / p(bare, 95):.2f}x |
| the model alone, called eagerly (facelib before the compiled path) | {p(eager, 50):.1f} ms | {p(eager, 95):.1f} ms |

Goals: `verify` p50 ≤ 60 ms ({"met" if p(end_to_end, 50) <= 60 else "not met"} here), ratio ≤ 1.5x at p50. Batched `embed` of {len(images)} pictures (detection included): {throughput:.1f} images/s.
"""
    print(body)
    write_section("Verification latency", body)


if __name__ == "__main__":
    main()
