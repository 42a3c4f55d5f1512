"""Fine-tuning a trained model on a folder of people, over several seeds.

    python bench/fine_tune.py folder                              # the folder: FACELIB_HOME/data/own/devtest
    python bench/fine_tune.py run --parent robust-yunet [--variant triplet] [--seeds 0 1 2]
    python bench/fine_tune.py table                               # the section of docs/recipes.md

The folder stands in for "your own people": the people of View 1's `peopleDevTest.txt`
with two pictures or more (LFW people outside View 1's training split, so the parent
never saw them), copied as `devtest/<Person>/*.jpg`. Every run holds out the same 30%
of them (`validation_seed=0`), whatever its training seed, and trains for the same
steps, so that rows differ only by the seed or the variant; the figure is `facelib
evaluate --images FOLDER --held-out-of RUN`'s on those people (every same-person pair
and as many different-person pairs). No View 1 test pair takes part in any choice.
Results are kept in FACELIB_HOME/models/fine-tune.json, one entry per model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BEGIN, END = "<!-- fine_tune.py table: begin -->", "<!-- fine_tune.py table: end -->"
EPOCHS, STEPS = 3, 314  # the fine-tune schedule of the `cpu` preset's budget on the Xeon (942 steps)
# name → (what trains, the flags of `facelib train` beside the fixed ones)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "triplet": (
        "stages 4–5 and the embedding, triplet loss alone: the default",
        ["--freeze-until", "stage3"],
    ),
    "triplet-stage2": (
        "stages 3–5 and the embedding, triplet loss alone",
        ["--freeze-until", "stage2"],
    ),
    "triplet-lr3": (
        "stages 4–5 and the embedding, triplet loss alone, 1.5× the learning rate (3e-4 against 2e-4)",
        ["--freeze-until", "stage3", "--set=learning_rate=0.0003"],
    ),
}


def folder() -> Path:
    from facelib.core import config

    return config.data_dir() / "own" / "devtest"


def results_file() -> Path:
    from facelib.core import config

    return config.models_dir() / "fine-tune.json"


def make_folder() -> Path:
    from facelib.data import datasets

    images = datasets.fetch_lfw()
    out = folder()
    for person, count in sorted(datasets.view1_people("test").items()):
        if count < 2:
            continue
        (out / person).mkdir(parents=True, exist_ok=True)
        for picture in sorted((images / person).glob("*.jpg")):
            if not (out / person / picture.name).is_file():
                shutil.copyfile(picture, out / person / picture.name)
    people = sum(1 for _ in out.iterdir())
    print(f"{out}: {sum(1 for _ in out.glob('*/*.jpg')):,} pictures of {people:,} people")
    return out


def train_command(parent: str, variant: str, seed: int) -> list[str]:
    return [
        "facelib",
        "train",
        "--init-from",
        parent,
        "--images",
        str(folder()),
        "--name",
        run_name(parent, variant, seed),
        "--resume",
        "--epochs",
        str(EPOCHS),
        "--steps",
        str(STEPS),
        *VARIANTS[variant][1],
        "--set=validation_fraction=0.3",
        "--set=validation_seed=0",
        f"--set=seed={seed}",
    ]


def run_name(parent: str, variant: str, seed: int) -> str:
    return f"ft-{parent}-{variant}-s{seed}"


def held_out_figures(model: str, held_out_of: str) -> dict:
    """`facelib evaluate --images FOLDER --held-out-of RUN`, as figures."""
    from facelib.app.cli import held_out_people
    from facelib.data import folders
    from facelib.recognition import reports
    from facelib.recognition.verification import FaceVerifier

    people = held_out_people(folders.list_people(folder()), held_out_of)
    report = reports.evaluate_folder(FaceVerifier(model), people)
    return {
        "model": model,
        "people": report.people,
        "pairs": report.pairs,
        "auc": report.auc,
        "eer": report.eer,
        "balanced_accuracy": report.balanced_accuracy,
        "rank1": report.identification.rank1 if report.identification else None,
    }


def run(parent: str, variant: str, seeds: list[int]) -> None:
    from facelib.core import config
    from facelib.recognition.card import ModelCard

    results = json.loads(results_file().read_text()) if results_file().is_file() else {}
    for seed in seeds:
        name = run_name(parent, variant, seed)
        command = train_command(parent, variant, seed)
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        card = ModelCard.load(config.models_dir() / name)
        if parent not in results:  # every run holds out the same people: the parent is scored once
            results[parent] = {"parent": None, **held_out_figures(parent, name)}
        source = next(s for s in card.data_sources if s.get("kind") == "folder")
        results[name] = {
            "parent": parent,
            "variant": variant,
            "seed": seed,
            "steps": EPOCHS * STEPS,
            "training_pictures": source.get("trained_pictures"),
            "training_people": source.get("trained_people"),
            "cpu": machine().split(",")[0],
            **held_out_figures(name, name),
        }
        results_file().write_text(json.dumps(results, indent=2))
        print(json.dumps(results[name], indent=2))


def rank1(figures: dict) -> str:
    return "–" if figures.get("rank1") is None else f"{100 * figures['rank1']:.1f}%"


def table() -> str:
    results = json.loads(results_file().read_text())
    lines = [
        f"Written by `python bench/fine_tune.py table` from {results_file().name} (each run: "
        f"`python bench/fine_tune.py run --parent PARENT --variant VARIANT --seeds …`; "
        f"{EPOCHS} × {STEPS} steps of 32 pictures; each row names the CPU it trained on). "
        f"Written on: {machine()}.",
        "",
        "| model | variant | seed | held-out AUC | Δ AUC | EER | balanced acc. at its threshold | rank-1 | CPU |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    summary = []
    for parent, figures in results.items():
        if figures.get("parent") is not None:
            continue
        lines.append(
            f"| parent `{parent}` | – | – | {figures['auc']:.3f} | – | {100 * figures['eer']:.1f}% | "
            f"{100 * figures['balanced_accuracy']:.1f}% | {rank1(figures)} | |"
        )
        for variant in VARIANTS:
            runs = [r for r in results.values() if r.get("parent") == parent and r.get("variant") == variant]
            for r in sorted(runs, key=lambda r: r["seed"]):
                lines.append(
                    f"| `{r['model']}` | {variant} | {r['seed']} | {r['auc']:.3f} | "
                    f"{r['auc'] - figures['auc']:+.3f} | {100 * r['eer']:.1f}% | "
                    f"{100 * r['balanced_accuracy']:.1f}% | {rank1(r)} | {r['cpu']} |"
                )
            if runs:
                gains = [r["auc"] - figures["auc"] for r in runs]
                spread = f" ± {statistics.stdev(gains):.3f}" if len(gains) > 1 else ""
                rank = statistics.mean((r["rank1"] or 0) - (figures["rank1"] or 0) for r in runs)
                summary.append(
                    f"- `{parent}`, {variant} ({VARIANTS[variant][0]}) — Δ AUC {statistics.mean(gains):+.3f}"
                    f"{spread} over {len(runs)} seed(s), {sum(g > 0 for g in gains)} of {len(runs)} above "
                    f"the parent; Δ rank-1 {100 * rank:+.1f} points"
                )
    people = next((f for f in results.values() if f.get("parent") is None), {})
    lines += ["", f"Held-out people: {people.get('people', '?')}, pairs: {people.get('pairs', '?')}.", ""]
    return "\n".join(lines + summary)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("folder")
    r = sub.add_parser("run")
    r.add_argument("--parent", required=True)
    r.add_argument("--variant", default="triplet", choices=list(VARIANTS))
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sub.add_parser("table")
    args = parser.parse_args()
    if args.command == "folder":
        make_folder()
    elif args.command == "run":
        if not folder().is_dir():
            make_folder()
        run(args.parent, args.variant, args.seeds)
    else:
        body = table()
        print(body)
        text = DOC.read_text()
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + BEGIN + "\n" + body + "\n" + text[text.index(END) :]
            DOC.write_text(text)
        else:
            print(f"(docs/recipes.md has no {BEGIN} section: add one to write the table there)")


if __name__ == "__main__":
    main()
