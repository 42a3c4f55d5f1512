"""The calibrated confidence P(same person | distance): synthetic distances whose true
probabilities are known, the calibration error, and the mapping's way into calibrations
and the model card (unit tests: no TensorFlow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelib.core.errors import FacelibError
from facelib.core.metrics import expected_calibration_error, reliability
from facelib.recognition.calibration import (
    Calibration,
    calibration_from_embeddings,
    card_calibration,
    load_calibration,
    save_calibration,
)
from facelib.recognition.card import ModelCard
from facelib.recognition.confidence import MIN_PAIRS_PER_KIND, ConfidenceMap, fit_confidence


def true_logistic(d):
    """P(same) falling from ~1 to ~0 around distance 1.0."""
    return 1.0 / (1.0 + np.exp(-(-9.0 * d + 9.0)))


def draw(p_of, n=4000, seed=0):
    """Distances spread over [0.2, 1.8] and labels drawn with probability p_of(distance)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.2, 1.8, n)
    return d, rng.random(n) < p_of(d)


def test_the_fitted_mapping_recovers_a_known_logistic():
    d, same = draw(true_logistic)
    mapping = fit_confidence(d, same, "synthetic")
    grid = np.linspace(0.2, 1.8, 81)
    assert np.abs(mapping(grid) - true_logistic(grid)).max() < 0.05
    assert mapping(0.2) > 0.95 and mapping(1.8) < 0.05  # monotone: nearer is likelier the same
    assert np.all(np.diff(mapping(grid)) <= 1e-12)
    assert mapping.same_pairs == int(same.sum()) and mapping.different_pairs == int((~same).sum())
    assert set(mapping.scores) == {"logistic", "isotonic"} and mapping.ece < 0.03


def test_a_step_that_no_logistic_can_follow_is_fitted_by_isotonic():
    """P(same) is 0.9 below 1.0 and 0.1 above: plateaus a logistic curve cannot make, so
    the cross-validated calibration error chooses isotonic, which follows them."""
    d, same = draw(lambda d: np.where(d < 1.0, 0.9, 0.1), n=6000, seed=1)
    mapping = fit_confidence(d, same, "synthetic step")
    assert mapping.method == "isotonic"
    assert mapping.scores["isotonic"]["ece"] < mapping.scores["logistic"]["ece"]
    assert mapping(0.4) == pytest.approx(0.9, abs=0.05) and mapping(1.6) == pytest.approx(0.1, abs=0.05)
    # clipped past the fitted range, never outside [0, 1]
    assert mapping(-5.0) == mapping(float(np.min(d))) and 0.0 <= mapping(99.0) <= 1.0


def test_ece_is_small_for_calibrated_probabilities_and_large_for_miscalibrated_ones():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 20000)
    same = rng.random(len(p)) < p
    assert expected_calibration_error(p, same) < 0.02
    overconfident = np.where(p > 0.5, 1.0, 0.0)  # the right side, said as certainty
    assert expected_calibration_error(overconfident, same) > 0.2
    assert expected_calibration_error(p**3, same) > 0.1


def test_reliability_bins_hold_the_mean_prediction_and_the_observed_share():
    predicted, observed, counts = reliability([0.05, 0.05, 0.95, 1.0], [False, True, True, True], bins=10)
    assert counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert predicted[0] == pytest.approx(0.05) and observed[0] == 0.5
    assert predicted[9] == pytest.approx(0.975) and observed[9] == 1.0
    assert np.isnan(predicted[1]) and np.isnan(observed[1])
    # |0.05 - 0.5| * 2/4 + |0.975 - 1| * 2/4
    assert expected_calibration_error([0.05, 0.05, 0.95, 1.0], [0, 1, 1, 1]) == pytest.approx(0.2375)


def test_too_few_pairs_of_either_kind_give_no_mapping():
    d = np.linspace(0, 2, 40)
    same = np.zeros(40, bool)
    same[: MIN_PAIRS_PER_KIND - 1] = True
    assert fit_confidence(d, same, "few") is None
    same[: MIN_PAIRS_PER_KIND + 10] = True
    assert fit_confidence(d, same, "enough") is not None
    with pytest.raises(FacelibError, match="3 distances but 2 labels"):
        fit_confidence([0.1, 0.2, 0.3], [True, False], "mismatch")


def test_the_mapping_is_plain_json_and_comes_back_the_same():
    for seed, p_of in ((0, true_logistic), (1, lambda d: np.where(d < 1.0, 0.9, 0.1))):
        mapping = fit_confidence(*draw(p_of, seed=seed), "synthetic")
        again = ConfidenceMap.from_dict(json.loads(json.dumps(mapping.to_dict())))
        grid = np.linspace(0, 2, 33)
        assert again == mapping and np.array_equal(again(grid), mapping(grid))
    with pytest.raises(FacelibError, match="unknown confidence mapping 'spline'"):
        ConfidenceMap.from_dict({**mapping.to_dict(), "method": "spline"})
    with pytest.raises(FacelibError, match="damaged"):
        ConfidenceMap.from_dict({"params": {}})


def _card(**fields) -> ModelCard:
    return ModelCard(name="m", input_size=64, embedding_dim=8, threshold=1.0, **fields)


def test_the_cards_mapping_round_trips_through_card_json_into_its_calibration(tmp_path):
    mapping = fit_confidence(*draw(true_logistic), "validation people (synthetic)")
    _card(confidence=mapping.to_dict()).save(tmp_path)
    calibration = card_calibration(ModelCard.load(tmp_path), tmp_path)
    assert calibration.confidence == mapping and calibration.confidence_of(0.5) == mapping(0.5)
    assert calibration.confidence_source.startswith("calibration 'lfw': ")
    assert "validation people (synthetic)" in calibration.confidence_source


def test_an_old_card_has_no_confidence_and_says_how_to_get_one(tmp_path):
    data = _card().to_dict()
    del data["confidence"], data["confidence_note"]  # as written before confidences existed
    (tmp_path / "card.json").write_text(json.dumps(data))
    calibration = card_calibration(ModelCard.load(tmp_path), tmp_path)
    assert calibration.confidence is None and calibration.confidence_of(0.5) is None
    assert calibration.confidence_source == ""
    assert "facelib evaluate --model" in calibration.confidence_note
    # the reason training recorded, when it could not fit one, wins
    _card(confidence_note="no confidence: 2 same-person pairs").save(tmp_path)
    assert card_calibration(ModelCard.load(tmp_path), tmp_path).confidence_note.endswith(
        "2 same-person pairs"
    )


def test_a_named_calibration_is_fitted_with_a_mapping_and_keeps_it_on_disk(tmp_path):
    """calibrate's path: embeddings of people; the mapping is fitted on the threshold's pairs."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 16))
    labels = np.repeat(np.arange(12), 6)
    embeddings = centres[labels] + 0.6 * rng.normal(size=(len(labels), 16))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    calibration = calibration_from_embeddings(embeddings, labels, "office", "test pictures")
    assert calibration.confidence is not None and calibration.confidence_note == ""
    assert calibration.confidence.same_pairs == 12 * 15  # every same-person pair
    assert calibration.confidence(0.0) > 0.9 > 0.1 > calibration.confidence(2.0)
    save_calibration(tmp_path, calibration)
    assert load_calibration(tmp_path, "office").confidence == calibration.confidence


def test_a_calibration_saved_before_mappings_loads_with_a_note(tmp_path):
    old = Calibration("office", 0.9, "facelib calibrate", None).to_dict()
    del old["confidence"], old["confidence_note"]
    (tmp_path / "calibrations").mkdir()
    (tmp_path / "calibrations" / "office.json").write_text(json.dumps(old))
    loaded = load_calibration(tmp_path, "office")
    assert loaded.confidence is None and "run `facelib calibrate` again" in loaded.confidence_note


def test_too_few_pictures_calibrate_without_a_mapping_and_say_why():
    labels = np.array([0, 0, 1, 1, 2, 2])  # 3 same-person pairs
    embeddings = np.eye(6)
    calibration = calibration_from_embeddings(embeddings, labels, "tiny", "test")
    assert calibration.confidence is None
    assert calibration.confidence_note.startswith("no confidence: 3 same-person and 3 different-person pairs")
