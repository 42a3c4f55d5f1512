"""Benchmark: verification accuracy of trained models and the LBP baseline, side by side.

    python bench/compare_models.py models/cpu-batch_hard-112 models/seed-style [--tta]

Each model is scored by `facelib evaluate` (View 1 test pairs: stratified 10-fold;
View 2: official folds, pairs of seen people dropped); LBP runs in the same harness
on the same crops. Writes the table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--tta", action="store_true")
    args = parser.parse_args()

    from facelib.core import config
    from facelib.evaluation.evaluate import evaluate_lbp, evaluate_model, print_table
    from facelib.recognition.card import ModelCard

    lines = [
        "| method | training | View 1 accuracy | View 1 AUC | View 1 EER | View 1 TAR@FAR=1e-2 "
        "| View 2 balanced accuracy | View 2 AUC | View 2 EER | View 2 TAR@FAR=1e-2 | View 2 pairs (same / different) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def add(name: str, training: str, evaluation) -> None:
        rows = {r.protocol: r for r in evaluation.rows}
        for suffix in ["", " +TTA"]:
            v1, v2 = rows.get("view1" + suffix), rows.get("view2" + suffix)
            if v1 is None:
                continue
            lines.append(
                f"| {name}{suffix} | {training} | {100 * v1.accuracy_mean:.1f} ± {100 * v1.accuracy_std:.1f}% "
                f"| {v1.auc:.3f} | {100 * v1.eer:.1f}% | {100 * v1.tar_at_far_1e2:.1f}% "
                f"| {100 * v2.balanced_accuracy_mean:.1f} ± {100 * v2.balanced_accuracy_std:.1f}% | {v2.auc:.3f} "
                f"| {100 * v2.eer:.1f}% | {100 * v2.tar_at_far_1e2:.1f}% | {v2.same_pairs:,} / {v2.different_pairs:,} |"
            )

    crops_root, seen = None, set()
    for folder in args.models:
        evaluation = evaluate_model(folder, tta=args.tta, save=False)  # benchmarking changes no card
        print_table(evaluation)
        card = ModelCard.load(folder)
        cfg = card.config
        margin = "soft margin" if cfg.get("soft_margin", True) else f"hinge {cfg['margin']}"
        extras = " + CosFace head" if cfg.get("classifier", "none") != "none" else ""
        training = (
            f"{cfg['mining']} ({margin}){extras}, {cfg['head']} embedding, {cfg['input_size']} px"
            f"{' bf16' if (card.precision or ('bfloat16' if cfg.get('bfloat16') else '')) == 'bfloat16' else ''}, "
            f"{cfg.get('optimizer', 'adam')}, "
            f"{card.history['epochs']}×{(card.plan or cfg)['steps_per_epoch']} steps of P{cfg['p']}×K{cfg['k']}"
        )
        add(f"`{folder.name}`", training, evaluation)
        crops_root = config.processed_dir() / cfg["crops"]
        seen |= card.seen_identities
    # Every row on the same pairs: View 2 without any pair of a person some model saw.
    lbp = evaluate_lbp(crops_root, seen=seen)
    print_table(lbp)
    add("LBP histograms (no learning)", "none", lbp)

    models = " ".join(str(m) for m in args.models)
    body = f"""
Command: `python bench/compare_models.py {models}{" --tta" if args.tta else ""}`
Machine: {machine()}. All models trained from scratch on LFW View 1 training people only.

{chr(10).join(lines)}
"""
    print(body)
    write_section("Verification accuracy", body)


if __name__ == "__main__":
    main()
