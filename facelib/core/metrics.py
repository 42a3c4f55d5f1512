"""Verification and identification metrics on distances: NumPy and scikit-learn only.

    auc = roc_auc(distances, same)                  # same: bool per pair
    eer = equal_error_rate(distances, same)
    tar = tar_at_far(distances, same, 1e-2)
    t = best_threshold(distances, same, balanced=True)
    accuracies, thresholds = cross_validated_accuracy(distances, same, stratified_folds(same))
    figures = figures_from_distances(mated, truth, strangers, fpirs=(0.01, 0.1))  # rank-1, DIR
    ece = expected_calibration_error(probabilities, same)   # of a confidence P(same)

A smaller distance means more alike; a pair is "same person" when its distance is
below the threshold (`decision.same_person`, the one verdict rule, itself NumPy only).
The LFW protocol (evaluate), your own folder (reports), the robustness suite and the
open-set benchmark all score with these, so each is computed one way.
"""

from __future__ import annotations

import numpy as np

from facelib.core.decision import same_person

# scikit-learn is imported inside the functions that use it: it takes a second or two
# to import, which every `facelib` command (even `fetch` and `--help`) would pay, as
# the command line imports this module through the reports it prints.

# ------------------------------------------------------------------ verification (1:1)


def roc_auc(distances: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve, the smaller distance scoring as the likelier same pair."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(same, -np.asarray(distances)))


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false accept rates, true accept rates) of every threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(same, -np.asarray(distances))
    return fpr, tpr


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """Highest true accept rate whose false accept rate is at most `far`."""
    fpr, tpr = roc(distances, same)
    ok = fpr <= far
    return float(tpr[ok].max()) if ok.any() else 0.0


def equal_error_rate(distances: np.ndarray, same: np.ndarray) -> float:
    fpr, tpr = roc(distances, same)
    i = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return float((fpr[i] + 1 - tpr[i]) / 2)


def verdict_accuracy(
    distances: np.ndarray, same: np.ndarray, threshold: float, balanced: bool = False
) -> float:
    """Share of right verdicts at `threshold`; `balanced`: the mean of the rates on
    same pairs and on different pairs."""
    right = same_person(distances, threshold) == same
    if not balanced:
        return float(np.mean(right))
    return float(
        np.mean([right[same].mean() if same.any() else 1.0, right[~same].mean() if (~same).any() else 1.0])
    )


def best_threshold(distances: np.ndarray, same: np.ndarray, balanced: bool = False) -> float:
    """The distance threshold (same person if distance < threshold) with the highest
    (balanced) accuracy on these pairs; candidates are midpoints between sorted distances."""
    same = same.astype(bool)
    d = np.sort(np.unique(distances))
    candidates = np.concatenate([[d[0] - 1e-6], (d[1:] + d[:-1]) / 2, [d[-1] + 1e-6]])
    scores = [verdict_accuracy(distances, same, t, balanced) for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def stratified_folds(same: np.ndarray, n_folds: int = 10, seed: int = 0) -> np.ndarray:
    """Fold number of every pair: stratified, so each fold holds both classes."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.empty(len(same), int)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(same)), same)):
        folds[test] = k
    return folds


def cross_validated_accuracy(
    distances: np.ndarray, same: np.ndarray, folds: np.ndarray, balanced: bool = False
) -> tuple[list[float], list[float]]:
    """Each fold's accuracy at the threshold chosen on the other folds (LFW's protocol),
    and those thresholds."""
    same = same.astype(bool)
    accuracies, thresholds = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        t = best_threshold(distances[train], same[train], balanced)
        thresholds.append(t)
        accuracies.append(verdict_accuracy(distances[test], same[test], t, balanced))
    return accuracies, thresholds


# ------------------------------------------------------------------ confidence


CALIBRATION_BINS = 10  # equal-width bins of P(same) for the calibration error and diagram


def reliability(
    probabilities: np.ndarray, same: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of the predicted P(same): the mean prediction, the share of
    same-person pairs, and the number of pairs (bins without pairs: NaN, NaN, 0)."""
    probabilities = np.clip(np.asarray(probabilities, np.float64), 0.0, 1.0)
    same = np.asarray(same, np.float64)
    # Bin b holds [b/bins, (b+1)/bins); a probability of exactly 1 goes in the last bin.
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(index, probabilities, minlength=bins) / counts
        observed = np.bincount(index, same, minlength=bins) / counts
    return predicted, observed, counts


def expected_calibration_error(
    probabilities: np.ndarray, same: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """ECE: the gap between predicted P(same) and the observed share of same-person
    pairs, per equal-width bin, weighted by the bin's share of pairs (0: calibrated)."""
    predicted, observed, counts = reliability(probabilities, same, bins)
    full = counts > 0
    return float(np.sum(np.abs(predicted[full] - observed[full]) * counts[full]) / max(counts.sum(), 1))


def brier_score(probabilities: np.ndarray, same: np.ndarray) -> float:
    """Mean squared error of P(same) against the 0/1 truth."""
    return float(np.mean((np.asarray(probabilities, np.float64) - np.asarray(same, np.float64)) ** 2))


# ------------------------------------------------------------------ identification (1:N)


def rank1(mated: np.ndarray, truth: np.ndarray) -> float:
    """Closed-set rank-1: share of mated probes (rows of a probe × person distance
    matrix) whose nearest person is their own (column `truth`)."""
    return float(np.mean(mated.argmin(axis=1) == truth))


def dir_at_fpir(mated: np.ndarray, truth: np.ndarray, strangers: np.ndarray, fpir: float) -> float:
    """Detection-and-identification rate: share of mated probes named, and rightly, at
    the threshold that names a share `fpir` of the strangers (read off their own
    nearest distances)."""
    best_strangers = strangers.min(axis=1)
    threshold = float(np.quantile(best_strangers, fpir, method="lower"))
    right = mated.argmin(axis=1) == truth
    return float(np.mean(right & same_person(mated.min(axis=1), threshold)))


def figures_from_distances(
    mated: np.ndarray, truth: np.ndarray, strangers: np.ndarray, fpirs: tuple[float, ...] = (0.01, 0.1)
) -> dict:
    """Rank-1, DIR at each FPIR and the DIR/FPIR curve from person-distance matrices
    (mated probes × people, each probe's own column in `truth`; strangers × people), for
    any distance. Without strangers only rank-1 (no "dir" figures, an empty curve)."""
    out = {"rank1": rank1(mated, truth), "dir": {}, "curve": {}}
    if not len(strangers):
        return out
    for fpir in fpirs:
        out["dir"][fpir] = dir_at_fpir(mated, truth, strangers, fpir)
    mated_best = mated.min(axis=1)
    mated_right = mated.argmin(axis=1) == truth
    best_strangers = strangers.min(axis=1)
    grid = np.unique(np.concatenate([best_strangers, [best_strangers.max() + 1e-6]]))
    fp = np.array([np.mean(best_strangers < t) for t in grid])
    dr = np.array([np.mean(mated_right & (mated_best < t)) for t in grid])
    out["curve"] = {"fpir": fp.tolist(), "dir": dr.tolist()}
    return out
