import numpy as np
import pytest

from facelib import datasets
from facelib.baselines import chi_square, lbp_features
from facelib.evaluate import (
    IdentityOverlapError,
    best_threshold,
    equal_error_rate,
    metrics,
    stratified_folds,
    tar_at_far,
    unseen_pairs,
)


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


def test_stratified_folds_each_hold_both_classes_of_a_sorted_file():
    same = np.array([True] * 500 + [False] * 500)  # the layout of pairsDevTest.txt
    folds = stratified_folds(same)
    for k in range(10):
        assert same[folds == k].sum() == 50 and (~same[folds == k]).sum() == 50


def test_threshold_and_rates_on_a_hand_checked_case():
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    distances = np.array([0.1, 0.2, 0.5, 0.4, 0.6, 0.7])
    assert 0.2 < best_threshold(distances, same) < 0.4  # 5 of 6 right, the best possible
    assert tar_at_far(distances, same, 0.0) == pytest.approx(2 / 3)
    assert equal_error_rate(distances, same) == pytest.approx(1 / 3)


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
