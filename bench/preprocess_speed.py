"""Benchmark: full LFW preprocessing (detect + crop + write) with the Haar detector.

    python bench/preprocess_speed.py [--detector haar] [--limit N]

Runs in a fresh temporary FACELIB_HOME (so nothing is reused), on every core, and
reports it beside a single-core run of the same images in the same run (the ratio
is what survives a noisy machine). Writes the figures to docs/benchmarks.md.
Goal: all 13,233 images in ≤ 90 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", default="haar")
    parser.add_argument("--limit", type=int, help="images (default: all)")
    parser.add_argument("--single-core-sample", type=int, default=1000, help="images for the 1-core run")
    args = parser.parse_args()

    from facelib.data import datasets
    from facelib.data.preprocess import CropSettings, preprocess_dataset

    images_root = datasets.fetch_lfw()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as home:
        os.environ["FACELIB_HOME"] = home
        settings = CropSettings(detector=args.detector)
        full = preprocess_dataset(images_root, settings, limit=args.limit)
        one_core = preprocess_dataset(
            images_root,
            CropSettings(detector=args.detector, size=159),
            limit=args.single_core_sample,
            workers=1,
        )
    per_image_all = full.seconds / full.total * 1000
    per_image_one = one_core.seconds / one_core.total * 1000
    body = f"""
Command: `python bench/preprocess_speed.py --detector {args.detector}` (or `make bench`)
Machine: {machine()}

| run | images | wall time | ms / image | speed-up |
| --- | ---: | ---: | ---: | ---: |
| {cores} workers (all cores) | {full.total:,} | {full.seconds:.1f} s | {per_image_all:.1f} | {per_image_one / per_image_all:.2f}x |
| 1 worker | {one_core.total:,} | {one_core.seconds:.1f} s | {per_image_one:.1f} | 1.00x |

Outcome of the full run: {", ".join(f"{k} {v:,}" for k, v in sorted(full.counts.items()))}.
Goal: full LFW in ≤ 90 s on 2 cores; {"met" if full.total == 13233 and full.seconds <= 90 else "not met" if full.total == 13233 else "not measured (partial run)"}.
"""
    print(body)
    write_section(f"Preprocessing ({args.detector})", body)


if __name__ == "__main__":
    main()
