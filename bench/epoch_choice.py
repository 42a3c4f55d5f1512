"""Which weights of a run to keep: the last epoch's, the epoch best on validation, or an
average of the last epochs, judged on validation people that did not choose.

    python bench/epoch_choice.py RUN [RUN…] [--average 3] [--batches 300] [--save-average]
    python bench/epoch_choice.py table RUN [RUN…]   # the same, into docs/recipes.md

RUN is a finished run trained with `--set keep_epochs=true` (every epoch's weights under
models/RUN/epochs/). Late in a run, validation AUC still moves by up to 0.09 between
epochs; this asks whether the model a run keeps should depend on where it stopped.

The run's validation people are split in two halves, A and B (by person, seeded), each
scored on its own 300 same + 300 different pairs. For every epoch it prints the AUC on
each half, as the weights are and with their batch-norm statistics estimated again on
`--batches` training batches (bench/batchnorm_statistics.py: does a dip come from
the statistics, or from the weights?). Then three ways to choose, each scored only on
people that took no part in the choice:
- the last epoch (what training keeps today): the mean of its AUC on A and on B;
- the best epoch by one half, scored on the other: the mean over both directions;
- the average of the last `--average` epochs' weights, statistics estimated again
  (stochastic weight averaging): the mean of A and B, as nothing was chosen on them.
`--save-average` keeps the average as models/RUN-avgN, for `facelib evaluate
--robustness --model RUN-avgN` (its card's thresholds are the last epoch's).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batchnorm_statistics import refresh_statistics, split_seed  # noqa: E402
from common import machine  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BEGIN, END = "<!-- epoch_choice.py table: begin -->", "<!-- epoch_choice.py table: end -->"
PAIRS = 300  # per half, as many same as different


def halves(validation, seed: int) -> list:
    """The validation people in two seeded halves, each a FaceSet of its own."""
    from facelib.data.pipeline import FaceSet, _offsets

    if len(validation.identities) < 4:
        raise SystemExit(f"{len(validation.identities)} validation people: too few for two halves")
    order = np.random.default_rng(seed + 1000).permutation(len(validation.identities))
    parts = []
    for chosen in (sorted(order[::2]), sorted(order[1::2])):
        counts = validation.counts[chosen]
        paths = [
            p
            for i in chosen
            for p in validation.paths[validation.offsets[i] : validation.offsets[i] + validation.counts[i]]
        ]
        parts.append(FaceSet([validation.identities[i] for i in chosen], paths, _offsets(counts), counts))
    return parts


class HalfScorer:
    """AUC of a model on each half's own pairs."""

    def __init__(self, parts, seed: int, input_size: int):
        from facelib.data.pipeline import validation_pairs

        self.parts, self.input_size = parts, input_size
        self.pairs = [validation_pairs(part, PAIRS, seed) for part in parts]

    def __call__(self, model) -> list[float]:
        from facelib.core.decision import embedding_distance
        from facelib.core.metrics import roc_auc
        from facelib.data.pipeline import embed_files

        scores = []
        for part, (left, right, same) in zip(self.parts, self.pairs, strict=True):
            embeddings = embed_files(model, part.paths, self.input_size)
            scores.append(roc_auc(embedding_distance(embeddings[left], embeddings[right]), same))
        return scores


def study(run: str, average: int, batches: int, save_average: bool) -> str:
    import keras

    from facelib.core import config
    from facelib.data.pipeline import training_split
    from facelib.recognition.card import ModelCard
    from facelib.recognition.model import build_embedding_model, save_model_folder
    from facelib.training.run_folder import kept_epochs, saved_config

    folder = config.models_dir() / run
    cfg = saved_config(folder)
    kept = kept_epochs(folder)
    if cfg is None or not kept:
        raise SystemExit(f"{folder} holds no kept epochs: train it with --set keep_epochs=true")
    keras.mixed_precision.set_global_policy("float32")
    singles = cfg.get("single_picture_people", False)
    split = training_split(
        config.processed_dir() / cfg["crops"],
        cfg["validation_fraction"],
        split_seed(cfg),
        cfg["max_identities"],
        singles,
    )
    size = int(cfg["input_size"])
    score = HalfScorer(halves(split.validation, split_seed(cfg)), split_seed(cfg), size)

    def model_of(weights: list[np.ndarray]):
        model = build_embedding_model(size, int(cfg["embedding_dim"]), None, cfg.get("head", "l2"))
        model.set_weights(weights)
        return model

    def refreshed(weights: list[np.ndarray]):
        return refresh_statistics(model_of(weights), split, cfg, batches)

    weights = []
    for path in kept:
        model = build_embedding_model(size, int(cfg["embedding_dim"]), None, cfg.get("head", "l2"))
        model.load_weights(path)
        weights.append(model.get_weights())
    plain = [score(model_of(w)) for w in weights]
    fresh = [score(refreshed(w)) for w in weights]
    lines = [
        f"`{run}` ({len(kept)} epochs, {len(score.parts[0].identities)} + {len(score.parts[1].identities)} people "
        f"in halves A + B, {PAIRS} + {PAIRS} pairs each; statistics from {batches} training batches)\n",
        "| epoch | A | B | A, statistics again | B, statistics again |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, (p, f) in enumerate(zip(plain, fresh, strict=True), 1):
        lines.append(f"| {n} | {p[0]:.3f} | {p[1]:.3f} | {f[0]:.3f} | {f[1]:.3f} |")
    last = float(np.mean(plain[-1]))
    best_a, best_b = int(np.argmax([p[0] for p in plain])), int(np.argmax([p[1] for p in plain]))
    chosen = (plain[best_a][1] + plain[best_b][0]) / 2
    tail = [np.mean([w[i] for w in weights[-average:]], axis=0) for i in range(len(weights[-1]))]
    averaged = refreshed(tail)
    swa = score(averaged)
    lines += [
        "",
        "| weights kept | AUC on people that did not choose them (mean of A and B) |",
        "| --- | ---: |",
        f"| the last epoch ({len(kept)}) | {last:.3f} |",
        f"| the last epoch, statistics again | {np.mean(fresh[-1]):.3f} |",
        f"| the best epoch by the other half (A chose {best_a + 1}, B chose {best_b + 1}) | {chosen:.3f} |",
        f"| the average of the last {average} epochs, statistics again | {np.mean(swa):.3f} |",
    ]
    if save_average:
        name = f"{run}-avg{average}"
        card = ModelCard.load(folder)
        extra = {"epoch_average": f"{run}'s last {average} epochs; statistics of {batches} training batches"}
        save_model_folder(
            config.models_dir() / name,
            averaged,
            replace(card, name=name, metrics=None, evaluations=[], history=None, extra=extra),
        )
        lines.append(f"\nSaved as models/{name}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="RUN names, or `table` then RUN names")
    parser.add_argument("--average", type=int, default=3)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--save-average", action="store_true")
    args = parser.parse_args()
    into_doc = args.runs[0] == "table"
    runs = args.runs[1:] if into_doc else args.runs
    body = f"Machine: {machine()}\n\n" + "\n\n".join(
        study(run, args.average, args.batches, args.save_average) for run in runs
    )
    print(body)
    if into_doc:
        text = DOC.read_text()
        section = (
            f"{BEGIN}\nWritten by `python bench/epoch_choice.py table {' '.join(runs)}`.\n\n{body}\n{END}"
        )
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)


if __name__ == "__main__":
    main()
