import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelib.core import config
from facelib.core.decision import embedding_distance
from facelib.core.metrics import stratified_folds
from facelib.data import datasets
from facelib.data.datasets import ImageRef, Pair
from facelib.evaluation.baselines import chi_square, lbp_features
from facelib.evaluation.evaluate import (
    IdentityOverlapError,
    evaluate_model,
    metrics,
    pair_crop_paths,
    unseen_pairs,
)
from facelib.recognition.card import ModelCard
from facelib.recognition.model import ModelError

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


def test_perfect_separation_scores_one():
    same = np.array([1] * 50 + [0] * 50, bool)
    distances = np.where(same, 0.2, 1.0) + np.linspace(0, 0.1, 100)
    m = metrics("toy", distances, same, stratified_folds(same))
    assert m.auc == 1.0 and m.accuracy_mean == 1.0 and m.accuracy_std == 0.0
    assert m.eer == 0.0 and m.tar_at_far_1e2 == 1.0
    assert 0.3 < m.threshold < 1.0


def test_reversed_distances_score_zero_auc():
    same = np.array([1, 1, 0, 0], bool)
    m = metrics("toy", np.array([0.9, 0.8, 0.1, 0.2]), same, np.array([0, 1, 0, 1]))
    assert m.auc == 0.0


def test_overlap_guard_refuses_or_drops_seen_people(mirror):
    pairs = datasets.view2_pairs()
    seen = {pairs[0].left.person, pairs[-1].right.person}
    kept, dropped = unseen_pairs(pairs, seen)
    assert dropped >= 2 and len(kept) == len(pairs) - dropped
    assert not any(p.left.person in seen or p.right.person in seen for p in kept)
    with pytest.raises(IdentityOverlapError, match="trained on"):
        unseen_pairs(pairs, seen, strict=True)
    view1_train = set(datasets.view1_people("train"))
    assert unseen_pairs(datasets.view1_pairs("test"), view1_train, strict=True)[1] == 0


def test_lbp_histograms_and_chi_square():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (160, 160, 3), np.uint8)
    features = lbp_features(image)
    assert features.shape == (49 * 59,) and features.sum() == pytest.approx(1.0)
    other = lbp_features(rng.integers(0, 256, (160, 160, 3), np.uint8))
    assert chi_square(features[None], features[None])[0] == 0.0
    assert chi_square(features[None], other[None])[0] > 0.0


# --------------------------------------------------- evaluate_model on a trained model
# A copy of the smoke model (its model.keras linked, its card copied) that says it was
# trained on 96 px crops: evaluating it makes its own crop folder, never touching the
# session's smoke crops. The protocols are cut to 20 pairs each to take seconds.

CROPS_96 = f"lfw-deepfunneled-{config.preset('smoke').detector}-96"


def _unseen(pairs, seen):
    return [p for p in pairs if p.left.person not in seen and p.right.person not in seen]


@pytest.fixture
def run_name(smoke_model_copy):
    return smoke_model_copy  # conftest: its card names CROPS_96


def _card(name: str) -> dict:
    return ModelCard.load(config.models_dir() / name)


@pytest.fixture
def few_pairs(monkeypatch, mirror, run_name):
    """View 1: 10 same + 10 different test pairs. View 2: one same and one different
    pair of unseen people per fold, plus 3 pairs with a person the model trained on."""
    card = _card(run_name)
    seen = set(card.training_identities) | set(card.validation_identities)
    view1 = datasets.view1_pairs("test")
    view1 = view1[:10] + view1[500:510]
    all_view2 = datasets.view2_pairs()  # per fold 300 same, then 300 different pairs
    view2 = [_unseen(all_view2[300 * block : 300 * (block + 1)], seen)[0] for block in range(20)]
    trained_on = card.training_identities[:3]
    stranger = view2[-1].right
    view2_seen = [Pair(ImageRef(person, 1), stranger, 0) for person in trained_on]
    monkeypatch.setattr(datasets, "view1_pairs", lambda split: view1)
    monkeypatch.setattr(datasets, "view2_pairs", lambda: view2 + view2_seen)
    return view1, view2, view2_seen


def test_evaluate_by_run_name_crops_the_pairs_with_the_models_settings(run_name, few_pairs):
    view1, _, _ = few_pairs
    crops_root = config.processed_dir() / CROPS_96
    evaluation = evaluate_model(run_name, view2=False, progress=False)

    assert Path(evaluation.model) == config.models_dir() / run_name
    assert Path(evaluation.crops) == crops_root
    assert [r.protocol for r in evaluation.rows] == ["view1"] and evaluation.rows[0].pairs == 20
    assert json.loads((crops_root / "settings.json").read_text())["size"] == 96
    for pair in view1:
        for ref in (pair.left, pair.right):
            assert Image.open(crops_root / ref.relpath).size == (96, 96)
    card = _card(run_name)
    assert card.threshold == evaluation.rows[0].threshold == evaluation.threshold_in_use
    assert card.crops == CROPS_96 and "saved in card.json" in evaluation.threshold_note
    assert (config.models_dir() / run_name / "eval" / "metrics.json").is_file()


def test_evaluating_again_keeps_the_threshold_unless_recalibrating(run_name, few_pairs):
    first = evaluate_model(run_name, view2=False, progress=False)
    folder = config.models_dir() / run_name
    earlier = 0.123  # as if an earlier evaluation (other crops, say) had chosen another one
    ModelCard.update(folder, lambda card: setattr(card, "threshold", earlier))

    again = evaluate_model(run_name, view2=False, tta=True, progress=False)
    card = _card(run_name)
    assert card.threshold == earlier == again.threshold_in_use
    assert "kept the calibrated threshold 0.1230" in again.threshold_note
    assert [e["threshold"] for e in card.evaluations] == [first.rows[0].threshold, again.rows[0].threshold]
    assert [e["tta"] for e in card.evaluations] == [False, True]
    # A TTA verifier is judged by this evaluation's TTA row, not by the card's threshold.
    from facelib.recognition.calibration import tta_calibration

    (tta_row,) = [r for r in again.rows if r.protocol == "view1 +TTA"]
    assert tta_calibration(card, folder).threshold == tta_row.threshold != card.threshold
    assert all(e["date"] and e["crops"] == CROPS_96 and e["view2"] is False for e in card.evaluations)

    recalibrated = evaluate_model(run_name, view2=False, recalibrate=True, progress=False)
    card = _card(run_name)
    assert card.threshold == recalibrated.rows[0].threshold != earlier
    assert "threshold replaced (--recalibrate): 0.1230 →" in recalibrated.threshold_note
    assert len(card.evaluations) == 3


def test_evaluate_fits_the_confidence_of_a_card_without_one_and_keeps_it_after(
    run_name, few_pairs, monkeypatch
):
    """A card from before confidences: evaluate measures the validation people (here a
    stand-in with a known mapping) and stores the mapping; the next evaluation keeps it."""
    from facelib.evaluation import evaluate as evaluate_module
    from facelib.recognition.calibration import PeopleCalibration
    from facelib.recognition.confidence import fit_confidence
    from facelib.recognition.identification import ImpostorCurve

    folder = config.models_dir() / run_name
    ModelCard.update(folder, lambda card: setattr(card, "confidence", None))
    had_curve = _card(run_name).open_set
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, 1000)
    mapping = fit_confidence(d, rng.random(1000) < 1 / (1 + np.exp(6 * (d - 1))), "stand-in pairs")
    curve = ImpostorCurve.from_distances(np.linspace(0.5, 1.5, 100), source="stand-in")
    measured = []
    monkeypatch.setattr(
        evaluate_module,
        "validation_calibration",
        lambda model, card: measured.append(card.name) or PeopleCalibration(curve, mapping, ""),
    )
    first = evaluate_model(run_name, view2=False, progress=False)
    card = _card(run_name)
    assert card.confidence == mapping.to_dict() and card.confidence_note is None
    assert f"confidence: {mapping.describe()}" in first.threshold_note
    assert card.open_set == (had_curve or curve.to_dict())  # a curve it had is kept
    evaluate_model(run_name, view2=False, progress=False)
    assert len(measured) == 1 and _card(run_name).confidence == mapping.to_dict()


def test_view2_keeps_only_pairs_of_unseen_people_and_view1_refuses_any(run_name, few_pairs):
    _, view2, view2_seen = few_pairs
    evaluation = evaluate_model(run_name, view2=True, save=False, progress=False)
    row = next(r for r in evaluation.rows if r.protocol == "view2")
    assert (row.pairs, row.dropped_pairs) == (len(view2), len(view2_seen)) == (20, 3)
    _, _, scored = evaluation.distances["view2"]
    assert scored == view2
    assert _card(run_name).threshold is None  # save=False leaves the card alone

    folder = config.models_dir() / run_name
    view1 = datasets.view1_pairs("test")
    person = view1[0].left.person
    ModelCard.update(folder, lambda card: card.training_identities.append(person))
    overlapping = sum(person in (p.left.person, p.right.person) for p in view1)
    with pytest.raises(
        IdentityOverlapError, match=f"{overlapping} of 20 pairs involve people the model trained on"
    ):
        evaluate_model(run_name, view2=False, save=False, progress=False)


def test_tta_averages_each_crop_with_its_mirror_image(run_name, few_pairs):
    """The +TTA row's distances, recomputed by flipping the crops by hand."""
    import tensorflow as tf

    from facelib.data.pipeline import decode, eval_transform
    from facelib.recognition.model import load_model_folder

    view1, _, _ = few_pairs
    evaluation = evaluate_model(run_name, view2=False, tta=True, save=False, progress=False)
    assert [r.protocol for r in evaluation.rows] == ["view1", "view1 +TTA"]

    model, card = load_model_folder(config.models_dir() / run_name)
    paths, left, right = pair_crop_paths(view1, Path(evaluation.crops))
    images = np.stack([eval_transform(tf.cast(decode(p), tf.float32), card.input_size) for p in paths])
    plain = model.predict(images, verbose=0)
    mirrored = model.predict(np.ascontiguousarray(images[:, :, ::-1]), verbose=0)  # width is axis 2
    both = plain + mirrored
    both /= np.linalg.norm(both, axis=1, keepdims=True)

    plain_distances, _, _ = evaluation.distances["view1"]
    tta_distances, _, _ = evaluation.distances["view1 +TTA"]
    np.testing.assert_allclose(plain_distances, embedding_distance(plain[left], plain[right]), atol=1e-4)
    np.testing.assert_allclose(tta_distances, embedding_distance(both[left], both[right]), atol=1e-4)
    assert not np.allclose(tta_distances, plain_distances, atol=1e-4)  # the mirror images count


def test_unknown_run_name_lists_the_trained_runs(run_name):
    with pytest.raises(ModelError, match=f"'no-such-run' does not exist.*trained runs there: .*{run_name}"):
        evaluate_model("no-such-run")


def test_imbalanced_pairs_are_reported_by_balanced_accuracy():
    """30% same pairs, and a model that cannot tell them apart: plain accuracy looks
    like 70% (always "different"), balanced accuracy says 50%, and the row says so."""
    rng = np.random.default_rng(0)
    same = np.array([1] * 300 + [0] * 700, bool)
    distances = rng.uniform(0, 1, 1000)  # no information at all
    m = metrics("view2", distances, same, stratified_folds(same))
    assert m.same_pairs == 300 and m.different_pairs == 700
    assert m.accuracy_mean > 0.65  # the majority class alone gets here
    assert 0.4 < m.balanced_accuracy_mean < 0.6
    row = m.row()
    assert "balanced accuracy" in row and "300 same, 700 different" in row
    assert "TAR@FAR=1e-3" not in row  # under 1,000 different pairs it means zero false accepts
