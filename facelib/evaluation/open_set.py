"""The LFW open-set identification benchmark: enrol some people, then ask who each
probe is, or whether it is nobody enrolled.

    report = lfw_open_set("recipe-hinge", people="validation", seed=0, enroll=(1, 2))
    print("\\n".join(report.table_lines()))

- People: `test` is View 1's `peopleDevTest.txt` (never anyone the model's card lists
  as trained on: refused otherwise); `validation` is the card's validation people
  (training side, held out from training), where settings such as the template mode
  and the margin can be chosen without looking at test people.
- Gallery: the people with at least 3 usable crops (a seeded choice of M of them, or
  all), `enroll` pictures of each enrolled. Mated probes: their other pictures.
  Strangers (non-mated probes): every picture of everyone else in those people,
  including people with one or two pictures.
- Figures, for the model (`min` and `mean` templates when 2 pictures are enrolled)
  and for LBP histograms with the chi-square distance: closed-set rank-1, and the
  detection-and-identification rate (DIR: mated probes named, and rightly) at a
  false-positive identification rate (FPIR: strangers named) of 1% and 10%, the
  threshold read from these strangers (`identification.open_set_figures`). For the
  model also what the *calibrated* rule does (`OpenSetRule` with the model's
  impostor curve, measured on validation people): the FPIR it reaches on these
  strangers at a target of 1% and 10%, and the DIR at that threshold, with and
  without a margin over the runner-up. Whether calibration travels to other people.

bench/open_set.py writes these to docs/benchmarks.md; notebook 05 shows them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import beta

from facelib.core import config
from facelib.core.decision import same_person
from facelib.core.errors import FacelibError
from facelib.core.metrics import figures_from_distances
from facelib.data import datasets
from facelib.data.preprocess import read_manifest
from facelib.evaluation.baselines import chi_square, lbp_embed
from facelib.evaluation.evaluate import IdentityOverlapError
from facelib.recognition.calibration import validation_curve
from facelib.recognition.card import ModelCard
from facelib.recognition.identification import (
    TEMPLATE_MODES,
    ImpostorCurve,
    OpenSetRule,
    euclidean,
    open_set_figures,
)

MIN_PICTURES = 3  # a gallery person: enrolled pictures plus at least one mated probe
FPIRS = (0.01, 0.1)
MARGINS = (0.0, 0.05, 0.1)
PEOPLE = ("test", "validation")


class TooFewPeopleError(FacelibError):
    """The people with crops cannot make a gallery and strangers."""


# ------------------------------------------------------------------ the split


@dataclass(frozen=True)
class OpenSetSplit:
    """Who is enrolled with which pictures, and the probes: mated (a picture of an
    enrolled person, not enrolled itself) and strangers (pictures of people not enrolled)."""

    seed: int
    enroll: int
    gallery: dict[str, list[str]]  # person → enrolled pictures
    mated: list[tuple[str, str]]  # (picture, its person)
    strangers: list[tuple[str, str]]  # (picture, its person, who is not enrolled)

    @property
    def gallery_people(self) -> int:
        return len(self.gallery)

    @property
    def enrolled_pictures(self) -> int:
        return sum(len(p) for p in self.gallery.values())

    @property
    def stranger_people(self) -> int:
        return len({name for _, name in self.strangers})

    def counts(self) -> dict[str, int]:
        return {
            "gallery_people": self.gallery_people,
            "enrolled_pictures": self.enrolled_pictures,
            "mated_probes": len(self.mated),
            "strangers": len(self.strangers),
            "stranger_people": self.stranger_people,
        }


def open_set_split(
    pictures: dict[str, list[str]],
    seed: int = 0,
    enroll: int = 1,
    gallery_people: int | None = None,
    min_pictures: int = MIN_PICTURES,
) -> OpenSetSplit:
    """Split people's pictures (person → picture paths) into a gallery, mated probes
    and strangers, deterministically for a seed. The random draws do not depend on
    `enroll`, so `enroll=1` and `enroll=2` of one seed enrol the same people, the
    second enrolling one more picture of each."""
    if not 1 <= enroll < min_pictures:
        raise FacelibError(
            f"enroll must be at least 1 and below {min_pictures} (pictures a gallery person has)"
        )
    if gallery_people is not None and gallery_people < 1:
        raise FacelibError(f"gallery_people must be at least 1, not {gallery_people}")
    rng = np.random.default_rng(seed)
    names = sorted(pictures)
    eligible = [n for n in names if len(pictures[n]) >= min_pictures]
    order = [str(n) for n in rng.permutation(np.array(eligible, dtype=object))] if eligible else []
    chosen = sorted(order[: gallery_people or len(order)])
    gallery, mated = {}, []
    for name in chosen:
        own = sorted(pictures[name])
        shuffled = [own[i] for i in rng.permutation(len(own))]
        gallery[name] = shuffled[:enroll]
        mated += [(path, name) for path in shuffled[enroll:]]
    strangers = [(path, name) for name in names if name not in gallery for path in sorted(pictures[name])]
    return OpenSetSplit(seed, enroll, gallery, mated, strangers)


# ------------------------------------------------------------------ distances as matrices


def chi_square_matrix(probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """`baselines.chi_square` between every probe and every template."""
    return np.stack([chi_square(probes, t[None, :]) for t in templates], axis=1)


def person_distance_matrix(
    probes: np.ndarray,
    templates: list[np.ndarray],
    mode: str = "min",
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray] = euclidean,
) -> np.ndarray:
    """Distance of every probe (rows) to every person (columns, in the order of
    `templates`): to the nearest of their templates (`min`) or to their normalised
    mean template (`mean`), as `identification.person_distances` computes it."""
    if mode not in TEMPLATE_MODES:
        raise FacelibError(f"template mode must be one of {', '.join(TEMPLATE_MODES)}, not {mode!r}")
    rows = [np.atleast_2d(np.asarray(t, np.float64)) for t in templates]
    if mode == "mean":
        means = np.stack([r.mean(axis=0) for r in rows])
        return distance(probes, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12))
    columns = distance(probes, np.concatenate(rows))
    starts = np.concatenate([[0], np.cumsum([len(r) for r in rows])[:-1]])
    return np.minimum.reduceat(columns, starts, axis=1)


def named(distances: np.ndarray, threshold: float, margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """What `OpenSetRule.decide` answers for each row of a person-distance matrix:
    (is someone named, the column of the nearest person)."""
    nearest = distances.argmin(axis=1)
    ordered = np.sort(distances, axis=1)
    lead = ordered[:, 1] - ordered[:, 0] if distances.shape[1] > 1 else np.full(len(distances), np.inf)
    return same_person(ordered[:, 0], threshold) & ~(lead < margin), nearest


def rule_rates(
    mated: np.ndarray, truth: np.ndarray, strangers: np.ndarray, threshold: float, margin: float = 0.0
) -> tuple[int, float]:
    """(strangers named, DIR: share of mated probes named rightly) under the rule."""
    stranger_named, _ = named(strangers, threshold, margin)
    mated_named, nearest = named(mated, threshold, margin)
    return int(stranger_named.sum()), float(np.mean(mated_named & (nearest == truth)))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of a rate k/n."""
    alpha = 1 - level
    low = float(beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    high = float(beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    return low, high


# ------------------------------------------------------------------ the benchmark


@dataclass
class Row:
    """Empirical figures of one method, enrolment and template mode."""

    method: str  # "model" or "LBP"
    enroll: int
    mode: str
    rank1: float
    dir: dict[float, float]
    curve: dict

    @property
    def label(self) -> str:
        mode = f", {self.mode}" if self.enroll > 1 and self.method == "model" else ""
        return f"{self.method}, {self.enroll} enrolled{mode}"


@dataclass
class CalibratedRow:
    """What the calibrated rule (the model's impostor curve) does on these people."""

    enroll: int
    mode: str
    target: float
    threshold: float
    margin: float
    strangers_named: int
    strangers: int
    dir: float

    @property
    def fpir(self) -> float:
        return self.strangers_named / max(self.strangers, 1)

    @property
    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.strangers_named, self.strangers)


@dataclass
class OpenSetReport:
    model: str
    crops: str
    people: str
    seed: int
    gallery_limit: int | None
    people_listed: int  # in the split (test list, or the card's validation people)
    people_with_crops: int
    eligible: int  # with ≥ MIN_PICTURES usable crops
    splits: dict[int, dict[str, int]]  # enroll → counts
    rows: list[Row] = field(default_factory=list)
    calibrated: list[CalibratedRow] = field(default_factory=list)
    calibration_source: str = ""
    calibration_note: str = ""

    def curves(self) -> dict[str, dict]:
        return {row.label: row.curve for row in self.rows}

    def points(self) -> dict[str, list[tuple[float, float]]]:
        """The calibrated rule's operating points (no margin), by the curve they lie on."""
        out: dict[str, list[tuple[float, float]]] = {}
        for c in self.calibrated:
            if c.margin == 0:
                label = Row("model", c.enroll, c.mode, 0, {}, {}).label
                out.setdefault(label, []).append((c.fpir, c.dir))
        return out

    def counts_lines(self) -> list[str]:
        lines = [
            "| enrolled pictures each | gallery people | enrolled pictures | mated probes | strangers (pictures / people) |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for enroll, c in self.splits.items():
            lines.append(
                f"| {enroll} | {c['gallery_people']:,} | {c['enrolled_pictures']:,} | {c['mated_probes']:,} "
                f"| {c['strangers']:,} / {c['stranger_people']:,} |"
            )
        return lines

    def table_lines(self) -> list[str]:
        fpirs = sorted({f for row in self.rows for f in row.dir})
        head = " | ".join(f"DIR @ FPIR {100 * f:g}%" for f in fpirs)
        lines = [
            f"| method | templates | rank-1 (closed set) | {head} |",
            "| --- | --- | ---: |" + " ---: |" * len(fpirs),
        ]
        for row in self.rows:
            templates = f"{row.enroll} enrolled" + (f", {row.mode}" if row.enroll > 1 else "")
            dirs = " | ".join(f"{100 * row.dir[f]:.1f}%" for f in fpirs)
            lines.append(f"| {row.method} | {templates} | {100 * row.rank1:.1f}% | {dirs} |")
        return lines

    def calibrated_lines(self) -> list[str]:
        lines = [
            "| templates | target FPIR | threshold | margin | strangers named | FPIR reached (95% interval) | DIR |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in self.calibrated:
            low, high = c.interval
            templates = f"{c.enroll} enrolled" + (f", {c.mode}" if c.enroll > 1 else "")
            lines.append(
                f"| {templates} | {100 * c.target:g}% | {c.threshold:.3f} | {c.margin:g} "
                f"| {c.strangers_named} / {c.strangers} | {100 * c.fpir:.1f}% ({100 * low:.1f}–{100 * high:.1f}%) "
                f"| {100 * c.dir:.1f}% |"
            )
        return lines


def split_people(card: ModelCard, people: str) -> list[str]:
    """The people of a benchmark split, refusing any the model trained on."""
    # A fine-tune's weights also carry everyone its parent saw.
    trained = set(card.training_identities) | set((card.parent_model or {}).get("seen_identities", ()))
    if people == "test":
        names = sorted(datasets.view1_people("test"))
        seen = card.seen_identities
    elif people == "validation":
        names = sorted(card.validation_identities)
        if not names:
            raise FacelibError("the model's card lists no validation people")
        seen = trained
    else:
        raise FacelibError(f"people must be one of {', '.join(PEOPLE)}, not {people!r}")
    overlap = sorted(set(names) & seen)
    if overlap:
        raise IdentityOverlapError(
            f"{len(overlap)} of the {people} people are among the people the model trained on "
            f"(e.g. {overlap[0]}); identifying them would overstate it"
        )
    return names


def calibration_curve(model, card: ModelCard):
    """The model's impostor curve: the card's (training or `facelib evaluate` saves it), else
    measured now on its validation people (the card is not changed). With where it
    came from, or (None, why not)."""
    if card.open_set:
        curve = ImpostorCurve.from_dict(card.open_set)
        return curve, f"the card's: {curve.source}, {curve.pairs:,} pairs"
    try:
        curve = validation_curve(model, card)
    except FacelibError as exc:
        return None, f"none: the card has no open-set calibration and it could not be measured ({exc})"
    return curve, f"measured now, the card has none yet: {curve.source}, {curve.pairs:,} pairs"


def lfw_open_set(
    model_folder: str | Path,
    people: str = "test",
    seed: int = 0,
    enroll: tuple[int, ...] = (1, 2),
    gallery_people: int | None = None,
    fpirs: tuple[float, ...] = FPIRS,
    margins: tuple[float, ...] = MARGINS,
    lbp: bool = True,
    log: Callable[[str], None] = print,
) -> OpenSetReport:
    """Run the benchmark on one model (a folder or a run name); see the module's text."""
    from facelib.data.pipeline import FaceSet, embed_files  # TensorFlow
    from facelib.recognition.model import load_model_folder, resolve_model_folder  # Keras

    folder = resolve_model_folder(model_folder)
    model, card = load_model_folder(folder)
    crops_root = config.processed_dir() / card.training_crops
    names = split_people(card, people)
    faces = FaceSet.from_records(read_manifest(crops_root), crops_root, names)
    pictures = {
        name: faces.paths[faces.offsets[i] : faces.offsets[i] + faces.counts[i]]
        for i, name in enumerate(faces.identities)
    }
    eligible = int(sum(c >= MIN_PICTURES for c in faces.counts))
    splits = {e: open_set_split(pictures, seed, e, gallery_people) for e in enroll}
    if eligible < 2 or any(not s.strangers for s in splits.values()):
        raise TooFewPeopleError(
            f"{len(faces.identities)} of the {len(names):,} {people} people have usable crops in "
            f"{crops_root.name}, {eligible} of them with ≥ {MIN_PICTURES}: too few for a gallery of two "
            "people or more and strangers (crop all LFW pictures with `facelib preprocess` first)"
        )
    report = OpenSetReport(
        folder.name,
        crops_root.name,
        people,
        seed,
        gallery_people,
        len(names),
        len(faces.identities),
        eligible,
        {e: s.counts() for e, s in splits.items()},
    )
    log(f"{people} people: {len(faces.identities):,} with crops, {faces.images:,} pictures; embedding them")
    index = {path: i for i, path in enumerate(faces.paths)}
    features = {"model": embed_files(model, faces.paths, card.input_size)}
    if lbp:
        log("LBP histograms")
        features["LBP"] = lbp_embed(faces.paths)

    curve, report.calibration_source = calibration_curve(model, card)
    if curve is None:
        report.calibration_note = report.calibration_source

    for e, split in splits.items():
        names_in_gallery = list(split.gallery)
        truth = np.array([names_in_gallery.index(name) for _, name in split.mated])

        def rows_of(f: np.ndarray, split=split) -> tuple[dict, list, list]:
            gallery = {n: f[[index[p] for p in paths]] for n, paths in split.gallery.items()}
            mated = [(f[index[p]], n) for p, n in split.mated]
            strangers = [f[index[p]] for p, _ in split.strangers]
            return gallery, mated, strangers

        gallery, mated, strangers = rows_of(features["model"])
        for mode in ("min", "mean") if e > 1 else ("min",):
            log(f"model, {e} enrolled, {mode}")
            figures = open_set_figures(gallery, mated, strangers, mode, fpirs)
            report.rows.append(Row("model", e, mode, figures["rank1"], figures["dir"], figures["curve"]))
            if curve is None:
                continue
            templates = [gallery[n] for n in names_in_gallery]
            mated_d = person_distance_matrix(np.stack([m for m, _ in mated]), templates, mode)
            stranger_d = person_distance_matrix(np.stack(strangers), templates, mode)
            for target in fpirs:
                threshold = OpenSetRule(curve, fpir=target, mode=mode).threshold(gallery)
                for margin in margins:
                    k, dir_ = rule_rates(mated_d, truth, stranger_d, threshold, margin)
                    report.calibrated.append(
                        CalibratedRow(e, mode, target, threshold, margin, k, len(strangers), dir_)
                    )
        if lbp:
            log(f"LBP, {e} enrolled")
            gallery, mated, strangers = rows_of(features["LBP"])
            templates = [gallery[n] for n in names_in_gallery]
            mated_d = person_distance_matrix(
                np.stack([m for m, _ in mated]), templates, "min", chi_square_matrix
            )
            stranger_d = person_distance_matrix(np.stack(strangers), templates, "min", chi_square_matrix)
            figures = figures_from_distances(mated_d, truth, stranger_d, fpirs)
            report.rows.append(Row("LBP", e, "min", figures["rank1"], figures["dir"], figures["curve"]))
    return report
