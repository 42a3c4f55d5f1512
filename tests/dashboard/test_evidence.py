"""Where a verdict's distance falls among the model's LFW View 1 pairs: in the controller,
then on the page."""

import time

import numpy as np

from facelib.app.dashboard_controller import DashboardController
from facelib.evaluation.evaluate import save_view1_distances

from .helpers import FakeVerifier, _bytes, _upload

SAME = [0.1, 0.2, 0.3, 0.4]


DIFFERENT = [0.3, 0.5, 0.6, 0.7, 0.8]


def _evaluated(folder):
    """A model folder with View 1 distances written as `facelib evaluate` writes them."""
    distances = np.array(SAME + DIFFERENT)
    same = np.array([True] * len(SAME) + [False] * len(DIFFERENT))
    order = np.random.default_rng(0).permutation(len(distances))  # the file is not sorted by class
    save_view1_distances(folder / "eval", distances[order], same[order])
    return folder


def test_a_distance_is_placed_among_the_models_lfw_pairs(tmp_path):
    controller = DashboardController(FakeVerifier(_evaluated(tmp_path / "model")), gallery=None)
    evidence = controller.explain_distance(0.35)
    assert evidence.available
    assert sorted(evidence.same) == SAME and sorted(evidence.different) == DIFFERENT
    assert evidence.same_at_least == 1 / 4  # 0.4
    assert evidence.different_closer == 1 / 5  # 0.3
    assert evidence.sentence() == (
        "On LFW View 1 (people this model never trained on), 25% of 4 same-person pairs were at "
        "least 0.350 apart, and 20% of 5 different-person pairs were closer."
    )
    at = controller.explain_distance(0.3)  # at least as far: 0.3 counts; closer: 0.3 does not
    assert (at.same_at_least, at.different_closer) == (2 / 4, 0.0)
    edges, same, different = controller.explain_distance(0.9).histogram(bins=8)
    assert edges[0] == 0.1 and edges[-1] == 0.9  # the distance itself is on the scale
    assert same.sum() == 4 and different.sum() == 5


def test_a_model_never_evaluated_says_so_instead(tmp_path):
    controller = DashboardController(FakeVerifier(tmp_path / "run-a"), gallery=None)
    evidence = controller.explain_distance(0.35)
    assert not evidence.available
    assert "has not been evaluated" in evidence.note and "facelib evaluate --model run-a" in evidence.note
    (tmp_path / "run-a" / "eval").mkdir(parents=True)
    (tmp_path / "run-a" / "eval" / "metrics.json").write_text("{}")  # evaluated before the file
    assert "evaluated before its View 1 distances were kept" in controller.explain_distance(0.35).note
    _evaluated(tmp_path / "run-a")
    assert controller.explain_distance(0.35).available  # read when it appears


def test_every_verdict_comes_with_its_lfw_evidence(controller, bush, tmp_path):
    controller.lfw_distances_path = _evaluated(tmp_path / "model") / "eval" / "view1_distances.npz"
    controller.handle_picture("reference", _bytes(bush[0]))
    outcome = controller.handle_picture("probe", _bytes(bush[1]))
    distance = outcome.verdict.distance
    assert outcome.evidence.distance == distance
    assert outcome.evidence.same_at_least == np.mean(np.array(SAME) >= distance)


# ===================================================================== the page


def test_a_verdict_shows_where_its_distance_falls_among_lfw_pairs(board, bush, tmp_path):
    _upload(board, "reference", _bytes(bush[0]))
    _upload(board, "probe", _bytes(bush[1]))
    assert (
        "has not been evaluated" in board.evidence.value
        and "facelib evaluate --model" in board.evidence.value
    )

    board.controller.lfw_distances_path = _evaluated(tmp_path / "model") / "eval" / "view1_distances.npz"
    _upload(board, "probe", _bytes(bush[2]))
    distance = board.controller.compare(time.perf_counter()).distance
    same_share = np.mean(np.array(SAME) >= distance)
    different_share = np.mean(np.array(DIFFERENT) < distance)
    text = board.evidence.value
    assert "<svg" in text and 'class="facelib-evidence-mark"' in text
    assert f'data-same-at-least="{same_share:.4f}"' in text
    assert f'data-different-closer="{different_share:.4f}"' in text
    assert f"{100 * same_share:.0f}% of 4 same-person pairs were at least {distance:.3f} apart" in text
