"""Recipe screening: which training changes pay, one change at a time, at one budget.

    python bench/recipes.py list                 # the recipes and the command of each
    python bench/recipes.py train NAME [NAME…]   # train models/recipe-NAME (resumable)
    python bench/recipes.py table                # rebuild docs/recipes.md from models/recipe-*/

Every recipe is the `cpu-v1` preset (the `cpu` preset before this study) plus the settings listed here, trained for the same
number of images (SCREEN: 4 epochs × 300 steps × 32 images), so rows differ only by
what the recipe changes. Ranking is by validation AUC on held-out *training-side*
people (View 1 `peopleDevTrain.txt`), never by the test pairs; finalists are scored
on View 1/View 2 once, with `facelib evaluate`, and the table shows those figures
where `models/recipe-NAME/eval/metrics.json` exists.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
SCREEN = {"epochs": 4, "steps_per_epoch": 300}
LEARNED = "## What was learned"

# name → (parent recipe, what changes, settings relative to the parent)
RECIPES: dict[str, tuple[str | None, str, dict]] = {
    "base-112": (None, "the `cpu-v1` preset, at the screening budget", {}),
    "bf16-64": ("base-112", "64 px input, mixed_bfloat16", {"input_size": 64, "bfloat16": True}),
    "bf16-80": ("base-112", "80 px input, mixed_bfloat16", {"input_size": 80, "bfloat16": True}),
    "hinge": (
        "bf16-64",
        "batch-hard with a hinge margin 0.2 instead of the soft margin",
        {"soft_margin": False},
    ),
    "five-point": (
        "hinge",
        "crops aligned on YuNet's 5 landmarks (`facelib preprocess --detector yunet --five-point --margin 0.1`)",
        {"crops": "lfw-deepfunneled-yunet-160-5pt"},
    ),
    "cosface": (
        "hinge",
        "+ CosFace head (s 30, m 0.35) over the training identities",
        {"classifier": "cosface"},
    ),
    "p16k2": ("cosface", "P16 × K2 instead of P8 × K4 (same 32 images)", {"p": 16, "k": 2}),
    "adamw": (
        "p16k2",
        "AdamW, peak 2e-3, weight decay 5e-4, 200 warm-up steps",
        {"optimizer": "adamw", "learning_rate": 2e-3, "weight_decay": 5e-4, "warmup_steps": 200},
    ),
    "strong-aug": (
        "adamw",
        "stronger augmentation: crops of 60–100%, colour jitter, a fifth grey, a fifth blurred",
        {"augmentation": "strong"},
    ),
}


def settings(name: str) -> dict:
    parent, _, own = RECIPES[name]
    return {**(settings(parent) if parent else {}), **own}


def command(name: str, budget: dict | None = None) -> list[str]:
    values = {**(budget or SCREEN), **settings(name)}
    sets = [f"--set={k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]
    return ["facelib", "train", "--preset", "cpu-v1", "--name", f"recipe-{name}", "--resume", *sets]


def history(folder: Path) -> list[dict]:
    path = folder / "history.csv"
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def row(name: str, folder: Path) -> str:
    # Runs made before validation people were drawn independently of the crops
    # (commit 5a66679) were moved to recipe-v1-NAME: compare them only with each other.
    old_split = name.startswith("v1-")
    name = name.removeprefix("v1-")
    parent, change, _ = RECIPES.get(name, (None, "?", {}))
    rows = history(folder)
    if not rows:
        return ""
    auc = [float(r["val_auc"]) for r in rows]
    speed = [float(r["images_per_second"]) for r in rows if r.get("images_per_second")]
    speed = speed[1:] or speed  # the first epoch also builds the graph
    minutes = sum(float(r.get("train_seconds") or 0) for r in rows) / 60
    finished = (folder / "model.keras").is_file()
    test = ""
    metrics = folder / "eval" / "metrics.json"
    if metrics.is_file():
        by = {r["protocol"]: r for r in json.loads(metrics.read_text())["rows"]}
        v1 = by.get("view1")
        if v1:
            test = (
                f"{100 * v1['accuracy_mean']:.1f} ± {100 * v1['accuracy_std']:.1f}%, AUC {v1['auc']:.3f}, "
                f"EER {100 * v1['eer']:.1f}%, TAR@FAR=1e-2 {100 * v1['tar_at_far_1e2']:.1f}%"
            )
    return (
        f"| `{name}`{' (v1 split)' if old_split else ''} | {parent or ''} | {change} | {len(rows)}{'' if finished else ' (running)'} | "
        f"{minutes:.0f} | {statistics.median(speed) if speed else float('nan'):.1f} | "
        f"{auc[-1]:.3f} | {max(auc):.3f} | {test} |"
    )


def table(models: Path) -> str:
    lines = [
        "| recipe | parent | change | epochs | train minutes | images/s | val AUC (last) | val AUC (best) | View 1 test (finalists only) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for folder in sorted(models.glob("recipe-*")):
        line = row(folder.name.removeprefix("recipe-"), folder)
        if line:
            lines.append(line)
    commands = "\n".join(f"    {' '.join(command(n))}" for n in RECIPES)
    return (
        "# Training recipes\n\n"
        "Written by `python bench/recipes.py table` from the runs under `models/recipe-*/`.\n"
        f"Screening budget: {SCREEN['epochs']} epochs × {SCREEN['steps_per_epoch']} steps × 32 images. "
        "Validation AUC is measured on held-out training-side people (300 same + 300 different pairs). "
        "Rows marked *v1 split* held out other people (chosen before commit 5a66679, from the people "
        "with two usable Haar crops): compare them only with each other.\n"
        "Minutes and images/s are the training steps alone (images/s: the median of the epochs after the "
        "first, which also builds the graph), on the machine below; they are only comparable "
        'between rows run under the same load. The text from "What was learned" on is written by hand.\n\n'
        f"Machine: {machine()}\n\n" + "\n".join(lines) + "\n\nCommands (each row):\n\n" + commands + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list")
    tr = verbs.add_parser("train")
    tr.add_argument("names", nargs="+", choices=list(RECIPES))
    tb = verbs.add_parser("table")
    tb.add_argument("--models", type=Path)
    args = parser.parse_args()

    if args.verb == "list":
        for name, (_parent, change, _) in RECIPES.items():
            print(f"{name:10} {change}\n           {' '.join(command(name))}")
    elif args.verb == "train":
        bin_dir = Path(sys.executable).parent
        for name in args.names:
            cmd = command(name)
            print("$", " ".join(cmd), flush=True)
            subprocess.run([str(bin_dir / cmd[0]), *cmd[1:]], check=True)
    else:
        from facelib.core import config

        text = table(args.models or config.models_dir())
        # The hand-written findings below the table stay as they are.
        old = DOC.read_text() if DOC.exists() else ""
        learned = old[old.index(LEARNED) :] if LEARNED in old else f"{LEARNED}\n\n(nothing yet)\n"
        DOC.write_text(text + "\n" + learned)
        print(text)


if __name__ == "__main__":
    main()
