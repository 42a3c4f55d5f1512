"""How often each condition of facelib.data.quality flags a face: on LFW's validation
pictures as they are, and under each degradation of the robustness suite.

    python bench/conditions.py [--model RUN]     # RUN's validation pictures; default robust-cpu

A limit is right when it flags few clean LFW pictures (the conditions the threshold was
measured in) and many of the degraded ones it is meant to catch. Writes the section
"Picture conditions" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

ROWS = ["none", "lighting", "scale", "rotation", "turn", "loose"]
LABELS = ["dark", "washed out", "lit from one side", "small face", "turned", "any"]


def main() -> None:
    import numpy as np

    from facelib.core import config
    from facelib.data.crop import CropSettings, crop_picture
    from facelib.data.images import load_image
    from facelib.data.quality import LIMITS, face_conditions
    from facelib.evaluation.robustness import degrade, suite_pairs
    from facelib.recognition.card import ModelCard

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="robust-cpu")
    args = parser.parse_args()
    card = ModelCard.load(config.models_dir() / args.model)
    pictures = suite_pairs(card).right_pictures
    policies = {"haar": CropSettings(), "yunet": CropSettings(detector="yunet")}
    lines = []
    for label, settings in policies.items():
        detector = settings.make_detector()
        lines += [
            f"\n{label} crop policy, share of the {len(pictures)} pictures flagged:\n",
            "| suite row | " + " | ".join(LABELS) + " |",
            "| --- |" + " ---: |" * len(LABELS),
        ]
        for row in ROWS:
            counts = np.zeros(len(LABELS))
            for index, path in enumerate(pictures):
                crop, info = crop_picture(degrade(load_image(path), row, 0, index), detector, settings)
                warnings = face_conditions(crop, info.face).warnings()
                for i, name in enumerate(LABELS[:-1]):
                    counts[i] += any(w.startswith(name) for w in warnings)
                counts[-1] += bool(warnings)
            lines.append(f"| {row} | " + " | ".join(f"{100 * c / len(pictures):.1f}%" for c in counts) + " |")
        print("\n".join(lines[-len(ROWS) - 3 :]), flush=True)
    body = (
        "`python bench/conditions.py`: how often each limit of `facelib.data.quality.LIMITS` "
        f"({', '.join(f'{k} {v}' for k, v in LIMITS.items())}) flags a face, on the validation "
        f"pictures of `{args.model}`'s robustness suite (row `none`: LFW as it is) and under its "
        f"degradations. Turned needs landmarks: only the yunet policy measures it.\n\nMachine: {machine()}\n"
        + "\n".join(lines)
    )
    write_section("Picture conditions", body)


if __name__ == "__main__":
    main()
