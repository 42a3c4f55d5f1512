"""Validation AUC of a model before and after its batch-norm statistics are estimated again.

    python bench/batchnorm_statistics.py RUN [RUN…] [--batches 300] [--save-as=SUFFIX]

Batch normalisation keeps running means and variances of the activations, gathered
while the weights trained. A model whose weights were changed afterwards (an average
of the weights over the last steps, as an EMA gives) keeps statistics that no longer
fit them. This passes `--batches` training batches (the run's own P × K sampling and
augmentation, no weight update) through the model in training mode, which refreshes
the statistics (Keras's running average, momentum 0.99: after 300 batches about 95%
of them come from these batches), and scores the validation pairs training scored (300 + 300 pairs of
held-out training-side people) before and after. A model trained normally should not
change; `--save-as=-bn` keeps the refreshed model as models/RUN-bn, for the
robustness suite (`facelib evaluate --robustness --model RUN-bn`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def validation_auc(model, split, card) -> tuple[float, float]:
    """AUC and the most accurate threshold on the run's validation pairs, as training scores them."""
    from facelib.core.metrics import best_threshold
    from facelib.data.pipeline import validation_pairs
    from facelib.training.training_callbacks import ValidationAUC, verification_auc

    cfg = card.config
    left, right, same = validation_pairs(split.validation, cfg["validation_pairs"], cfg["seed"])
    distances = ValidationAUC(split.validation.paths, left, right, same, card.input_size).distances(model)
    return verification_auc(distances, same), best_threshold(distances, same.astype(bool))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--save-as", metavar="SUFFIX", help="keep each refreshed model as models/RUN+SUFFIX")
    args = parser.parse_args()

    from facelib.core import config
    from facelib.data.pipeline import training_dataset, training_split
    from facelib.recognition.model import load_model_folder, save_model_folder

    print(f"Machine: {machine()}")
    for run in args.runs:
        model, card = load_model_folder(config.models_dir() / run)
        cfg = card.config
        crops = config.processed_dir() / cfg["crops"]
        singles = cfg.get("single_picture_people", False)
        split = training_split(crops, cfg["validation_fraction"], cfg["seed"], cfg["max_identities"], singles)
        before, _ = validation_auc(model, split, card)
        batches = training_dataset(
            split.train.with_at_least(1 if singles else 2),
            "batch_hard",
            cfg["p"],
            cfg["k"],
            card.input_size,
            seed=cfg["seed"] + 1,  # other batches than the run's first ones
            augmentation=cfg["augmentation"],
        ).take(args.batches)
        for images, _labels in batches:
            model(images, training=True)  # updates the moving statistics, not the weights
        after, threshold = validation_auc(model, split, card)
        print(f"{run}: validation AUC {before:.4f} → {after:.4f} with statistics from {args.batches} batches")
        if args.save_as:
            name = run + args.save_as
            save_model_folder(
                config.models_dir() / name,
                model,
                replace(
                    card,
                    name=name,
                    validation_threshold=threshold,
                    threshold=None,
                    metrics=None,
                    crops=None,
                    open_set=None,
                    evaluations=[],
                    history=None,
                    extra={
                        "batchnorm_statistics": f"{run}'s weights; statistics of {args.batches} training batches"
                    },
                ),
            )
            print(f"  saved as models/{name}")


if __name__ == "__main__":
    main()
