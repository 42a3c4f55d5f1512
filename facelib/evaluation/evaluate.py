"""Distance evaluation on the LFW protocols; the metrics themselves are in facelib.core.metrics.

    from facelib.evaluation.evaluate import evaluate_model
    report = evaluate_model("cpu-batch_hard-112")      # a run name or a folder; View 1 test + View 2
    facelib evaluate [--model RUN|DIR] [--tta] [--view2|--no-view2] [--recalibrate]

- View 1 (primary): `pairsDevTest.txt`, 1,000 pairs of people the model never saw.
  The file lists 500 same then 500 different pairs, so the 10 folds are stratified
  and shuffled (plain KFold would give folds of one class).
- View 2: `pairs.txt`, its own 10 folds, scored only on pairs whose people are not
  among the model's training (or validation) identities, read from its card.
- Accuracy: the threshold is chosen on 9 folds and applied to the 10th; mean ± std.
  Also ROC AUC, TAR at FAR 1e-2 and 1e-3, EER, and the mean chosen threshold.
- Crops of the pairs' pictures that are missing are made first, with the crop
  settings the model was trained with (its card's "crop_settings").
- The threshold: the first evaluation saves View 1's into the card, where `verify`
  and the dashboard read it. Later evaluations keep it (a verdict should not change
  because someone looked again) and only record theirs in the card's "evaluations";
  `recalibrate=True` (`--recalibrate`) replaces it.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from facelib.core import config
from facelib.core.decision import embedding_distance, mean_embedding
from facelib.core.errors import FacelibError
from facelib.core.files import write_atomic, write_json_atomic
from facelib.core.metrics import (
    cross_validated_accuracy,
    equal_error_rate,
    roc_auc,
    stratified_folds,
    tar_at_far,
)
from facelib.data import datasets
from facelib.data.crop import CropSettings
from facelib.data.datasets import Pair
from facelib.data.preprocess import output_dir, preprocess_dataset
from facelib.evaluation.baselines import chi_square, lbp_embed
from facelib.recognition.calibration import validation_calibration
from facelib.recognition.card import ModelCard


class IdentityOverlapError(FacelibError):
    """Pairs to score include people the model trained on."""


@dataclass
class Metrics:
    protocol: str
    pairs: int
    auc: float
    accuracy_mean: float
    accuracy_std: float
    threshold: float
    eer: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    dropped_pairs: int = 0
    fold_accuracies: list[float] = field(default_factory=list)
    same_pairs: int = 0
    different_pairs: int = 0
    # Mean of the true accept and true reject rates, each fold's threshold chosen for it
    # on the other folds: comparable across protocols whatever their share of same pairs.
    balanced_accuracy_mean: float = float("nan")
    balanced_accuracy_std: float = float("nan")
    # People of the model's own training folders whose names are not LFW's: whether LFW's
    # test people are among them cannot be checked, so these pairs are not known unseen.
    unchecked_people: int = 0

    @property
    def balanced(self) -> bool:
        return self.same_pairs == self.different_pairs

    def row(self) -> str:
        if self.balanced:
            accuracy = f"accuracy {100 * self.accuracy_mean:.1f} ± {100 * self.accuracy_std:.1f}%"
        else:  # plain accuracy rewards answering the majority class: lead with the balanced one
            accuracy = (
                f"balanced accuracy {100 * self.balanced_accuracy_mean:.1f} ± "
                f"{100 * self.balanced_accuracy_std:.1f}% (plain {100 * self.accuracy_mean:.1f}%; "
                f"always answering 'different' scores {100 * self.different_pairs / max(self.pairs, 1):.1f}%)"
            )
        # With under 1,000 different pairs, FAR = 1e-3 means no false accept at all.
        tar3 = f", TAR@FAR=1e-3 {100 * self.tar_at_far_1e3:.1f}%" if self.different_pairs >= 1000 else ""
        dropped = f", {self.dropped_pairs} dropped: seen people" if self.dropped_pairs else ""
        unchecked = (
            f" [NOT KNOWN UNSEEN: {self.unchecked_people} trained-on people of own folders are not named as "
            "LFW's]"
            if self.unchecked_people
            else ""
        )
        return (
            f"{self.protocol}: {accuracy}, AUC {self.auc:.4f}, EER {100 * self.eer:.1f}%, "
            f"TAR@FAR=1e-2 {100 * self.tar_at_far_1e2:.1f}%{tar3}, threshold {self.threshold:.4f} "
            f"({self.pairs} pairs: {self.same_pairs} same, {self.different_pairs} different{dropped}){unchecked}"
        )


def metrics(
    protocol: str, distances: np.ndarray, same: np.ndarray, folds: np.ndarray, dropped: int = 0
) -> Metrics:
    same = same.astype(bool)
    accuracies, thresholds = cross_validated_accuracy(distances, same, folds)
    balanced, _ = cross_validated_accuracy(distances, same, folds, balanced=True)
    return Metrics(
        protocol=protocol,
        pairs=len(same),
        auc=roc_auc(distances, same),
        accuracy_mean=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        threshold=float(np.mean(thresholds)),
        eer=equal_error_rate(distances, same),
        tar_at_far_1e2=tar_at_far(distances, same, 1e-2),
        tar_at_far_1e3=tar_at_far(distances, same, 1e-3),
        dropped_pairs=dropped,
        fold_accuracies=accuracies,
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        balanced_accuracy_mean=float(np.mean(balanced)),
        balanced_accuracy_std=float(np.std(balanced)),
    )


# ----------------------------------------------------------------------- the pairs


def unseen_pairs(pairs: list[Pair], seen: set[str], strict: bool = False) -> tuple[list[Pair], int]:
    """Pairs whose two people are both outside `seen`, and how many were dropped.
    With `strict`, any overlap is refused instead."""
    kept = [p for p in pairs if p.left.person not in seen and p.right.person not in seen]
    dropped = len(pairs) - len(kept)
    if dropped and strict:
        raise IdentityOverlapError(
            f"{dropped} of {len(pairs)} pairs involve people the model trained on (by name: LFW's "
            "training people, or people of its own training folders named as LFW's); scoring them "
            "would overstate its accuracy"
        )
    return kept, dropped


def unchecked_folder_people(card: ModelCard) -> list[str]:
    """The people of the model's training folders whose names are no LFW person's: LFW's
    test people may be among them under other names, and nothing here can tell. People
    named as LFW's are checked by name (they count as seen, see `unseen_pairs`)."""
    folder_people = card.folder_people
    if not folder_people:
        return []
    lfw_names = set(datasets.view1_people("train")) | set(datasets.view1_people("test"))
    return sorted(folder_people - lfw_names)


def warn_unchecked(card: ModelCard, unchecked: list[str]) -> str:
    """The loud warning for a model trained on folders that cannot be checked against LFW."""
    folders = ", ".join(s.get("root", "?") for s in card.data_sources if s.get("kind") == "folder")
    return (
        f"WARNING: {card.name} was trained on folders of people ({folders}); {len(unchecked)} of their "
        f"people are not named as LFW's (e.g. {', '.join(unchecked[:3])}), so whether LFW's test people "
        "were trained on cannot be checked: the LFW figures below are marked NOT KNOWN UNSEEN and may "
        "overstate the model. Score it on held-out people of your own folder instead "
        "(facelib evaluate --images FOLDER --held-out-of RUN)"
    )


def pair_relpaths(pairs: list[Pair]) -> list[str]:
    """The pictures of these pairs (each once), as paths relative to the images folder
    and to a crop folder alike."""
    return sorted({ref.relpath for p in pairs for ref in (p.left, p.right)})


def pair_crop_paths(pairs: list[Pair], crops_root: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Unique crop paths, and the index of each pair's left and right crop in it."""
    relpaths = pair_relpaths(pairs)
    missing = [r for r in relpaths if not (crops_root / r).is_file()]
    if missing:
        raise FacelibError(
            f"{len(missing)} crops of the pairs are missing in {crops_root} (e.g. {missing[0]}); "
            "see that folder's manifest.csv for pictures preprocessing skipped or could not read "
            "(crops made with --no-face skip leave no crop for a picture without a face)"
        )
    position = {r: i for i, r in enumerate(relpaths)}
    left = np.array([position[p.left.relpath] for p in pairs])
    right = np.array([position[p.right.relpath] for p in pairs])
    return [str(crops_root / r) for r in relpaths], left, right


# -------------------------------------------------------------------------- report


@dataclass
class Evaluation:
    model: str
    rows: list[Metrics]
    seconds: float
    distances: dict = field(default_factory=dict, repr=False)  # protocol → (distances, same, pairs)
    crops: str = ""  # the crop folder scored
    # The threshold verify and the dashboard use after this evaluation (the card's),
    # and a sentence saying whether this evaluation set, replaced or kept it.
    threshold_in_use: float | None = None
    threshold_note: str = ""

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "seconds": self.seconds,
            "crops": self.crops,
            "threshold_in_use": self.threshold_in_use,
            "rows": [asdict(r) for r in self.rows],
        }


def score_pairs(
    embed,
    pairs: list[Pair],
    crops_root: Path,
    protocol: str,
    folds: np.ndarray | None,
    dropped: int = 0,
    distance=embedding_distance,
) -> tuple[Metrics, np.ndarray, np.ndarray]:
    """`embed(paths) -> features`; the distance of every pair, then the metrics."""
    paths, left, right = pair_crop_paths(pairs, crops_root)
    e = embed(paths)
    distances = distance(e[left], e[right])
    same = np.array([p.same for p in pairs])
    if folds is None:
        folds = stratified_folds(same)
    return metrics(protocol, distances, same, folds, dropped), distances, same


def ensure_pair_crops(card: ModelCard, crops_root: Path, relpaths: list[str], progress: bool = True) -> int:
    """Crop the pictures of `relpaths` missing from `crops_root`, with the crop settings
    the model was trained with; returns how many were missing. A card without crop
    settings (or whose settings name another folder) is left to pair_crop_paths' error."""
    missing = {r for r in relpaths if not (crops_root / r).is_file()}
    stored = card.crop_settings
    if not missing or not stored:
        return len(missing)
    settings = CropSettings.from_dict(stored)
    variant = stored.get("variant") or datasets.default_variant()
    if output_dir(variant, settings) != crops_root:
        return len(missing)
    print(
        f"cropping {len(missing):,} pictures of the pairs missing from {crops_root.name} "
        f"(the model's crop settings: {settings.detector}, {settings.size} px)",
        flush=True,
    )
    preprocess_dataset(
        datasets.fetch_lfw(variant), settings, variant=variant, only=missing, progress=progress
    )
    return len(missing)


def record_threshold(
    card: ModelCard, evaluation: Evaluation, tta: bool, view2: bool, recalibrate: bool
) -> None:
    """Append this evaluation to the card's evaluations and decide its threshold: set
    it when there is none, replace it only with `recalibrate`, else keep it. Sets the
    evaluation's threshold_in_use and threshold_note."""
    chosen = evaluation.rows[0].threshold  # View 1, plain embeddings: what verify computes
    previous = card.threshold
    card.evaluations.append(
        {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "crops": Path(evaluation.crops).name,
            "tta": tta,
            "view2": view2,
            "threshold": chosen,
            "metrics": {r.protocol: asdict(r) for r in evaluation.rows},
        }
    )
    if previous is None or recalibrate:
        card.threshold = chosen
        # The metrics of the evaluation whose threshold is in use, beside it.
        card.metrics = {r.protocol: asdict(r) for r in evaluation.rows}
        card.crops = Path(evaluation.crops).name
        if previous is None:
            note = f"threshold {chosen:.4f} (View 1) saved in card.json"
        else:
            note = f"threshold replaced (--recalibrate): {previous:.4f} → {chosen:.4f} in card.json"
    elif chosen == previous:
        note = f"threshold {previous:.4f} in card.json confirmed: this evaluation chose the same"
    else:
        note = (
            f"kept the calibrated threshold {previous:.4f} in card.json; this evaluation chose "
            f'{chosen:.4f}, recorded under its "evaluations" (--recalibrate replaces it)'
        )
    evaluation.threshold_in_use = float(card.threshold)
    evaluation.threshold_note = note


def evaluate_model(
    folder: str | Path | None = None,
    crops: str | None = None,
    tta: bool = False,
    view2: bool = True,
    save: bool = True,
    recalibrate: bool = False,
    progress: bool = True,
) -> Evaluation:
    """Score a model (a folder, a run name under models/, or None: the newest) on View 1
    and, with `view2`, View 2. `crops` scores another crop folder (none is made then).
    `save`: write eval/ and record the evaluation, the threshold and (when the card has
    none, or with `recalibrate`) the validation people's open-set curve and confidence
    mapping in the card."""
    from facelib.data.pipeline import embed_files  # TensorFlow
    from facelib.recognition.model import (  # Keras
        load_model_folder,
        newest_model_folder,
        resolve_model_folder,
    )

    folder = resolve_model_folder(folder) if folder else newest_model_folder()
    model, card = load_model_folder(folder)
    crops_root = config.processed_dir() / (crops or card.training_crops)
    seen = card.seen_identities
    size = card.input_size
    start = time.perf_counter()

    unchecked = unchecked_folder_people(card)
    if unchecked:
        print(warn_unchecked(card, unchecked), flush=True)
    protocols = [("view1", datasets.view1_pairs("test"), True)]
    if view2:
        protocols.append(("view2", datasets.view2_pairs(), False))
    kept_pairs = []
    for name, pairs, strict in protocols:
        kept, dropped = unseen_pairs(pairs, seen, strict=strict)
        kept_pairs.append((name, kept, dropped))
    if crops is None:
        needed = pair_relpaths([p for _, kept, _ in kept_pairs for p in kept])
        ensure_pair_crops(card, crops_root, needed, progress)

    rows, details = [], {}
    for name, kept, dropped in kept_pairs:
        folds = None if name == "view1" else np.array([p.fold for p in kept])
        paths, _, _ = pair_crop_paths(kept, crops_root)
        plain = embed_files(model, paths, size)
        variants = {name: plain}
        if tta:  # the plain embeddings serve both rows; only the mirror images are new
            variants[f"{name} +TTA"] = mean_embedding(plain, embed_files(model, paths, size, mirrored=True))
        for label, embeddings in variants.items():
            row, distances, same = score_pairs(
                lambda _paths, e=embeddings: e, kept, crops_root, label, folds, dropped
            )
            row.unchecked_people = len(unchecked)
            rows.append(row)
            details[label] = (distances, same, kept)

    evaluation = Evaluation(
        str(folder), rows, round(time.perf_counter() - start, 1), details, crops=str(crops_root)
    )
    if not save:
        evaluation.threshold_in_use = card.threshold
        evaluation.threshold_note = "not saved: the card is unchanged"
        return evaluation
    measured, curve_note = None, ""
    # The validation people's curve and confidence: measured for a card without them
    # (models older than either), or again with `recalibrate`.
    if card.open_set is None or card.confidence is None or recalibrate:
        try:
            measured = validation_calibration(model, card)
        except FacelibError as exc:  # identification and confidence only: the scores above still stand
            curve_note = f"; no open-set calibration nor confidence: {exc}"
        else:
            if measured.confidence is not None:
                curve_note = f"; confidence: {measured.confidence.describe()}"
            elif card.confidence is None or recalibrate:
                curve_note = f"; {measured.confidence_note}"

    def record(fresh: ModelCard) -> None:
        record_threshold(fresh, evaluation, tta, view2, recalibrate)
        if measured is not None:
            measured.store_in(
                fresh,
                curve=fresh.open_set is None or recalibrate,
                confidence=fresh.confidence is None or recalibrate,
            )

    ModelCard.update(folder, record)
    evaluation.threshold_note += curve_note
    save_evaluation(folder, evaluation, crops_root)
    return evaluation


def save_evaluation(folder: Path, evaluation: Evaluation, crops_root: Path) -> Path:
    import matplotlib.pyplot as plt

    from facelib.evaluation import plots  # matplotlib

    out = folder / "eval"
    out.mkdir(exist_ok=True)
    write_json_atomic(out / "metrics.json", evaluation.to_json())
    primary = evaluation.rows[0]
    in_use = evaluation.threshold_in_use if evaluation.threshold_in_use is not None else primary.threshold
    distances, same, pairs = evaluation.distances[primary.protocol]
    save_view1_distances(out, distances, same)
    figures = {
        "distances.png": plots.distance_histogram(
            distances, same, primary.threshold, primary.protocol, in_use=in_use
        ),
        "roc.png": plots.roc(evaluation),
        # Mistakes of the verdicts verify gives: at the threshold in use.
        "mistakes.png": plots.hardest_mistakes(distances, same, pairs, in_use, crops_root),
    }
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=110)
        plt.close(figure)  # saved; kept open, each evaluation in a process would add three
    return out


VIEW1_DISTANCES = "view1_distances.npz"


def save_view1_distances(out: Path, distances: np.ndarray, same: np.ndarray) -> Path:
    """View 1's pair distances and same-person labels (eval/view1_distances.npz), where
    the dashboard reads them to place a verification distance among LFW pairs."""
    buffer = io.BytesIO()
    np.savez(buffer, distances=np.asarray(distances, np.float64), same=np.asarray(same, bool))
    return write_atomic(out / VIEW1_DISTANCES, buffer.getvalue())


def evaluate_lbp(
    crops_root: Path, view2: bool = True, seen: set[str] | frozenset = frozenset()
) -> Evaluation:
    """The LBP baseline in the same harness: View 1 test and View 2. LBP learns nothing,
    but to stand in a table beside a model it must be scored on the same pairs: pass
    the model's `seen` people and their View 2 pairs are dropped here too."""
    start = time.perf_counter()
    rows, details = [], {}
    protocols = [("view1", datasets.view1_pairs("test"))] + (
        [("view2", datasets.view2_pairs())] if view2 else []
    )
    for name, all_pairs in protocols:
        pairs, dropped = unseen_pairs(all_pairs, set(seen))
        folds = None if name == "view1" else np.array([p.fold for p in pairs])
        row, distances, same = score_pairs(
            lbp_embed, pairs, crops_root, name, folds, dropped, distance=chi_square
        )
        rows.append(row)
        details[name] = (distances, same, pairs)
    return Evaluation(
        "LBP (nri_uniform, 7x7, chi-square)", rows, round(time.perf_counter() - start, 1), details
    )


def print_table(evaluation: Evaluation) -> None:
    print(f"model: {evaluation.model} ({evaluation.seconds:.0f} s)")
    for row in evaluation.rows:
        print("  " + row.row())
