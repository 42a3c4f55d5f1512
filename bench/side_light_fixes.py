"""What verification itself can do for a face lit from one side, measured on the
robustness suite's side-light row: the same 300 + 300 validation pairs and the same
degraded pictures as `facelib evaluate --robustness`, only the treatment of the
degraded crop changes.

    python bench/side_light_fixes.py RUN [RUN…]            # print the table
    python bench/side_light_fixes.py RUN [RUN…] --write    # and put it in docs/recipes.md

Each variant, on the crops `quality.face_conditions` finds outside LFW's light (the
others go through as they are, as in verify):
- no correction; one gamma curve over the crop to mid-grey (`quality.one_curve`, verify's
  correction until this bench);
- a gamma curve per half of the face (left and right each to mid-grey), blended across
  the middle fifth (`quality.curve_per_half`, verify's correction since);
- a gamma per pixel from the light around it (the grey crop blurred by 0.3 of its side);
- the shadowed half replaced by the lit half's mirror image, then verify's correction if
  the mirrored crop is still outside LFW's light;
- the clean picture's crop geometry (where the face was found before the shadow), then
  verify's correction: how much of the row's loss is where the crop falls, not what it shows.

The last column is the curve per half against the one curve on the same pairs, with a
95% interval from resampling the pairs (1,000 draws).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from robust_recipes import write_between  # noqa: E402  (the same docs/recipes.md, between markers)

BEGIN, END = "<!-- side_light_fixes.py table: begin -->", "<!-- side_light_fixes.py table: end -->"


def gamma_per_pixel(crop: np.ndarray, spread: float = 0.3) -> np.ndarray:
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    light = np.clip(cv2.GaussianBlur(grey, (0, 0), spread * crop.shape[0]), 1 / 255, 254 / 255)
    gamma = (np.log(0.5) / np.log(light))[:, :, None]
    return np.clip(255.0 * (crop.astype(np.float32) / 255.0) ** gamma, 0, 255).astype(np.uint8)


def lit_half_mirrored(crop: np.ndarray, blend: float = 0.1) -> np.ndarray:
    from facelib.data.quality import face_conditions

    left, right = face_conditions(crop, None).halves
    x = (np.arange(crop.shape[1]) + 0.5) / crop.shape[1]
    keep = (0.5 + blend - x) if left > right else (x - 0.5 + blend)
    weight = np.clip(keep / (2 * blend), 0, 1)[None, :, None]
    return np.clip(crop * weight + crop[:, ::-1] * (1 - weight), 0, 255).astype(np.uint8)


VARIANTS = ["clean picture", "no correction", "one curve", "curve per half (verify)", "gamma per pixel",
            "lit half mirrored", "clean picture's crop"]  # fmt: skip
GAIN = ("curve per half (verify)", "one curve")  # the column of the resampled difference


def variant_crops(model: str) -> tuple[dict[str, np.ndarray], object, float, object, object]:
    """Every variant's crops of the side-lit pictures, the pairs' verdicts, the share of
    side-lit crops found outside LFW's light, and the network and card."""
    from facelib.data import quality
    from facelib.data.crop import CropSettings, crop_face, crop_five_point, crop_picture, finish_crop
    from facelib.data.images import load_image
    from facelib.evaluation.robustness import degrade, suite_pairs
    from facelib.recognition.model import load_model_folder, resolve_model_folder

    network, card = load_model_folder(resolve_model_folder(model))
    settings = CropSettings.from_dict(card.crop_settings)
    detector = settings.make_detector()
    pairs = suite_pairs(card)
    crops: dict[str, list] = {name: [] for name in VARIANTS}
    outside = []
    for index, path in enumerate(pairs.right_pictures):
        clean = load_image(path)
        shaded = degrade(clean, "lighting", 0, index)
        crop, info = crop_picture(shaded, detector, settings, finish=False)
        conditions = quality.face_conditions(crop, info.face)
        is_outside = any(w in quality.LIGHT_WARNINGS for w in conditions.warnings())
        outside.append(is_outside)
        fixed = {
            "one curve": quality.one_curve(crop, conditions.brightness),
            "curve per half (verify)": quality.light_corrected(crop, conditions),
            "gamma per pixel": gamma_per_pixel(crop),
            "lit half mirrored": quality.light_corrected(
                mirrored := lit_half_mirrored(crop), quality.face_conditions(mirrored, None)
            ),
        }
        for name, treated in fixed.items():
            crops[name].append(treated if is_outside else crop)
        crops["no correction"].append(crop)
        clean_crop, clean_info = crop_picture(clean, detector, settings, finish=False)
        clean_conditions = quality.face_conditions(clean_crop, clean_info.face)
        crops["clean picture"].append(quality.light_corrected(clean_crop, clean_conditions))
        placed = crop
        if clean_info.face is not None:
            placed = (crop_five_point(shaded, clean_info.face, settings.size, settings.margin)
                      if settings.five_point else None)  # fmt: skip
            if placed is None:
                placed = crop_face(shaded, clean_info.face, settings.size, settings.margin, settings.align)
        crops["clean picture's crop"].append(
            quality.light_corrected(placed, quality.face_conditions(placed, clean_info.face))
        )
    finished = {name: np.stack([finish_crop(c, settings) for c in found]) for name, found in crops.items()}
    return finished, pairs, float(np.mean(outside)), network, card


def paired_gain(
    better: np.ndarray, base: np.ndarray, same: np.ndarray, draws: int = 1000
) -> tuple[float, float, float]:
    """AUC of the `better` distances minus the `base` ones on the same pairs, and its 95%
    interval over pairs drawn again with replacement (both scored on each draw)."""
    from facelib.core.metrics import roc_auc

    rng = np.random.default_rng(0)
    gains = []
    for _ in range(draws):
        pick = rng.integers(0, len(same), len(same))
        if same[pick].all() or not same[pick].any():
            continue
        gains.append(roc_auc(better[pick], same[pick]) - roc_auc(base[pick], same[pick]))
    low, high = np.percentile(gains, [2.5, 97.5])
    return roc_auc(better, same) - roc_auc(base, same), float(low), float(high)


def score(model: str) -> dict:
    from facelib.core.decision import embedding_distance
    from facelib.core.metrics import roc_auc
    from facelib.data.pipeline import embed_arrays, embed_files

    crops, pairs, outside, network, card = variant_crops(model)
    left = embed_files(network, pairs.left_crops, card.input_size)
    aucs, distances = {}, {}
    for name in VARIANTS:
        right = embed_arrays(network, crops[name], card.input_size)
        distances[name] = embedding_distance(left, right)
        aucs[name] = roc_auc(distances[name], pairs.same)
        print(f"{model}: {name}: AUC {aucs[name]:.3f}", flush=True)
    gain = paired_gain(*(distances[name] for name in GAIN), np.asarray(pairs.same))
    print(f"{model}: {GAIN[0]} − {GAIN[1]}: {gain[0]:+.3f} [{gain[1]:+.3f}, {gain[2]:+.3f}]", flush=True)
    return {"model": model, "aucs": aucs, "outside": outside, "gain": gain}


def table(results: dict[str, dict], command: str) -> str:
    head = (
        "| model | " + " | ".join(VARIANTS) + " | side-lit crops outside LFW's light | "
        f"{GAIN[0]} − {GAIN[1]} [95%] |"
    )
    lines = [
        BEGIN,
        f"Written by `{command}`: validation AUC on the suite's side-light row (300 + 300 pairs), "
        "by what verification does to the degraded crop; *clean picture*: the same pairs undegraded. "
        "Last column: the difference on the same pairs, with a 95% interval from 1,000 draws of the pairs.",
        "",
        f"Machine: {machine()}",
        "",
        head,
        "| --- | " + " | ".join(["---:"] * (len(VARIANTS) + 2)) + " |",
    ]
    for r in results.values():
        cells = " | ".join(f"{r['aucs'][name]:.3f}" for name in VARIANTS)
        gain, low, high = r["gain"]
        lines.append(
            f"| `{r['model']}` | {cells} | {r['outside']:.0%} | {gain:+.3f} [{low:+.3f}, {high:+.3f}] |"
        )
    return "\n".join([*lines, END]) + "\n"


def run_on_models(description: str, script: str, score, table, begin: str, end: str) -> None:
    """The command line of a bench that scores each model named and writes one table
    (with --write, between `begin` and `end` in docs/recipes.md)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--write", action="store_true", help="put the table in docs/recipes.md")
    args = parser.parse_args()
    results = {model: score(model) for model in args.models}
    command = f"python bench/{script} " + " ".join(args.models) + (" --write" if args.write else "")
    text = table(results, command)
    print(text)
    if args.write:
        write_between(begin, end, text)


def main() -> None:
    run_on_models(__doc__.split("\n\n")[0], "side_light_fixes.py", score, table, BEGIN, END)


if __name__ == "__main__":
    main()
