"""Open-set identification: which enrolled person is this, or nobody we know?

    curve = ImpostorCurve.from_embeddings(embeddings, labels, source="…")   # calibration
    rule = OpenSetRule(curve, fpir=0.01, margin=0.0)
    decision = rule.decide(probe, {"Ada": ada_templates, "Grace": grace_templates})
    decision.name            # "Ada", or None for unknown
    decision.reason          # "match" | "too far" | "ambiguous" | "empty"
    decision.candidates      # the nearest three people with their distances
    decision.explain()       # one sentence for people

Why a rule of its own: the 1:1 verification threshold maximises pair accuracy, so a
stranger passes one comparison at the equal-error rate; compared with N enrolled
people, a stranger gets *someone's* name with probability 1 − (1 − FAR)^N. The rule
here names a person only when the best distance is below the threshold that keeps the
false-positive identification rate (FPIR: strangers given a name) at the chosen level
for this gallery's size, read off the distances of *different* people measured on
calibration faces (the training side's validation people, or your own pictures with
`facelib calibrate`). Optionally the best person must also beat the runner-up by a
margin, so a face between two enrolled people is "unknown" rather than a coin toss.

Templates: a person may have several enrolled pictures. `mode="min"` compares the
probe with each of them and keeps the nearest; `mode="mean"` compares it with their
normalised mean. bench/open_set.py measures both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from facelib.core.decision import embedding_distance, same_person
from facelib.core.errors import FacelibError
from facelib.core.metrics import figures_from_distances

TEMPLATE_MODES = ("min", "mean")
# False-accept rates at which the impostor curve is stored: from 1e-6 to 0.5, log-spaced.
FAR_GRID = tuple(float(x) for x in np.logspace(-6, np.log10(0.5), 49))
DEFAULT_FPIR = 0.01


def euclidean(probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Distances between every probe (rows) and every template (columns)."""
    probes, templates = np.asarray(probes, np.float64), np.asarray(templates, np.float64)
    squared = (probes**2).sum(1)[:, None] + (templates**2).sum(1)[None, :] - 2 * probes @ templates.T
    return np.sqrt(np.maximum(squared, 0))


def different_person_distances(embeddings: np.ndarray, labels, chunk: int = 1024) -> np.ndarray:
    """Every distance between pictures of different people (each pair once)."""
    embeddings = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    out = []
    for start in range(0, len(embeddings), chunk):
        block = embeddings[start : start + chunk]
        d = euclidean(block, embeddings)
        rows = np.arange(start, start + len(block))[:, None]
        keep = (np.arange(len(embeddings))[None, :] > rows) & (
            labels[start : start + chunk, None] != labels[None, :]
        )
        out.append(d[keep])
    return np.concatenate(out) if out else np.zeros(0)


@dataclass(frozen=True)
class ImpostorCurve:
    """How often two different people come closer than a distance: the false-accept
    rate of one comparison (FAR), stored at FAR_GRID. Below 1/pairs it cannot be
    measured: `threshold_at` then answers about the smallest distance seen, and
    `smallest_far` says where that starts."""

    far: tuple[float, ...]
    distance: tuple[float, ...]
    pairs: int
    source: str

    @classmethod
    def from_distances(cls, distances: np.ndarray, source: str) -> ImpostorCurve:
        distances = np.sort(np.asarray(distances, np.float64))
        if len(distances) == 0:
            raise FacelibError(
                "no different-person pairs to calibrate on: give pictures of at least two people"
            )
        return cls(
            far=FAR_GRID,
            distance=tuple(float(np.quantile(distances, q, method="lower")) for q in FAR_GRID),
            pairs=len(distances),
            source=source,
        )

    @classmethod
    def from_embeddings(
        cls, embeddings: np.ndarray, labels, source: str, max_pictures: int = 3000, seed: int = 0
    ) -> ImpostorCurve:
        """From every different-person pair; above `max_pictures` pictures (4.5 million
        pairs, 36 MB of distances), from a seeded sample of that many pictures."""
        embeddings, labels = np.asarray(embeddings), np.asarray(labels)
        if len(embeddings) > max_pictures:
            keep = np.sort(np.random.default_rng(seed).choice(len(embeddings), max_pictures, replace=False))
            embeddings, labels = embeddings[keep], labels[keep]
            source += f" (a seeded sample of {max_pictures:,} pictures)"
        return cls.from_distances(different_person_distances(embeddings, labels), source)

    @property
    def smallest_far(self) -> float:
        return 1.0 / self.pairs

    def threshold_at(self, far: float) -> float:
        """The distance below which a fraction `far` of different-person pairs fall."""
        far = min(max(far, self.far[0]), self.far[-1])
        return float(np.interp(np.log(far), np.log(self.far), self.distance))

    def threshold_for(self, fpir: float, comparisons: int) -> float:
        """Threshold on the best of `comparisons` distances so that a stranger is
        named with probability `fpir`: FAR per comparison = 1 − (1 − FPIR)^(1/N)."""
        return self.threshold_at(per_comparison_far(fpir, comparisons))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> ImpostorCurve:
        try:
            curve = cls(
                tuple(float(x) for x in data["far"]),
                tuple(float(x) for x in data["distance"]),
                int(data["pairs"]),
                str(data["source"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FacelibError(f"damaged open-set calibration ({exc!r}); calibrate again") from exc
        far = np.array(curve.far)
        if (
            not len(far)
            or len(far) != len(curve.distance)
            or curve.pairs < 1
            or np.any(np.diff(far) <= 0)
            or np.any(np.diff(curve.distance) < 0)
        ):
            raise FacelibError(
                "damaged open-set calibration (its curve is empty or not increasing); calibrate again"
            )
        return curve


def per_comparison_far(fpir: float, comparisons: int) -> float:
    if not 0 < fpir < 1:
        raise FacelibError(f"the false-positive identification rate must be in (0, 1), not {fpir}")
    return 1.0 - (1.0 - fpir) ** (1.0 / max(1, comparisons))


@dataclass(frozen=True)
class UnmeasurableRate:
    """An open-set rule asks its impostor curve for a false-accept rate per comparison
    below 1/pairs, which the curve cannot measure: the name threshold is then about its
    smallest different-person distance, and more strangers may be named than asked."""

    fpir: float
    comparisons: int
    far: float  # per comparison
    pairs: int  # different-person pairs of the curve
    calibration: str

    def __str__(self) -> str:
        return (
            f"{100 * self.fpir:g}% of strangers named over {self.comparisons} comparisons needs a "
            f"false-accept rate of {self.far:.2g} per comparison, below what calibration "
            f"'{self.calibration}' can measure ({self.pairs:,} different-person pairs, so "
            f"1/{self.pairs:,} at best): the name threshold is about its smallest different-person "
            "distance, and more strangers than that may be named"
        )


@dataclass(frozen=True)
class Candidate:
    name: str
    distance: float


@dataclass
class Decision:
    """The answer for one probe."""

    name: str | None  # None: unknown
    reason: str  # "match", "too far", "ambiguous" (too close to two people), "empty"
    candidates: list[Candidate] = field(default_factory=list)  # nearest first, at most `top`
    threshold: float = float("nan")
    margin: float = 0.0
    fpir: float = DEFAULT_FPIR

    @property
    def distance(self) -> float | None:
        return self.candidates[0].distance if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None

    def explain(self) -> str:
        if self.reason == "empty":
            return "nobody is enrolled"
        best = self.candidates[0]
        if self.reason == "match":
            return f"{best.name}: distance {best.distance:.3f}, below {self.threshold:.3f}"
        if self.reason == "too far":
            return (
                f"unknown: too far from everyone (nearest {best.name} at {best.distance:.3f}; "
                f"a name needs less than {self.threshold:.3f}, for {100 * self.fpir:g}% strangers named)"
            )
        second = self.runner_up or best
        return (
            f"unknown: too close to two people ({best.name} {best.distance:.3f}, "
            f"{second.name} {second.distance:.3f}; the nearest must lead by {self.margin:.3f})"
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "reason": self.reason,
            "distance": self.distance,
            "threshold": self.threshold,
            "margin": self.margin,
            "fpir": self.fpir,
            "candidates": [asdict(c) for c in self.candidates],
        }


def person_distances(
    probe: np.ndarray, templates: dict[str, np.ndarray], mode: str = "min"
) -> dict[str, float]:
    """Distance from the probe to each person: to the nearest of their templates
    (`min`), or to their normalised mean template (`mean`)."""
    if mode not in TEMPLATE_MODES:
        raise FacelibError(f"template mode must be one of {', '.join(TEMPLATE_MODES)}, not {mode!r}")
    out = {}
    for name, rows in templates.items():
        rows = np.atleast_2d(np.asarray(rows, np.float64))
        if mode == "mean":
            mean = rows.mean(axis=0)
            rows = (mean / max(np.linalg.norm(mean), 1e-12))[None, :]
        out[name] = float(np.min(embedding_distance(rows, np.asarray(probe, np.float64))))
    return out


def comparisons(templates: dict[str, np.ndarray], mode: str) -> int:
    """How many distances a probe is compared with: a stranger has that many chances."""
    if mode == "mean":
        return len(templates)
    return sum(len(np.atleast_2d(t)) for t in templates.values())


@dataclass(frozen=True)
class OpenSetRule:
    """Name the nearest person only when the distance keeps strangers named at `fpir`
    for this gallery, and (with `margin` > 0) the runner-up is at least that much further."""

    curve: ImpostorCurve
    fpir: float = DEFAULT_FPIR
    margin: float = 0.0
    mode: str = "min"
    top: int = 3

    def threshold(self, templates: dict[str, np.ndarray]) -> float:
        return self.curve.threshold_for(self.fpir, comparisons(templates, self.mode))

    def unmeasurable(self, templates: dict[str, np.ndarray], calibration: str) -> UnmeasurableRate | None:
        """What this rule cannot measure for this gallery (None when it can)."""
        n = comparisons(templates, self.mode)
        far = per_comparison_far(self.fpir, n)
        if far >= self.curve.smallest_far:
            return None
        return UnmeasurableRate(self.fpir, n, far, self.curve.pairs, calibration)

    def decide(self, probe: np.ndarray, templates: dict[str, np.ndarray]) -> Decision:
        if not templates:
            return Decision(None, "empty", [], margin=self.margin, fpir=self.fpir)
        distances = person_distances(probe, templates, self.mode)
        ranked = sorted(distances.items(), key=lambda item: item[1])
        candidates = [Candidate(n, d) for n, d in ranked[: self.top]]
        threshold = self.threshold(templates)
        best = candidates[0]
        if not same_person(best.distance, threshold):
            reason = "too far"
        elif len(ranked) > 1 and ranked[1][1] - best.distance < self.margin:
            reason = "ambiguous"
        else:
            reason = "match"
        return Decision(
            best.name if reason == "match" else None, reason, candidates, threshold, self.margin, self.fpir
        )


# ------------------------------------------------------------------ benchmark figures


def open_set_figures(
    gallery: dict[str, np.ndarray],
    mated: list[tuple[np.ndarray, str]],
    strangers: list[np.ndarray],
    mode: str = "min",
    fpirs: tuple[float, ...] = (0.01, 0.1),
) -> dict:
    """Rank-1 (closed set) and the detection-and-identification rate (DIR) at each FPIR,
    with thresholds read from the strangers' own best distances (the empirical curve).
    Without strangers only rank-1 is measured (no "dir" figures, an empty curve)."""
    names = list(gallery)

    def matrix(probes) -> np.ndarray:
        rows = [person_distances(p, gallery, mode) for p in probes]
        return np.array([[r[n] for n in names] for r in rows]).reshape(len(rows), len(names))

    truth = np.array([names.index(name) for _, name in mated], int)
    return figures_from_distances(matrix([p for p, _ in mated]), truth, matrix(strangers), fpirs)
