"""Open-set identification on embeddings where every figure is known by hand, and the
benchmark's gallery/probe split (facelib.evaluation.open_set)."""

import json

import numpy as np
import pytest
from helpers import unit

from facelib.core.errors import FacelibError
from facelib.core.metrics import figures_from_distances
from facelib.evaluation.open_set import (
    named,
    open_set_split,
    person_distance_matrix,
    rule_rates,
)
from facelib.recognition.calibration import Calibration
from facelib.recognition.identification import (
    FAR_GRID,
    ImpostorCurve,
    OpenSetRule,
    open_set_figures,
    per_comparison_far,
    person_distances,
)

# Different-person distances spread evenly over [0.5, 1.5]: the FAR of a threshold t
# is (t - 0.5) / 1.0, so every threshold below is known.
UNIFORM = ImpostorCurve.from_distances(np.linspace(0.5, 1.5, 100_001), source="uniform test distances")


# ------------------------------------------------------------------ the rule


def test_the_curve_reads_back_the_far_of_known_distances():
    for far in FAR_GRID[20:]:  # on the grid: exactly the quantile
        assert UNIFORM.threshold_at(far) == pytest.approx(0.5 + far, abs=2e-5)
    for far in (1e-3, 0.01, 0.1, 0.3):  # between grid points: interpolated in log(FAR)
        assert UNIFORM.threshold_at(far) - 0.5 == pytest.approx(far, rel=0.01)
    assert UNIFORM.threshold_at(1e-9) == UNIFORM.threshold_at(FAR_GRID[0])  # clamped to the grid
    assert UNIFORM.smallest_far == pytest.approx(1 / 100_001)
    with pytest.raises(FacelibError, match="at least two people"):
        ImpostorCurve.from_distances(np.zeros(0), source="nobody different")
    # few pairs (the smoke preset's two validation people) still make a curve, which
    # says how little it can measure
    assert ImpostorCurve.from_distances(np.arange(8.0), source="few").smallest_far == 1 / 8


def test_per_comparison_far_formula():
    assert per_comparison_far(0.01, 1) == pytest.approx(0.01)
    assert per_comparison_far(0.1, 10) == pytest.approx(1 - 0.9**0.1)
    for fpir, n in [(0.01, 50), (0.1, 1000)]:
        far = per_comparison_far(fpir, n)
        assert 1 - (1 - far) ** n == pytest.approx(fpir)  # a stranger passes one of n at rate fpir
    assert per_comparison_far(0.05, 0) == pytest.approx(0.05)  # an empty gallery counts as one
    for bad in (0.0, 1.0, -0.1, 2):
        with pytest.raises(FacelibError):
            per_comparison_far(bad, 10)


def test_threshold_for_shrinks_as_the_gallery_grows():
    sizes = [1, 2, 5, 10, 100, 1000, 10_000]
    thresholds = [UNIFORM.threshold_for(0.01, n) for n in sizes]
    assert thresholds[0] == pytest.approx(UNIFORM.threshold_at(0.01))
    assert all(a > b for a, b in zip(thresholds, thresholds[1:], strict=False))
    assert thresholds[3] == pytest.approx(0.5 + per_comparison_far(0.01, 10), abs=1e-4)
    assert thresholds[-1] == UNIFORM.threshold_at(per_comparison_far(0.01, 10_000))


def test_the_rule_names_a_mated_probe_and_refuses_a_stranger_far_from_everyone():
    gallery = {"Ada": unit(1, 0, 0)[None, :], "Grace": unit(0, 1, 0)[None, :]}
    rule = OpenSetRule(UNIFORM, fpir=0.1)
    # 2 comparisons: FAR 1 - 0.9^(1/2) = 0.0513 per comparison, threshold 0.5513
    assert rule.threshold(gallery) == UNIFORM.threshold_at(1 - 0.9**0.5)
    assert rule.threshold(gallery) == pytest.approx(0.5 + 1 - 0.9**0.5, abs=1e-3)

    ada = rule.decide(unit(1, 0.3, 0), gallery)  # 0.296 from Ada, 1.21 from Grace
    assert (ada.name, ada.reason) == ("Ada", "match")
    assert [c.name for c in ada.candidates] == ["Ada", "Grace"]
    assert ada.distance == pytest.approx(np.linalg.norm(unit(1, 0.3, 0) - unit(1, 0, 0)))

    stranger = rule.decide(unit(0, 0, 1), gallery)  # sqrt(2) from both
    assert stranger.name is None and stranger.reason == "too far"
    assert stranger.distance == pytest.approx(np.sqrt(2))
    assert "too far from everyone" in stranger.explain()

    assert OpenSetRule(UNIFORM).decide(unit(1, 0, 0), {}).reason == "empty"


def test_a_probe_between_two_close_people_is_ambiguous_with_a_margin():
    gallery = {
        "Ada": unit(1, 0.1, 0)[None, :],
        "Eve": unit(1, -0.1, 0)[None, :],
        "Grace": unit(0, 1, 0)[None, :],
    }
    probe = unit(1, 0.01, 0)  # 0.090 from Ada, 0.109 from Eve: a lead of 0.019
    lead = np.linalg.norm(probe - gallery["Eve"][0]) - np.linalg.norm(probe - gallery["Ada"][0])
    assert 0.01 < lead < 0.05
    loose = OpenSetRule(UNIFORM, fpir=0.1, margin=0.0).decide(probe, gallery)
    strict = OpenSetRule(UNIFORM, fpir=0.1, margin=0.05).decide(probe, gallery)
    assert (loose.name, loose.reason) == ("Ada", "match")
    assert (strict.name, strict.reason) == (None, "ambiguous")
    assert strict.runner_up.name == "Eve" and "too close to two people" in strict.explain()
    # a probe clearly nearest Ada leads by more than the margin: named
    assert OpenSetRule(UNIFORM, fpir=0.1, margin=0.05).decide(unit(1, 0.12, 0), gallery).name == "Ada"


def test_template_modes_min_and_mean():
    templates = {"Ada": np.stack([unit(1, 0, 0), unit(0, 1, 0)])}
    probe = unit(0, 1, 0)
    assert person_distances(probe, templates, "min")["Ada"] == pytest.approx(0.0)
    # the normalised mean is (1, 1, 0)/sqrt(2): 0.765 from the probe
    assert person_distances(probe, templates, "mean")["Ada"] == pytest.approx(
        np.linalg.norm(probe - unit(1, 1, 0))
    )
    with pytest.raises(FacelibError):
        person_distances(probe, templates, "median")


def test_calibration_round_trip():
    for curve in (UNIFORM, None):
        calibration = Calibration("lfw", 1.125, "View 1 test pairs", curve)
        again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
        assert again == calibration
    curve = ImpostorCurve.from_dict(json.loads(json.dumps(UNIFORM.to_dict())))
    assert curve == UNIFORM and curve.threshold_at(0.01) == UNIFORM.threshold_at(0.01)
    with pytest.raises(FacelibError):
        ImpostorCurve.from_dict({"far": [0.1]})


# ------------------------------------------------------------------ benchmark figures

# One-dimensional embeddings: A at 0, B at 10, C at 20.
GALLERY_1D = {"A": np.array([[0.0]]), "B": np.array([[10.0]]), "C": np.array([[20.0]])}
# mated: best distance 0.1, 0.3, 0.5 (right), 4 (C's picture nearest B: wrong), 0.8 (right)
MATED_1D = [
    (np.array([0.1]), "A"),
    (np.array([0.3]), "A"),
    (np.array([10.5]), "B"),
    (np.array([14.0]), "C"),
    (np.array([19.2]), "C"),
]
# strangers: best distances 0.2, 0.4, 0.6, 2, 3
STRANGERS_1D = [np.array([x]) for x in (10.2, 20.4, -0.6, 12.0, 23.0)]


def test_open_set_figures_on_a_hand_checked_case():
    figures = open_set_figures(GALLERY_1D, MATED_1D, STRANGERS_1D, "min", fpirs=(0.1, 0.5))
    assert figures["rank1"] == pytest.approx(4 / 5)
    # FPIR 0.1: the threshold is the lowest stranger (0.2), below it only the 0.1 probe
    assert figures["dir"][0.1] == pytest.approx(1 / 5)
    # FPIR 0.5: threshold 0.6 (third stranger); 0.1, 0.3, 0.5 are below and right
    assert figures["dir"][0.5] == pytest.approx(3 / 5)
    assert figures["curve"]["fpir"] == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert figures["curve"]["dir"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


def test_matrix_figures_match_open_set_figures():
    names = list(GALLERY_1D)
    templates = [GALLERY_1D[n] for n in names]
    mated = person_distance_matrix(np.stack([p for p, _ in MATED_1D]), templates)
    strangers = person_distance_matrix(np.stack(STRANGERS_1D), templates)
    truth = np.array([names.index(n) for _, n in MATED_1D])
    ours = figures_from_distances(mated, truth, strangers, fpirs=(0.1, 0.5))
    assert ours == open_set_figures(GALLERY_1D, MATED_1D, STRANGERS_1D, "min", fpirs=(0.1, 0.5))

    rng = np.random.default_rng(3)
    unit_rows = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    gallery = {f"p{i}": unit_rows(rng.normal(size=(2, 8))) for i in range(6)}
    probes = unit_rows(rng.normal(size=(40, 8)))
    labels = [f"p{i % 6}" for i in range(20)]
    for mode in ("min", "mean"):
        matrix = person_distance_matrix(probes, list(gallery.values()), mode)
        for probe, row in zip(probes, matrix, strict=True):
            assert row == pytest.approx(list(person_distances(probe, gallery, mode).values()))
        figures = open_set_figures(
            gallery, list(zip(probes[:20], labels, strict=True)), list(probes[20:]), mode
        )
        truth = np.array([list(gallery).index(n) for n in labels])
        ours = figures_from_distances(matrix[:20], truth, matrix[20:])
        assert ours["rank1"] == figures["rank1"] and ours["dir"] == pytest.approx(figures["dir"])
        assert ours["curve"]["fpir"] == pytest.approx(figures["curve"]["fpir"])
        assert ours["curve"]["dir"] == pytest.approx(figures["curve"]["dir"])


def test_rule_rates_agree_with_the_rule_decision():
    rng = np.random.default_rng(7)
    gallery = {f"p{i}": rng.normal(size=(2, 4)) / 2 for i in range(5)}
    probes = rng.normal(size=(60, 4)) / 2
    truth = np.arange(60) % 5
    for mode in ("min", "mean"):
        matrix = person_distance_matrix(probes, list(gallery.values()), mode)
        for margin in (0.0, 0.05, 0.2):
            rule = OpenSetRule(UNIFORM, fpir=0.3, margin=margin, mode=mode)
            threshold = rule.threshold(gallery)
            decisions = [rule.decide(p, gallery) for p in probes]
            is_named, nearest = named(matrix, threshold, margin)
            assert list(is_named) == [d.name is not None for d in decisions]
            assert [f"p{i}" for i in nearest] == [d.candidates[0].name for d in decisions]
            k, dir_ = rule_rates(matrix[:30], truth[:30], matrix[30:], threshold, margin)
            assert k == sum(d.name is not None for d in decisions[30:])
            assert dir_ == pytest.approx(
                np.mean([d.name == f"p{t}" for d, t in zip(decisions[:30], truth[:30], strict=True)])
            )
    # an exact tie without a margin is named (the first of the two), as the rule does
    twins = {"Ada": unit(1, 0, 0)[None, :], "Bea": unit(1, 0, 0)[None, :]}
    assert OpenSetRule(UNIFORM, fpir=0.1).decide(unit(1, 0.1, 0), twins).name == "Ada"
    is_named, nearest = named(np.array([[0.1, 0.1, 0.5]]), threshold=0.3, margin=0.0)
    assert is_named.tolist() == [True] and nearest.tolist() == [0]
    assert named(np.array([[0.1, 0.12, 0.5]]), threshold=0.3, margin=0.05)[0].tolist() == [False]


# ------------------------------------------------------------------ the benchmark split


def fake_people() -> dict[str, list[str]]:
    counts = dict(Ann=1, Bob=2, Cid=3, Dee=4, Eli=5, Fay=3, Gus=1, Hal=6, Ivy=2, Jon=3)
    return {name: [f"{name}/{name}_{i:04d}.jpg" for i in range(1, n + 1)] for name, n in counts.items()}


def test_the_split_is_deterministic_and_never_probes_an_enrolled_picture():
    people = fake_people()
    eligible = {n for n, p in people.items() if len(p) >= 3}
    for enroll in (1, 2):
        split = open_set_split(people, seed=0, enroll=enroll, gallery_people=4)
        assert split == open_set_split(people, seed=0, enroll=enroll, gallery_people=4)
        assert len(split.gallery) == 4 and set(split.gallery) <= eligible
        enrolled = [p for paths in split.gallery.values() for p in paths]
        probes = [p for p, _ in split.mated] + [p for p, _ in split.strangers]
        assert not set(enrolled) & set(probes)
        assert sorted(enrolled + probes) == sorted(p for paths in people.values() for p in paths)
        assert all(len(paths) == enroll for paths in split.gallery.values())
        assert all(name in split.gallery and path in people[name] for path, name in split.mated)
        assert {name for _, name in split.strangers} == set(people) - set(split.gallery)
        # people with 1–2 pictures are strangers
        assert {"Ann", "Bob", "Gus", "Ivy"} <= {name for _, name in split.strangers}
        assert split.counts()["mated_probes"] == sum(len(people[n]) - enroll for n in split.gallery)

    one, two = (open_set_split(people, seed=0, enroll=e) for e in (1, 2))
    assert set(one.gallery) == set(two.gallery) == eligible  # default: every eligible person
    assert all(two.gallery[n][0] == one.gallery[n][0] for n in one.gallery)  # the same draws
    seeds = {tuple(sorted(open_set_split(people, seed=s, gallery_people=3).gallery)) for s in range(6)}
    assert len(seeds) > 1  # the seed matters
    with pytest.raises(FacelibError):
        open_set_split(people, enroll=3)


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",
        "null",
        '{"name": "x", "threshold": 1.0, "open_set": {"far": [], "distance": [], "pairs": 3, "source": "s"}}',
        '{"name": "x", "threshold": 1.0, "open_set": {"far": [0.1, 0.2], "distance": [1.0], "pairs": 3, "source": "s"}}',
        '{"name": "x", "threshold": 1.0, "open_set": {"far": [0.1, 0.2], "distance": [1.0, 1.1], "pairs": 0, "source": "s"}}',
        '{"name": "x", "threshold": "high"}',
        "{not json",
    ],
)
def test_a_damaged_calibration_file_is_a_clear_error(tmp_path, content):
    from facelib.recognition.calibration import CALIBRATIONS, load_calibration

    (tmp_path / CALIBRATIONS).mkdir()
    (tmp_path / CALIBRATIONS / "mine.json").write_text(content)
    with pytest.raises(FacelibError, match="damaged"):
        load_calibration(tmp_path, "mine")


def test_the_card_calibration_name_is_reserved(tmp_path):
    from facelib.recognition.calibration import CARD, Calibration, save_calibration

    with pytest.raises(FacelibError, match="model card's own"):
        save_calibration(tmp_path, Calibration(CARD, 1.0, "x", None))


def test_without_strangers_only_rank1_is_measured():
    gallery = {"a": np.array([[1.0, 0.0]]), "b": np.array([[0.0, 1.0]])}
    figures = open_set_figures(gallery, [(np.array([0.9, 0.1]), "a"), (np.array([0.9, 0.1]), "b")], [])
    assert figures["rank1"] == 0.5 and figures["dir"] == {} and figures["curve"] == {}


@pytest.mark.parametrize(
    ("counts", "ready"),
    [([2, 2], False), ([5, 1, 1], False), ([2, 2, 2], True), ([3, 2, 2, 1, 0], True)],
)
def test_enough_pictures_to_calibrate_is_three_people_with_two_pictures_each(counts, ready):
    """The one rule of `facelib calibrate`, the dashboard and calibration_from_embeddings:
    two people with two pictures each, which `calibrate` once accepted, are refused."""
    from facelib.recognition.calibration import (
        CalibrationReadiness,
        TooFewToCalibrateError,
        require_calibration_pictures,
    )

    assert CalibrationReadiness.of(counts).ready is ready
    if ready:
        assert require_calibration_pictures(counts).ready_people == sum(n >= 2 for n in counts)
    else:
        with pytest.raises(TooFewToCalibrateError, match="give at least 3 people with 2 pictures"):
            require_calibration_pictures(counts)


def test_validation_people_a_fine_tunes_parent_trained_on_are_refused():
    """A fine-tune's weights carry its parent's people: its validation people are no
    strangers if the parent trained on them."""
    from facelib.evaluation.evaluate import IdentityOverlapError
    from facelib.evaluation.open_set import split_people
    from facelib.recognition.card import ModelCard

    parent = {"name": "lfw-model", "seen_identities": ["Carl"]}
    card = ModelCard("fine-tuned", 64, 32, training_identities=["Ann"], validation_identities=["Bob", "Carl"])
    assert split_people(card, "validation") == ["Bob", "Carl"]
    card.parent_model = parent
    with pytest.raises(IdentityOverlapError, match="e.g. Carl"):
        split_people(card, "validation")
