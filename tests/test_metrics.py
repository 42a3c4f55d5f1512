"""The pure metrics (facelib.core.metrics) on small cases whose answers are known by hand."""

import numpy as np
import pytest

from facelib.core.metrics import (
    best_threshold,
    cross_validated_accuracy,
    dir_at_fpir,
    equal_error_rate,
    figures_from_distances,
    rank1,
    roc_auc,
    stratified_folds,
    tar_at_far,
    verdict_accuracy,
)

# ------------------------------------------------------------------ verification


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


def test_each_folds_threshold_is_chosen_without_that_fold():
    """Fold 0 is poisoned: 30 same-person pairs at 0.6, between the other folds' classes.
    Seen, it would pull the threshold above 0.6 (and be scored right); unseen, the other
    folds choose 0.5 and reject all of them. Every fold's threshold must be the one the
    other folds alone choose."""
    clean_same = np.tile(np.linspace(0.1, 0.3, 5), 9)
    clean_different = np.tile(np.linspace(0.7, 0.9, 5), 9)
    distances = np.concatenate([np.full(30, 0.6), clean_same, clean_different])
    same = np.array([True] * 30 + [True] * 45 + [False] * 45)
    folds = np.concatenate(
        [np.zeros(30, int), np.repeat(np.arange(1, 10), 5), np.repeat(np.arange(1, 10), 5)]
    )
    assert best_threshold(distances, same) == pytest.approx(0.65)  # what a leaky fold 0 would use

    accuracies, thresholds = cross_validated_accuracy(distances, same, folds)
    assert thresholds[0] == pytest.approx(0.5) and accuracies[0] == 0.0
    for k in range(10):
        others = folds != k
        assert thresholds[k] == best_threshold(distances[others], same[others])
    assert accuracies[1:] == [1.0] * 9


def test_balanced_threshold_weighs_both_kinds_of_pair_equally():
    same = np.array([1, 1] + [0] * 8, bool)
    distances = np.array([0.5, 0.55, 0.45, 0.52, 0.53, 0.9, 0.9, 0.9, 0.9, 0.9])
    # plain accuracy: answering "different" always is right 8 times in 10, no threshold
    # does better; balanced: a threshold above 0.55 takes both same pairs (0.81 vs 0.5)
    assert best_threshold(distances, same) < 0.45
    assert 0.55 < best_threshold(distances, same, balanced=True) < 0.9


def test_auc_of_separated_reversed_and_tied_distances():
    same = np.array([1, 1, 0, 0], bool)
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), same) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), same) == 0.0
    assert roc_auc(np.full(4, 0.5), same) == 0.5  # no information
    # one different pair (0.15) among the same ones: 3 of the 4 same/different orderings right
    assert roc_auc(np.array([0.1, 0.2, 0.15, 0.9]), same) == pytest.approx(0.75)


def test_verdict_accuracy_plain_and_balanced():
    same = np.array([1, 0, 0, 0], bool)
    distances = np.array([0.9, 0.1, 0.8, 0.95])
    # at 0.5: the same pair rejected (wrong), 0.1 accepted (wrong), 0.8 and 0.95 rejected (right)
    assert verdict_accuracy(distances, same, 0.5) == 0.5
    assert verdict_accuracy(distances, same, 0.5, balanced=True) == pytest.approx((0 + 2 / 3) / 2)
    # strictly below: at 0.9 the same pair (0.9) is still rejected, just above it it is accepted
    assert verdict_accuracy(distances, same, 0.9) == 0.25
    assert verdict_accuracy(distances, same, 0.91) == 0.5


def test_equal_error_rate_where_both_errors_meet():
    # one different pair closer than one same pair: at the best cut one error of each kind in 4
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    distances = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.7, 0.8, 0.9])
    assert equal_error_rate(distances, same) == pytest.approx(0.25)
    assert tar_at_far(distances, same, 0.25) == 1.0 and tar_at_far(distances, same, 0.0) == 0.75


# ------------------------------------------------------------------ identification

# 3 people; mated probes' distances to each (their own column in TRUTH), strangers' too.
MATED = np.array(
    [
        [0.1, 0.9, 0.8],  # right, 0.1
        [0.7, 0.3, 0.9],  # right, 0.3
        [0.2, 0.6, 0.5],  # wrong: nearest is person 0, truth 2
        [0.9, 0.8, 0.4],  # right, 0.4
    ]
)
TRUTH = np.array([0, 1, 2, 2])
STRANGERS = np.array([[0.25, 0.9, 0.9], [0.9, 0.35, 0.9], [0.9, 0.9, 0.6], [0.8, 0.8, 0.8]])


def test_rank1_counts_the_probes_whose_nearest_person_is_their_own():
    assert rank1(MATED, TRUTH) == 0.75
    assert rank1(MATED[:2], TRUTH[:2]) == 1.0


def test_dir_at_fpir_reads_the_threshold_off_the_strangers():
    # strangers' nearest: 0.25, 0.35, 0.6, 0.8. FPIR 0.25: threshold 0.25 (the lowest,
    # 'lower' quantile) names none of them (strictly below); only the 0.1 probe passes.
    assert dir_at_fpir(MATED, TRUTH, STRANGERS, 0.25) == 0.25
    # FPIR 0.5: threshold 0.35; 0.1 and 0.3 pass, both right
    assert dir_at_fpir(MATED, TRUTH, STRANGERS, 0.5) == 0.5
    # FPIR 0.75: threshold 0.6; 0.1, 0.3, 0.4 right, the 0.2 probe is named wrongly: not counted
    assert dir_at_fpir(MATED, TRUTH, STRANGERS, 0.75) == 0.75
    figures = figures_from_distances(MATED, TRUTH, STRANGERS, fpirs=(0.25, 0.5))
    assert figures["rank1"] == 0.75 and figures["dir"] == {0.25: 0.25, 0.5: 0.5}
    assert figures["curve"]["fpir"] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    # below 0.25, 0.35, 0.6, 0.8, above all: the right probes under each
    assert figures["curve"]["dir"] == pytest.approx([0.25, 0.5, 0.75, 0.75, 0.75])


def test_without_strangers_only_rank1():
    figures = figures_from_distances(MATED, TRUTH, np.zeros((0, 3)))
    assert figures == {"rank1": 0.75, "dir": {}, "curve": {}}
