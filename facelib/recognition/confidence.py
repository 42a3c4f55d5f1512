"""A calibrated confidence beside the distance: P(same person | distance).

    mapping = fit_confidence(distances, same, source="…")   # None when too few pairs
    mapping(0.8)                       # P(same) at distance 0.8, a float in [0, 1]
    mapping.to_dict(), ConfidenceMap.from_dict(data)   # plain JSON, stored with a calibration

Two mappings are fitted on labelled pair distances: a logistic curve in the distance
(scikit-learn's LogisticRegression) and an isotonic one (IsotonicRegression, decreasing
in the distance, clipped at the ends of the fitted range). Each is scored by 5-fold
cross-validation on the fitting pairs, and the one with the lower expected calibration
error (ECE; the Brier score breaks a tie) is refitted on all of them and kept.

What the number means: among pairs like the fitting ones, with same-person and
different-person pairs equally likely (the fitting pairs are balanced), the share that
are the same person at that distance. It is a property of the pairs it was fitted on:
`facelib evaluate` fits it on the validation people of the training side (LFW press
photos), `facelib calibrate` on your own pictures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from facelib.core.errors import FacelibError
from facelib.core.metrics import brier_score, expected_calibration_error

METHODS = ("logistic", "isotonic")
FOLDS = 5
# Cross-validation needs a pair of each kind per fold; below this, no mapping is fitted.
MIN_PAIRS_PER_KIND = FOLDS
SEED = 0


@dataclass(frozen=True)
class ConfidenceMap:
    """distance → P(same person), fitted on `pairs` labelled distances."""

    method: str  # "logistic" or "isotonic"
    # logistic: {"coef": a, "intercept": b}, P = 1 / (1 + exp(-(a·d + b)));
    # isotonic: {"x": [...], "y": [...]}, P interpolated linearly, constant past the ends.
    params: dict
    source: str  # the pairs it was fitted on, in words
    same_pairs: int
    different_pairs: int
    # Each method's cross-validated ECE and Brier score on the fitting pairs, and the
    # chosen one's (what the choice was made on).
    scores: dict = field(default_factory=dict)

    @property
    def ece(self) -> float:
        return float(self.scores.get(self.method, {}).get("ece", math.nan))

    def __call__(self, distance):
        d = np.asarray(distance, np.float64)
        if self.method == "logistic":
            z = self.params["coef"] * d + self.params["intercept"]
            p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function, without overflow
        else:
            p = np.interp(d, self.params["x"], self.params["y"])
        p = np.clip(p, 0.0, 1.0)
        return float(p) if p.ndim == 0 else p

    def describe(self) -> str:
        return (
            f"{self.method} fit on {self.same_pairs:,} same-person and {self.different_pairs:,} "
            f"different-person pairs ({self.source}); cross-validated ECE {self.ece:.3f}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ConfidenceMap:
        try:
            mapping = cls(
                method=str(data["method"]),
                params={k: v for k, v in dict(data["params"]).items()},
                source=str(data.get("source", "?")),
                same_pairs=int(data.get("same_pairs", 0)),
                different_pairs=int(data.get("different_pairs", 0)),
                scores=dict(data.get("scores") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FacelibError(f"damaged confidence mapping ({exc})") from exc
        if mapping.method not in METHODS:
            raise FacelibError(f"unknown confidence mapping {mapping.method!r}; this facelib knows {METHODS}")
        return mapping


def _fit(method: str, distances: np.ndarray, same: np.ndarray) -> dict:
    """The parameters of one method fitted on these pairs."""
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        # C large: one feature and hundreds of pairs need no shrinking toward P = 0.5.
        model = LogisticRegression(C=1e6).fit(distances[:, None], same)
        return {"coef": float(model.coef_[0, 0]), "intercept": float(model.intercept_[0])}
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(distances, same.astype(np.float64))
    return {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}


def cross_validated_scores(distances, same, seed: int = SEED) -> dict[str, dict[str, float]]:
    """Each method's ECE and Brier score on out-of-fold predictions (stratified folds)."""
    from sklearn.model_selection import StratifiedKFold

    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    scores = {}
    for method in METHODS:
        predicted = np.empty(len(same))
        for train, test in folds.split(distances, same):
            params = _fit(method, distances[train], same[train])
            predicted[test] = ConfidenceMap(method, params, "", 0, 0)(distances[test])
        scores[method] = {
            "ece": expected_calibration_error(predicted, same),
            "brier": brier_score(predicted, same),
        }
    return scores


def fit_confidence(distances, same, source: str, seed: int = SEED) -> ConfidenceMap | None:
    """The better calibrated of the two mappings on these pairs (see the module note);
    None when there are fewer than MIN_PAIRS_PER_KIND pairs of either kind."""
    distances, same = np.asarray(distances, np.float64).ravel(), np.asarray(same, bool).ravel()
    if len(distances) != len(same):
        raise FacelibError(f"{len(distances)} distances but {len(same)} labels")
    n_same, n_different = int(same.sum()), int((~same).sum())
    if min(n_same, n_different) < MIN_PAIRS_PER_KIND or not np.isfinite(distances).all():
        return None
    scores = cross_validated_scores(distances, same, seed)
    method = min(METHODS, key=lambda m: (round(scores[m]["ece"], 6), scores[m]["brier"]))
    return ConfidenceMap(method, _fit(method, distances, same), source, n_same, n_different, scores)


def too_few_note(same_pairs: int, different_pairs: int) -> str:
    return (
        f"no confidence: {same_pairs} same-person and {different_pairs} different-person pairs, "
        f"at least {MIN_PAIRS_PER_KIND} of each are needed to fit one"
    )
