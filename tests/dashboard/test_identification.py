"""Naming the person a probe shows among those enrolled, or nobody: on the smoke model,
on chosen embeddings, and on the page."""

import numpy as np
import pytest
from helpers import THUMBNAIL, unit

from facelib.app.dashboard import Dashboard
from facelib.app.dashboard_controller import DashboardController, Person
from facelib.recognition.gallery import Gallery
from facelib.recognition.identification import (
    DEFAULT_FPIR,
)

from .helpers import MODEL, OPEN_SET_THRESHOLD, FakeVerifier, _bytes, _distance, _upload


def test_gallery_identifies_another_picture_of_the_enrolled_person_not_someone_else(
    controller, verifier, lfw_root
):
    # Pictures the smoke model (on YuNet crops) tells apart with the most room among the
    # first 40 people with two pictures: the threshold was 0.057, Adrien to Adrien
    # 0.049, Adrien to Serena 0.110 (one training, oneDNN and 2 threads).
    enrolled = lfw_root / "Adrien_Brody" / "Adrien_Brody_0002.jpg"
    same = lfw_root / "Adrien_Brody" / "Adrien_Brody_0003.jpg"
    other = lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"
    assert _bytes(same) != _bytes(enrolled)
    assert controller.handle_picture("enroll", _bytes(enrolled), enroll_name="Adrien").gallery_changed

    known = controller.handle_picture("probe", _bytes(same)).identity
    unknown = controller.handle_picture("probe", _bytes(other)).identity
    embeddings = verifier.embed([enrolled, same, other])
    assert known.distance == pytest.approx(np.linalg.norm(embeddings[0] - embeddings[1]), abs=1e-5)
    assert unknown.distance == pytest.approx(np.linalg.norm(embeddings[0] - embeddings[2]), abs=1e-5)
    assert known.name == "Adrien" and known.reason == "match"
    assert unknown.name is None and unknown.reason == "too far"
    # The open-set threshold, for strangers named at the FPIR target, is what decided.
    assert known.fpir == DEFAULT_FPIR and known.threshold == unknown.threshold
    assert 0 < known.distance < known.threshold <= unknown.distance
    assert [c.name for c in known.candidates] == ["Adrien"]


# ------------------------------------------------- identification, on chosen embeddings
# The `chosen` fixture: four people at right angles, Ada with two templates, and a
# FakeVerifier whose every open-set threshold is 1.0.


def test_identification_names_the_nearest_and_lists_the_three_nearest(chosen):
    probe = unit(1, 0.3, 0.1, 0, 0.2)
    decision = chosen.identify(probe)
    expected = {
        "Ada": _distance(probe, unit(1, 0, 0, 0, 0.2)),  # the nearer of Ada's two templates
        "Grace": _distance(probe, unit(0, 1, 0, 0, 0)),
        "Linus": _distance(probe, unit(0, 0, 1, 0, 0)),
    }
    assert expected["Ada"] < _distance(probe, unit(1, 0, 0, 0, 0))
    assert [c.name for c in decision.candidates] == ["Ada", "Grace", "Linus"]  # Ken is 4th
    assert [c.distance for c in decision.candidates] == [pytest.approx(expected[n]) for n in expected]
    assert decision.name == "Ada" and decision.reason == "match"
    assert decision.threshold == OPEN_SET_THRESHOLD and decision.fpir == DEFAULT_FPIR


def test_unknown_says_whether_too_far_from_everyone_or_too_close_to_two(chosen):
    stranger = unit(0, 0, 0, 0, 1)  # far from all but Ada's second template
    far = chosen.identify(stranger)
    assert far.name is None and far.reason == "too far"
    assert far.distance == pytest.approx(_distance(stranger, unit(1, 0, 0, 0, 0.2)))
    assert far.distance > OPEN_SET_THRESHOLD
    assert far.explain().startswith("unknown: too far from everyone (nearest Ada")

    between = unit(1, 0.9, 0, 0, 0)  # within the threshold of Ada (0.72) and Grace (0.81)
    d_ada, d_grace = _distance(between, unit(1, 0, 0, 0, 0)), _distance(between, unit(0, 1, 0, 0, 0))
    assert d_ada < d_grace < OPEN_SET_THRESHOLD and d_grace - d_ada < 0.2
    assert chosen.identify(between).name == "Ada"  # no margin asked: the nearer one
    outcome = chosen.set_identification(margin=0.2)
    assert not outcome.is_error and "ahead of the next by 0.2" in outcome.message
    ambiguous = chosen.identify(between)
    assert ambiguous.name is None and ambiguous.reason == "ambiguous" and ambiguous.margin == 0.2
    assert ambiguous.explain().startswith("unknown: too close to two people (Ada")
    assert chosen.identify(unit(1, 0, 0, 0, 0.1)).name == "Ada"  # a clear lead still names


def test_identification_settings_are_checked_and_reach_the_rule(chosen):
    assert chosen.set_identification(fpir=1.5).is_error and chosen.fpir == DEFAULT_FPIR
    assert chosen.set_identification(margin=-0.1).is_error and chosen.margin == 0.0
    chosen.set_identification(fpir=0.1)
    assert chosen.identify(unit(1, 0, 0, 0, 0)).fpir == 0.1


def test_nobody_enrolled_with_this_model_identifies_nobody(tmp_path):
    Gallery.load("other-model@2020", tmp_path / "g").enroll("Ada", unit(1, 0), THUMBNAIL)
    controller = DashboardController(FakeVerifier(tmp_path / "model"), Gallery.load(MODEL, tmp_path / "g"))
    assert controller.identify(unit(1, 0)) is None  # distance 0, yet made by another model
    assert controller.people() == [Person("Ada", 0, 1)]


def test_people_are_listed_once_with_their_templates_and_those_of_another_model(chosen, tmp_path):
    chosen.gallery.entries[1].model_id = "other-model@2020"  # Ada's second template
    assert chosen.people() == [
        Person("Ada", 1, 1),
        Person("Grace", 1, 0),
        Person("Linus", 1, 0),
        Person("Ken", 1, 0),
    ]
    assert chosen.delete("Ada").gallery_changed
    assert [p.name for p in chosen.people()] == ["Grace", "Linus", "Ken"]
    assert Gallery.load(MODEL, tmp_path / "g").names() == ["Grace", "Linus", "Ken"]


# ===================================================================== the page


def test_a_probe_shows_the_three_nearest_people_and_why(smoke_model, gallery_dir, lfw_root, bush):
    board = Dashboard(smoke_model, gallery_folder=gallery_dir)
    for name, picture in [
        ("George", bush[0]),
        ("George", bush[1]),
        ("Serena", lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"),
        ("Adel", lfw_root / "Adel_Al-Jubeir" / "Adel_Al-Jubeir_0001.jpg"),
        ("Colin", lfw_root / "Colin_Powell" / "Colin_Powell_0001.jpg"),
    ]:
        board.name.value = name
        _upload(board, "enroll", _bytes(picture))
    assert [label for label, _ in board.people.options][:2] == ["George · 2 templates", "Serena · 1 template"]
    _upload(board, "probe", _bytes(bush[2]))
    decision = board.controller.identify(board.controller.probe.embedding)
    text = board.identity.value
    assert text.count('class="facelib-candidate"') == 3 and len(decision.candidates) == 3
    for candidate in decision.candidates:
        assert f"<td>{candidate.name}</td>" in text and f">{candidate.distance:.3f}</td>" in text
    assert decision.explain() in text and f'data-reason="{decision.reason}"' in text
    assert f"a name needs distance &lt; {decision.threshold:.3f}" in text
    assert "at most 1% of strangers named (FPIR target), calibration <b>lfw</b>" in text

    board.fpir.value = 0.1  # the page's setting reaches the rule, and the probe shown
    assert board.controller.fpir == 0.1 and "10% of strangers named" in board.identity.value
