"""The `facelib` command.

    facelib fetch [--variant lfw-deepfunneled]
    facelib preprocess [--detector haar|yunet] [--size 160] [--no-align] [--no-face fallback|skip]
                       [--limit N] [--preset smoke|cpu|gpu] [--workers N]

Errors print one line, `error: …`, on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import sys

from facelib import config, datasets
from facelib.errors import FacelibError


def cmd_fetch(args: argparse.Namespace) -> None:
    files = datasets.fetch_protocol_files()
    print(f"protocol files: {', '.join(files)} in {datasets.lfw_dir()}")
    images_root = datasets.fetch_lfw(args.variant)
    print(f"images: {images_root}")
    print(f"census: {datasets.census(images_root).summary()}")


def cmd_preprocess(args: argparse.Namespace) -> None:
    from facelib.preprocess import CropSettings, preprocess_dataset

    settings = CropSettings(
        detector=args.detector, size=args.size, margin=args.margin, align=args.align, no_face=args.no_face
    )
    limit = args.limit if args.limit is not None else config.preset(args.preset).preprocess_limit
    images_root = datasets.fetch_lfw(args.variant)
    print(preprocess_dataset(images_root, settings, variant=args.variant, limit=limit, workers=args.workers))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facelib", description="Face verification trained on LFW.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    fetch = verbs.add_parser(
        "fetch", help="download (or copy from FACELIB_MIRROR) LFW and its protocol files"
    )
    fetch.add_argument("--variant", choices=list(datasets.VARIANTS), default=datasets.default_variant())
    fetch.set_defaults(run=cmd_fetch)

    prep = verbs.add_parser("preprocess", help="detect, crop and resize every face into data/processed/")
    prep.add_argument("--variant", choices=list(datasets.VARIANTS), default=datasets.default_variant())
    prep.add_argument("--detector", choices=["haar", "yunet"], default="haar")
    prep.add_argument("--size", type=int, default=160, help="side of the stored square crops (pixels)")
    prep.add_argument("--margin", type=float, default=0.2, help="margin around the face box, as a fraction")
    prep.add_argument("--no-align", dest="align", action="store_false", help="do not level the eyes")
    prep.add_argument("--no-face", choices=["fallback", "skip"], default="fallback")
    prep.add_argument("--limit", type=int, help="only the first N images (default: the preset's)")
    prep.add_argument("--preset", choices=list(config.PRESETS), help="default: $FACELIB_PRESET or cpu")
    prep.add_argument("--workers", type=int, help="processes (default: one per core)")
    prep.set_defaults(run=cmd_preprocess)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except FacelibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
