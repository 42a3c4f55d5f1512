"""Validation AUC of a model before and after its batch-norm statistics are estimated again.

    python bench/batchnorm_statistics.py RUN [RUN…] [--batches 300] [--save-as=SUFFIX]
    python bench/batchnorm_statistics.py RUN --backup   # a run stopped early: its last backup

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

`--backup` scores a run that was stopped before it saved a model: the weights of its
last backed-up epoch, rebuilt as the saved model would be (float32, without dropout).
Dropout before a batch-normalised layer trains its statistics on dropped-out inputs,
whose variance differs from that of the whole inputs it sees when embedding: refreshing
them without dropout tells how much of such a run's validation AUC that shift cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def split_seed(cfg: dict) -> int:
    """The seed of the run's validation people and pairs (TrainConfig.split_seed, from its saved config)."""
    return cfg["seed"] if cfg.get("validation_seed") is None else cfg["validation_seed"]


def validation_auc(model, split, cfg: dict, input_size: int) -> tuple[float, float]:
    """AUC and the most accurate threshold on the run's validation pairs, as training scores them."""
    from facelib.core.metrics import best_threshold
    from facelib.data.pipeline import validation_pairs
    from facelib.training.training_callbacks import ValidationAUC, verification_auc

    left, right, same = validation_pairs(split.validation, cfg["validation_pairs"], split_seed(cfg))
    distances = ValidationAUC(split.validation.paths, left, right, same, input_size).distances(model)
    return verification_auc(distances, same), best_threshold(distances, same.astype(bool))


def refresh_statistics(model, split, cfg: dict, batches: int):
    """`model` with its batch-norm statistics estimated again on `batches` of the run's
    own training batches (its sampling and augmentation; no weight changes)."""
    from facelib.data.pipeline import training_dataset

    singles = cfg.get("single_picture_people", False)
    stream = training_dataset(
        split.train.with_at_least(1 if singles else 2),
        "batch_hard",
        cfg["p"],
        cfg["k"],
        int(cfg["input_size"]),
        seed=cfg["seed"] + 1,  # other batches than the run's first ones
        augmentation=cfg["augmentation"],
    ).take(batches)
    for images, _labels in stream:
        model(images, training=True)  # updates the moving statistics, not the weights
    return model


def from_backup(folder: Path, identities: int):
    """The embedding model of the run's last backup, in float32 and without dropout, and its config."""
    from facelib.training.assembly import assemble, in_float32, restore
    from facelib.training.run_folder import read_backup, saved_config
    from facelib.training.train import strategy
    from facelib.training.training_config import TrainConfig, upgrade_settings

    cfg = TrainConfig(**upgrade_settings(saved_config(folder)))
    backup = read_backup(folder)
    if backup is None:
        raise SystemExit(f"{folder} has no backup")
    dist = strategy()
    net = assemble(cfg, identities, 1, dist)
    restore(net.model, backup.weights, dist)
    print(f"{folder.name}: the weights of epoch {backup.epochs} ({backup.weights.name})")
    return in_float32(net.embedding_model, cfg, dist), json.loads(json.dumps(asdict(cfg)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--save-as", metavar="SUFFIX", help="keep each refreshed model as models/RUN+SUFFIX")
    parser.add_argument("--backup", action="store_true", help="a run stopped early: its last backup")
    args = parser.parse_args()

    from facelib.core import config
    from facelib.data.pipeline import training_split
    from facelib.recognition.model import load_model_folder, save_model_folder
    from facelib.training.run_folder import saved_config

    print(f"Machine: {machine()}")
    for run in args.runs:
        if args.backup:
            if args.save_as:
                raise SystemExit("--save-as keeps a saved model's card; a backup has none")
            cfg = saved_config(config.models_dir() / run)
            if cfg is None:
                raise SystemExit(f"{config.models_dir() / run} has no config.json: no training run there")
        else:
            model, card = load_model_folder(config.models_dir() / run)
            cfg = card.config
        crops = config.processed_dir() / cfg["crops"]
        singles = cfg.get("single_picture_people", False)
        split = training_split(
            crops, cfg["validation_fraction"], split_seed(cfg), cfg["max_identities"], singles
        )
        if args.backup:
            model, cfg = from_backup(
                config.models_dir() / run, len(split.train.with_at_least(1 if singles else 2).identities)
            )
        input_size = int(cfg["input_size"])
        before, _ = validation_auc(model, split, cfg, input_size)
        refresh_statistics(model, split, cfg, args.batches)
        after, threshold = validation_auc(model, split, cfg, input_size)
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
