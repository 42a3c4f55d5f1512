"""Which weights of a run to keep: the last epoch's, the epoch best on validation, or an
average of the last epochs, judged on validation people that did not choose.

    python bench/epoch_choice.py RUN [RUN…] [--average 3] [--batches 300] [--splits 100] [--save-average]
    python bench/epoch_choice.py table RUN [RUN…]   # the same, into docs/recipes.md

RUN is a finished run trained with `--set keep_epochs=true` (every epoch's weights under
models/RUN/epochs/). Late in a run, validation AUC still moves by up to 0.09 between
epochs; this asks whether the model a run keeps should depend on where it stopped.

Every picture of the run's validation people is embedded once by each candidate: each
epoch's weights as they are, the same with their batch-norm statistics estimated again
on `--batches` training batches (bench/batchnorm_statistics.py: does a dip come from
the statistics, or from the weights?), and the average of the last `--average` epochs'
weights with statistics estimated again (stochastic weight averaging). First, each
candidate's AUC on the pairs training scored (300 + 300). Then the people are split in
two halves `--splits` times at random; each half gets its own 300 + 300 pairs, and each
rule is scored only on people that took no part in its choice:
- the last epoch (what training keeps today), and the average: the mean of the halves;
- the best epoch by one half: its AUC on the other half, the mean of both directions.
The means over the splits, and how often a rule beat the last epoch, are printed. They
are one run's validation people: the splits say how much the choice itself moves, not
how another set of people would score. `--save-average` keeps the average as
models/RUN-avgN for `facelib evaluate --robustness --model RUN-avgN`; its card keeps
only what holds for it (the threshold chosen on the validation pairs, again).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batchnorm_statistics import refresh_statistics, split_seed, validation_auc  # noqa: E402
from common import machine  # noqa: E402
from recipes import history  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BEGIN, END = "<!-- epoch_choice.py table: begin -->", "<!-- epoch_choice.py table: end -->"
PAIRS = 300  # per half, as many same as different


def half_pairs(validation, people: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 + 300 pairs among `people` (indices into validation.identities), as picture
    indices into validation.paths."""
    from facelib.data.pipeline import FaceSet, _offsets, validation_pairs

    people = np.sort(people)
    counts = validation.counts[people]
    pictures = np.concatenate([validation.offsets[i] + np.arange(validation.counts[i]) for i in people])
    part = FaceSet([validation.identities[i] for i in people], [], _offsets(counts), counts)
    left, right, same = validation_pairs(part, PAIRS, seed)
    return pictures[left], pictures[right], same


def auc_on(embeddings: np.ndarray, pairs) -> float:
    from facelib.core.decision import embedding_distance
    from facelib.core.metrics import roc_auc

    left, right, same = pairs
    return roc_auc(embedding_distance(embeddings[left], embeddings[right]), same)


def rules(plain: list[np.ndarray], fresh: list[np.ndarray], averaged: np.ndarray, halves) -> dict[str, float]:
    """Each rule's AUC on people that did not choose, for one split into two halves."""
    a = [[auc_on(e, h) for h in halves] for e in plain]
    b = [[auc_on(e, h) for h in halves] for e in fresh]

    def chosen(scores):  # best by one half, scored on the other, both ways
        return (
            scores[int(np.argmax([s[0] for s in scores]))][1]
            + scores[int(np.argmax([s[1] for s in scores]))][0]
        ) / 2

    return {
        "last": float(np.mean(a[-1])),
        "last, statistics again": float(np.mean(b[-1])),
        "best by the other half": chosen(a),
        "best by the other half, statistics again": chosen(b),
        "average, statistics again": float(np.mean([auc_on(averaged, h) for h in halves])),
    }


def study(run: str, average: int, batches: int, splits: int, save_average: bool) -> str:
    import keras

    from facelib.core import config
    from facelib.data.pipeline import embed_files, training_split, validation_pairs
    from facelib.recognition.card import ModelCard
    from facelib.recognition.model import build_embedding_model, save_model_folder
    from facelib.training.budget import read_plan
    from facelib.training.run_folder import epoch_number, is_finished, kept_epochs, saved_config

    folder = config.models_dir() / run
    cfg, kept = saved_config(folder), kept_epochs(folder)
    if cfg is None or not is_finished(folder):
        raise SystemExit(f"{folder}: not a finished run (its last epoch would be a guess)")
    numbers = [epoch_number(p) for p in kept]
    plan = read_plan(folder)
    planned = plan.epochs if plan else cfg["epochs"]
    if numbers != list(range(1, planned + 1)):
        raise SystemExit(
            f"{folder}: kept epochs {numbers}, not 1 to {planned}: train it with --set keep_epochs=true"
        )
    if not 1 <= average <= len(kept):
        raise SystemExit(f"--average must be 1 to {len(kept)}, not {average}")
    keras.mixed_precision.set_global_policy("float32")
    singles = cfg.get("single_picture_people", False)
    split = training_split(
        config.processed_dir() / cfg["crops"],
        cfg["validation_fraction"],
        split_seed(cfg),
        cfg["max_identities"],
        singles,
    )
    validation, size = split.validation, int(cfg["input_size"])
    if len(validation.identities) < 4:
        raise SystemExit(f"{len(validation.identities)} validation people: too few for two halves")

    def model_of(weights: list[np.ndarray] | Path):
        model = build_embedding_model(size, int(cfg["embedding_dim"]), None, cfg.get("head", "l2"))
        model.load_weights(weights) if isinstance(weights, Path) else model.set_weights(weights)
        return model

    def embed(model) -> np.ndarray:
        return embed_files(model, validation.paths, size)

    weights = [model_of(path).get_weights() for path in kept]
    plain, fresh = [], []
    for n, w in enumerate(weights, 1):  # minutes each on 2 cores: the statistics take `batches` batches
        print(f"{run}: epoch {n} of {len(weights)}", file=sys.stderr, flush=True)
        plain.append(embed(model_of(w)))
        fresh.append(embed(refresh_statistics(model_of(w), split, cfg, batches)))
    print(f"{run}: the average of the last {average} epochs", file=sys.stderr, flush=True)
    mean_weights = [np.mean(layer, axis=0) for layer in zip(*weights[-average:], strict=True)]
    averaged_model = refresh_statistics(model_of(mean_weights), split, cfg, batches)
    averaged = embed(averaged_model)

    training_pairs = validation_pairs(validation, cfg["validation_pairs"], split_seed(cfg))
    rows = history(folder)
    logged = [float(r["val_auc"]) for r in rows]  # in the run's own precision
    precision = rows[-1].get("precision") or cfg["precision"]
    lines = [
        f"`{run}`: {len(kept)} epochs, {len(validation.identities)} validation people; statistics "
        f"from {batches} training batches; AUC on the {cfg['validation_pairs']} + "
        f"{cfg['validation_pairs']} pairs training scored, as training logged it ({precision}) "
        "and in float32:\n",
        "| epoch | logged | float32 | float32, statistics again |",
        "| ---: | ---: | ---: | ---: |",
        *(
            f"| {n} | {v:.3f} | {auc_on(p, training_pairs):.3f} | {auc_on(f, training_pairs):.3f} |"
            for n, (v, p, f) in enumerate(zip(logged, plain, fresh, strict=True), 1)
        ),
        f"| average of {len(kept) - average + 1}–{len(kept)} | | | {auc_on(averaged, training_pairs):.3f} |",
    ]
    scores: dict[str, list[float]] = {}
    for s in range(splits):
        order = np.random.default_rng([split_seed(cfg), s]).permutation(len(validation.identities))
        halves = [half_pairs(validation, order[h::2], s) for h in (0, 1)]
        for rule, value in rules(plain, fresh, averaged, halves).items():
            scores.setdefault(rule, []).append(value)
    last = np.array(scores["last"])
    lines += [
        "",
        f"Over {splits} random splits of the people in two halves ({PAIRS} + {PAIRS} pairs each), "
        "each rule scored on people that did not choose:\n",
        "| weights kept | mean AUC | against the last epoch | splits where it is ahead |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {rule} | {np.mean(v):.3f} | {np.mean(np.array(v) - last):+.3f} | "
            f"{100 * np.mean(np.array(v) > last):.0f}% |"
            for rule, v in scores.items()
        ),
    ]
    if save_average:
        name = f"{run}-avg{average}"
        card = ModelCard.load(folder)
        _, threshold = validation_auc(averaged_model, split, cfg, size)
        extra = {
            "epoch_average": f"{run}'s epochs {len(kept) - average + 1}–{len(kept)}; statistics of {batches} training batches"
        }
        calibration = dict(threshold=None, crops=None, open_set=None, confidence=None, confidence_note=None)
        save_model_folder(
            config.models_dir() / name,
            averaged_model,
            replace(
                card,
                name=name,
                validation_threshold=threshold,
                metrics=None,
                evaluations=[],
                history=None,
                extra=extra,
                **calibration,
            ),
        )
        lines.append(f"\nSaved as models/{name}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="RUN names, or `table` then RUN names")
    parser.add_argument("--average", type=int, default=3)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--save-average", action="store_true")
    args = parser.parse_args()
    into_doc = args.runs[0] == "table"
    runs = args.runs[1:] if into_doc else args.runs
    if not runs:
        raise SystemExit("name at least one run")
    body = f"Machine: {machine()}\n\n" + "\n\n".join(
        study(run, args.average, args.batches, args.splits, args.save_average) for run in runs
    )
    print(body)
    if into_doc:
        text = DOC.read_text()
        options = f"--average {args.average} --batches {args.batches} --splits {args.splits}"
        section = f"{BEGIN}\nWritten by `python bench/epoch_choice.py table {' '.join(runs)} {options}`.\n\n{body}\n{END}"
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)


if __name__ == "__main__":
    main()
