"""What verification itself can do for a face lit from one side, measured on the
robustness suite's side-light row: the same 300 + 300 validation pairs and the same
degraded pictures as `facelib evaluate --robustness`, only the treatment of the
degraded crop changes.

    python bench/side_light_fixes.py RUN [RUN…]            # print the table
    python bench/side_light_fixes.py RUN [RUN…] --write    # and put it in docs/recipes.md

Each variant, on the crops `quality.face_conditions` finds outside LFW's light (the
others go through as they are, as in verify):
- no correction; verify's gamma curve (`quality.light_corrected`, what ships);
- a gamma curve per half of the face (left and right each to mid-grey), blended across
  the middle fifth;
- a gamma per pixel from the light around it (the grey crop blurred by 0.3 of its side);
- the shadowed half replaced by the lit half's mirror image, then verify's gamma if the
  mirrored crop is still outside LFW's light;
- the clean picture's crop geometry (where the face was found before the shadow), then
  the gamma: how much of the row's loss is where the crop falls, not what it shows.
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


def _gamma_to_mid_grey(crop: np.ndarray, brightness: float) -> np.ndarray:
    level = min(max(brightness, 1.0), 254.0) / 255.0
    return np.clip(255.0 * (crop.astype(np.float32) / 255.0) ** (np.log(0.5) / np.log(level)), 0, 255)


def _halves_means(crop: np.ndarray) -> tuple[float, float]:
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    side = grey.shape[0]
    middle = grey[round(0.2 * side) : round(0.8 * side), round(0.2 * side) : round(0.8 * side)]
    half = middle.shape[1] // 2
    return float(middle[:, :half].mean()), float(middle[:, half:].mean())


def gamma_per_half(crop: np.ndarray) -> np.ndarray:
    left, right = (_gamma_to_mid_grey(crop, m) for m in _halves_means(crop))
    x = (np.arange(crop.shape[1]) + 0.5) / crop.shape[1]
    weight = np.clip((0.6 - x) / 0.2, 0, 1)[None, :, None]
    return (left * weight + right * (1 - weight)).astype(np.uint8)


def gamma_per_pixel(crop: np.ndarray, spread: float = 0.3) -> np.ndarray:
    grey = cv2.cvtColor(np.asarray(crop, np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    light = np.clip(cv2.GaussianBlur(grey, (0, 0), spread * crop.shape[0]), 1 / 255, 254 / 255)
    gamma = (np.log(0.5) / np.log(light))[:, :, None]
    return np.clip(255.0 * (crop.astype(np.float32) / 255.0) ** gamma, 0, 255).astype(np.uint8)


def lit_half_mirrored(crop: np.ndarray, blend: float = 0.1) -> np.ndarray:
    left, right = _halves_means(crop)
    x = (np.arange(crop.shape[1]) + 0.5) / crop.shape[1]
    keep = (0.5 + blend - x) if left > right else (x - 0.5 + blend)
    weight = np.clip(keep / (2 * blend), 0, 1)[None, :, None]
    return np.clip(crop * weight + crop[:, ::-1] * (1 - weight), 0, 255).astype(np.uint8)


VARIANTS = ["clean picture", "no correction", "gamma (verify)", "gamma per half", "gamma per pixel",
            "lit half mirrored", "clean picture's crop"]  # fmt: skip


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
            "gamma (verify)": quality.light_corrected(crop, conditions),
            "gamma per half": gamma_per_half(crop),
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


def score(model: str) -> dict:
    from facelib.core.decision import embedding_distance
    from facelib.core.metrics import roc_auc
    from facelib.data.pipeline import embed_arrays, embed_files

    crops, pairs, outside, network, card = variant_crops(model)
    left = embed_files(network, pairs.left_crops, card.input_size)
    aucs = {}
    for name in VARIANTS:
        right = embed_arrays(network, crops[name], card.input_size)
        aucs[name] = roc_auc(embedding_distance(left, right), pairs.same)
        print(f"{model}: {name}: AUC {aucs[name]:.3f}", flush=True)
    return {"model": model, "aucs": aucs, "outside": outside}


def table(results: list[dict], command: str) -> str:
    head = "| model | " + " | ".join(VARIANTS) + " | side-lit crops outside LFW's light |"
    lines = [
        BEGIN,
        f"Written by `{command}`: validation AUC on the suite's side-light row (300 + 300 pairs), "
        "by what verification does to the degraded crop; *clean picture*: the same pairs undegraded.",
        "",
        f"Machine: {machine()}",
        "",
        head,
        "| --- | " + " | ".join(["---:"] * (len(VARIANTS) + 1)) + " |",
    ]
    for r in results:
        cells = " | ".join(f"{r['aucs'][name]:.3f}" for name in VARIANTS)
        lines.append(f"| `{r['model']}` | {cells} | {r['outside']:.0%} |")
    return "\n".join([*lines, END]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--write", action="store_true", help="put the table in docs/recipes.md")
    args = parser.parse_args()
    results = [score(model) for model in args.models]
    command = "python bench/side_light_fixes.py " + " ".join(args.models) + (" --write" if args.write else "")
    text = table(results, command)
    print(text)
    if args.write:
        write_between(BEGIN, END, text)


if __name__ == "__main__":
    main()
