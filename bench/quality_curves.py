"""How verification accuracy falls as a face's quality measure falls: the data behind
the limits of facelib.data.quality.QUALITY_LIMITS.

    python bench/quality_curves.py --model RUN_OR_DIR [--pairs 300] [--out docs/quality_curves.png]

The pairs are the model's validation pairs (people of the training side it never trained
on; robustness.suite_pairs): the left picture is the clean stored crop, the right one the
original picture degraded at one level of one family, then cropped and light-corrected as
`verify` does. Per level: the median of the measure on the right crops (before light
correction, as the quality check sees it), the share of them the check fails and warns,
and the balanced accuracy at the card's threshold. Families:

    blur       Gaussian blur of the picture, σ in px          → sharpness
    darken     the picture's light scaled by a gain            → brightness (exposure)
    downscale  the picture shrunk by a factor (not enlarged)   → face size in px

Writes a plot and (unless --no-doc) the section "Quality and accuracy" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

# family → (measure shown, levels: clean first)
FAMILIES = {
    "blur": ("sharpness", [0.0, 0.75, 1.5, 2.5, 4.0]),
    "darken": ("brightness", [1.0, 0.6, 0.35, 0.2, 0.1]),
    "downscale": ("face_px", [1.0, 0.5, 0.3, 0.2, 0.13]),
}
MEASURE_LABELS = {
    "sharpness": "sharpness (variance of the Laplacian)",
    "brightness": "brightness (0-255)",
    "face_px": "face size (px)",
}


def degraded(rgb, family: str, level: float):
    import cv2
    import numpy as np

    if family == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), level) if level > 0 else rgb
    if family == "darken":
        return np.clip(rgb.astype(np.float32) * level, 0, 255).astype(np.uint8)
    height, width = rgb.shape[:2]
    if level >= 1:
        return rgb
    size = (max(1, round(width * level)), max(1, round(height * level)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def measure_level(network, card, pairs, left, settings, family: str, level: float, threshold: float) -> dict:
    import numpy as np

    from facelib.core.decision import embedding_distance
    from facelib.core.metrics import roc_auc, verdict_accuracy
    from facelib.data.images import load_image
    from facelib.data.pipeline import embed_arrays
    from facelib.data.quality import face_quality, prepare_face

    measure = FAMILIES[family][0]
    detector = settings.make_detector()
    crops, values, statuses, found = [], [], [], []
    for path in pairs.right_pictures:
        face = prepare_face(degraded(load_image(path), family, level), detector, settings)
        quality = face_quality(face.measured, face.info.face)
        values.append(quality.value(measure))
        statuses.append(quality.status)
        found.append(face.info.face is not None)
        crops.append(face.crop)
    right = embed_arrays(network, np.stack(crops), card.input_size)
    distances = embedding_distance(left, right)
    known = [v for v in values if v is not None]
    return {
        "family": family,
        "level": level,
        "measure": measure,
        "median": float(np.median(known)) if known else None,
        # the low tail: where a "low" limit starts to flag the pictures of this level
        "p2": float(np.percentile(known, 2)) if known else None,
        "faces_found": float(np.mean(found)),
        "fail": float(np.mean([s == "fail" for s in statuses])),
        "warn": float(np.mean([s == "warn" for s in statuses])),
        "accuracy": verdict_accuracy(distances, pairs.same, threshold, balanced=True),
        "auc": roc_auc(distances, pairs.same),
    }


def plot(rows: list[dict], limits: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(FAMILIES), figsize=(4.2 * len(FAMILIES), 3.6), sharey=True)
    for axis, (family, (measure, _)) in zip(axes, FAMILIES.items(), strict=True):
        mine = [r for r in rows if r["family"] == family and r["median"] is not None]
        axis.plot([r["median"] for r in mine], [100 * r["accuracy"] for r in mine], "o-", label="accuracy")
        for r in mine:
            axis.annotate(
                f"{r['level']:g}",
                (r["median"], 100 * r["accuracy"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        warn, fail = limits[measure]["low"]  # each family lowers its measure
        axis.axvline(warn, color="orange", ls="--", label=f"warn {warn:g}")
        axis.axvline(fail, color="red", ls="--", label=f"fail {fail:g}")
        if measure in ("sharpness",):
            axis.set_xscale("log")
        axis.set_xlabel(f"median {MEASURE_LABELS[measure]}")
        axis.set_title(family)
        axis.legend(fontsize=7)
    axes[0].set_ylabel("balanced accuracy at the card's threshold (%)")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder or run name")
    parser.add_argument("--pairs", type=int, help="only the first N validation pairs (default: all)")
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "quality_curves.png")
    )
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    from dataclasses import replace

    import numpy as np

    from facelib.core import machine as facelib_machine

    facelib_machine.configure_math("evaluate")
    from facelib.data.crop import CropSettings
    from facelib.data.pipeline import embed_files
    from facelib.data.quality import QUALITY_LIMITS
    from facelib.evaluation.robustness import card_threshold, suite_pairs
    from facelib.recognition.model import load_model_folder, resolve_model_folder

    start = time.perf_counter()
    where = machine()
    folder = resolve_model_folder(args.model)
    network, card = load_model_folder(folder)
    pairs = suite_pairs(card)
    if args.pairs:
        # keep both kinds: the pairs list same then different ones
        keep = np.concatenate(
            [np.flatnonzero(pairs.same)[: args.pairs // 2], np.flatnonzero(~pairs.same)[: args.pairs // 2]]
        )
        pairs = replace(
            pairs,
            left_crops=[pairs.left_crops[i] for i in keep],
            right_pictures=[pairs.right_pictures[i] for i in keep],
            same=pairs.same[keep],
        )
    settings = CropSettings.from_dict(card.crop_settings)
    threshold = card_threshold(card)
    left = embed_files(network, pairs.left_crops, card.input_size)
    rows = []
    for family, (_, levels) in FAMILIES.items():
        for level in levels:
            row = measure_level(network, card, pairs, left, settings, family, level, threshold)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    plot(rows, QUALITY_LIMITS, out)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    table = [
        "| family | level | median measure (2nd percentile) | faces found | check fails | check warns | balanced accuracy | AUC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        median = "—" if r["median"] is None else f"{r['median']:.1f} ({r['p2']:.1f})"
        table.append(
            f"| {r['family']} | {r['level']:g} | {r['measure']} {median} | {100 * r['faces_found']:.0f}% | "
            f"{100 * r['fail']:.0f}% | {100 * r['warn']:.0f}% | {100 * r['accuracy']:.1f}% | {r['auc']:.3f} |"
        )
    limits = "; ".join(
        f"{name} {side} warn {warn:g} / fail {fail:g}"
        for name, sides in QUALITY_LIMITS.items()
        for side, (warn, fail) in sides.items()
    )
    command = f"python bench/quality_curves.py --model {args.model}" + (
        f" --pairs {args.pairs}" if args.pairs else ""
    )
    body = (
        f"Command: `{command}`\n"
        f"Machine: {where}. Model `{folder.name}` (card threshold {threshold:.4f}), "
        f"{len(pairs.same)} validation pairs ({int(pairs.same.sum())} same), "
        f"{time.perf_counter() - start:.0f} s.\n\n"
        "The right picture of each validation pair degraded, cropped and light-corrected as "
        "`verify` does; the measure is the quality check's, on the crop before light correction. "
        f"Limits in use (`QUALITY_LIMITS`): {limits}.\n\n"
        + "\n".join(table)
        + f"\n\n![accuracy against quality]({out.name})\n"
    )
    print("\n".join(table))
    if not args.no_doc:
        write_section("Quality and accuracy", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
