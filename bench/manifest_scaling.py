"""How building the training stream's index grows with the people of a folder source:
a made-up manifest (the files need not exist) of 1k … 10k people × 50 pictures (10k × 50
is CASIA-WebFace's 500,000 pictures) is read, checked, split into training and held-out
validation people, grouped per person, and made into the tf.data P×K stream
(pipeline.training_dataset: the path table and the sampler; nothing is decoded). Time
and peak memory (tracemalloc: Python's allocations, the index's lists and arrays) per
size, and each as a ratio to the smallest: linear growth gives ratios equal to the size
ratios.

    python bench/manifest_scaling.py [--sizes 1000,2000,5000,10000] [--pictures 50] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

from common import machine, write_section


def build(manifest: Path) -> int:
    from facelib.data import sources
    from facelib.data.pipeline import pk_indices, training_dataset

    rows = sources.read_manifest_file(manifest)
    train, _validation = sources.index_from_manifest(rows, "/made-up", 0.1, 0)
    stream = training_dataset(train, "batch_hard", 16, 2, 64)
    pk_indices(train, 16, 2, 0)(0)  # one batch's indices: the sampler works on this index
    return len(stream.element_spec) + train.images


def measure(people: int, pictures: int, folder: Path) -> tuple[float, float]:
    from facelib.data import sources

    rows = [(f"p{i:05d}/{j:03d}.jpg", f"p{i:05d}", "0" * 64) for i in range(people) for j in range(pictures)]
    manifest = folder / f"{people}.csv"
    sources.write_manifest(manifest, rows)
    del rows
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    build(manifest)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000")
    parser.add_argument("--pictures", type=int, default=50)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    import tensorflow as tf  # loaded before timing: its start-up is no part of the index

    tf.constant(0)
    with tempfile.TemporaryDirectory() as tmp:
        measure(sizes[0], args.pictures, Path(tmp))  # warm-up: first traces, imports
        results = [(n, *measure(n, args.pictures, Path(tmp))) for n in sizes]
    first_n, first_s, first_mb = results[0]
    lines = [
        "| people | pictures | seconds | peak MiB (tracemalloc) | size ratio | time ratio | memory ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, seconds, mb in results:
        lines.append(
            f"| {n:,} | {n * args.pictures:,} | {seconds:.2f} | {mb:.0f} | {n / first_n:.1f} | "
            f"{seconds / first_s:.1f} | {mb / first_mb:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    body = (
        f"`python bench/manifest_scaling.py --sizes {args.sizes} --pictures {args.pictures}` on {machine()}.\n\n"
        "A made-up manifest of a folder source (the files need not exist) read back, checked, split "
        "into training and held-out people, grouped per person and made into the P×K tf.data stream "
        "(the path table and one batch's indices; no picture decoded). Linear growth: the time and "
        "memory ratios follow the size ratio.\n\n" + table
    )
    if not args.no_write:
        write_section("Training index of a folder manifest", body)
        print("written to docs/benchmarks.md")


if __name__ == "__main__":
    main()
