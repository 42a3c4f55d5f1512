"""Which crops should verify's light correction reach? Today the curve per half
(`quality.light_corrected`) treats only the crops `quality.LIMITS` finds outside LFW's
light: dark, washed out, or the darker half under 0.5 of the brighter. This scores wider
rules on the robustness suite's side-light row and on its `none` row (the same 300 + 300
validation pairs, undegraded), so that a gain under side light is not paid for by clean
faces.

    python bench/light_reach.py RUN [RUN…]            # print the table
    python bench/light_reach.py RUN [RUN…] --write    # and put it in docs/recipes.md

Only the pairs' right picture goes through the rule, as in the suite; the left one is the
stored crop. In `verify` both pictures would, so a rule that changes clean faces needs
measuring there too before it ships (the card's threshold was measured without it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from side_light_fixes import paired_gain, run_on_models  # noqa: E402

BEGIN, END = "<!-- light_reach.py table: begin -->", "<!-- light_reach.py table: end -->"
# rule → the side-light ratio under which the curve per half is applied too (None: LIMITS only)
RULES: dict[str, float | None] = {
    "LIMITS (verify)": None,
    "ratio < 0.6": 0.6,
    "ratio < 0.7": 0.7,
    "ratio < 0.8": 0.8,
    "every crop": float("inf"),
}
ROWS = ("none", "lighting")


def treated(crop: np.ndarray, conditions, limit: float | None) -> np.ndarray:
    from facelib.data import quality

    if limit is None:
        return quality.light_corrected(crop, conditions)
    outside = any(w in quality.LIGHT_WARNINGS for w in conditions.warnings())
    if outside or conditions.side_light < limit:
        return quality.curve_per_half(crop, conditions.halves)
    return crop


def score(model: str) -> dict:
    """Per row and rule: AUC, the share of crops the rule treats, and the paired gain
    over what verify does (with its 95% interval)."""
    from facelib.core.decision import embedding_distance
    from facelib.core.metrics import roc_auc
    from facelib.data import quality
    from facelib.data.crop import CropSettings, crop_picture, finish_crop
    from facelib.data.images import load_image
    from facelib.data.pipeline import embed_arrays, embed_files
    from facelib.evaluation.robustness import degrade, suite_pairs
    from facelib.recognition.model import load_model_folder, resolve_model_folder

    network, card = load_model_folder(resolve_model_folder(model))
    settings = CropSettings.from_dict(card.crop_settings)
    detector = settings.make_detector()
    pairs = suite_pairs(card)
    same = np.asarray(pairs.same)
    left = embed_files(network, pairs.left_crops, card.input_size)
    found = {}
    for row in ROWS:
        crops: dict[str, list] = {rule: [] for rule in RULES}
        changed: dict[str, list] = {rule: [] for rule in RULES}
        for index, path in enumerate(pairs.right_pictures):
            crop, info = crop_picture(
                degrade(load_image(path), row, 0, index), detector, settings, finish=False
            )
            conditions = quality.face_conditions(crop, info.face)
            for rule, limit in RULES.items():
                out = treated(crop, conditions, limit)
                changed[rule].append(out is not crop)
                crops[rule].append(finish_crop(out, settings))
        distances = {}
        for rule in RULES:
            right = embed_arrays(network, np.stack(crops[rule]), card.input_size)
            distances[rule] = embedding_distance(left, right)
        verify = next(iter(RULES))
        for rule in RULES:
            gain = paired_gain(distances[rule], distances[verify], same)
            found[(row, rule)] = (roc_auc(distances[rule], same), float(np.mean(changed[rule])), gain)
            auc, share, (g, low, high) = found[(row, rule)]
            print(
                f"{model}: {row}: {rule}: AUC {auc:.3f}, {share:.0%} treated, {g:+.3f} [{low:+.3f}, {high:+.3f}]",
                flush=True,
            )
    return found


def table(results: dict[str, dict], command: str) -> str:
    head = "| model | row | " + " | ".join(RULES) + " |"
    lines = [
        BEGIN,
        f"Written by `{command}`: validation AUC of the suite's `none` row (clean) and side-light "
        "row (300 + 300 pairs each), by which crops get the curve per half; only the right "
        "picture of each pair is treated. Each cell: AUC (share of the row's crops treated; "
        "the difference from what verify does on the same pairs, 95% interval from 1,000 draws "
        "of the pairs).",
        "",
        f"Machine: {machine()}",
        "",
        head,
        "| --- | --- | " + " | ".join(["---:"] * len(RULES)) + " |",
    ]
    for model, found in results.items():
        for row in ROWS:
            cells = []
            for rule in RULES:
                auc, share, (gain, low, high) = found[(row, rule)]
                delta = "" if rule == next(iter(RULES)) else f"; {gain:+.3f} [{low:+.3f}, {high:+.3f}]"
                cells.append(f"{auc:.3f} ({share:.0%}{delta})")
            lines.append(
                f"| `{model}` | {'clean' if row == 'none' else 'side light'} | " + " | ".join(cells) + " |"
            )
    return "\n".join([*lines, END]) + "\n"


def main() -> None:
    run_on_models(__doc__.split("\n\n")[0], "light_reach.py", score, table, BEGIN, END)


if __name__ == "__main__":
    main()
