"""The gallery on its own: embeddings chosen by hand, so every distance is known."""

import json

import numpy as np
import pytest
from helpers import THUMBNAIL, unit

from facelib.core.decision import same_person
from facelib.core.errors import FacelibError
from facelib.recognition.gallery import THUMBNAILS, Gallery
from facelib.recognition.identification import ImpostorCurve, OpenSetRule

MODEL = "test-model@2024"
# Impostor distances spread evenly over [1.0, 2.0]: the threshold for a gallery of one
# template at FPIR f is about 1 + f, whatever the gallery.
CURVE = ImpostorCurve.from_distances(np.linspace(1.0, 2.0, 100_001), "by hand")


def _rule(**options) -> OpenSetRule:
    return OpenSetRule(CURVE, **{"fpir": 0.01, **options})


@pytest.fixture
def gallery(tmp_path):
    gallery = Gallery.load(MODEL, tmp_path / "gallery")
    gallery.enroll("Ada", unit(1, 0, 0), THUMBNAIL)
    gallery.enroll("Grace", unit(0, 1, 0), THUMBNAIL)
    return gallery


def _thumbnail_files(folder) -> list[str]:
    return sorted(f"{THUMBNAILS}/{p.name}" for p in (folder / THUMBNAILS).glob("*.jpg"))


def test_the_nearest_person_within_the_threshold_is_named(gallery):
    near_ada = unit(1, 0.3, 0)  # 0.29 from Ada, 1.2 from Grace
    decision = gallery.identify(near_ada, _rule())
    assert decision.name == "Ada" and decision.reason == "match"
    assert decision.distance == pytest.approx(np.linalg.norm(near_ada - unit(1, 0, 0)))
    assert [c.name for c in decision.candidates] == ["Ada", "Grace"]


def test_nobody_close_enough_is_unknown_with_the_nearest_distance(gallery):
    elsewhere = unit(0, 0, 1)  # sqrt(2) from both
    decision = gallery.identify(elsewhere, _rule())
    assert decision.name is None and decision.reason == "too far"
    assert decision.distance == pytest.approx(np.sqrt(2))


def test_identify_follows_the_decision_rule_at_the_threshold(gallery):
    rule = _rule()
    threshold = rule.threshold(gallery.templates())
    # two templates, FPIR 1%: per comparison 1 - 0.99 ** 0.5, on the curve 1 + that
    assert threshold == pytest.approx(1 + (1 - 0.99**0.5), abs=1e-3)
    assert not same_person(threshold, threshold)  # at the threshold is not a match
    probe = unit(1, 0.9, 0)
    distance = float(np.linalg.norm(probe - unit(1, 0, 0)))
    stricter = OpenSetRule(ImpostorCurve.from_distances(np.linspace(distance, 2, 1001), "x"), fpir=1e-6)
    assert gallery.identify(probe, stricter).name is None
    assert gallery.identify(probe, _rule()).name == "Ada"


def test_empty_gallery_identifies_nobody(tmp_path):
    decision = Gallery.load(MODEL, tmp_path / "empty").identify(unit(1, 0, 0), _rule())
    assert decision.name is None and decision.reason == "empty" and decision.candidates == []


def test_entries_of_another_model_are_kept_but_never_compared(tmp_path):
    folder = tmp_path / "gallery"
    Gallery.load("old-model@2020", folder).enroll("Ada", unit(1, 0, 0), THUMBNAIL)
    current = Gallery.load(MODEL, folder)
    assert current.names() == ["Ada"] and [e.name for e in current.foreign()] == ["Ada"]
    assert current.identify(unit(1, 0, 0), _rule()).reason == "empty"  # distance 0, yet not used


def test_several_templates_per_person_and_the_nearest_counts(gallery, tmp_path):
    gallery.enroll("Ada", unit(0, 0, 1), THUMBNAIL)  # a second, different picture of Ada
    again = Gallery.load(MODEL, tmp_path / "gallery")
    assert again.names() == ["Ada", "Grace"]
    assert again.templates()["Ada"].shape == (2, 3)
    assert again.identify(unit(0, 0.1, 1), _rule()).name == "Ada"  # near the second only
    # the mean of Ada's two templates is (1, 0, 1)/sqrt(2): 0.77 from this probe, while the
    # nearest single template is 0.1 away
    mean_rule = _rule(mode="mean")
    assert again.identify(unit(0, 0.1, 1), mean_rule).distance == pytest.approx(
        np.linalg.norm(unit(0, 0.1, 1) - unit(1, 0, 1))
    )


def test_replacing_keeps_one_template_and_no_orphan_thumbnail(gallery, tmp_path):
    folder = tmp_path / "gallery"
    gallery.enroll("Ada", unit(0, 0, 1), THUMBNAIL)
    gallery.enroll("Ada", unit(0, 0.2, 1), THUMBNAIL, replace=True)
    again = Gallery.load(MODEL, folder)
    assert again.templates()["Ada"].shape == (1, 3)
    assert _thumbnail_files(folder) == sorted(e.thumbnail for e in again.entries)


def test_thumbnail_names_never_collide_after_deletions(tmp_path):
    folder = tmp_path / "gallery"
    gallery = Gallery.load(MODEL, folder)
    gallery.enroll("x", unit(1, 0, 0), THUMBNAIL)
    gallery.enroll("Ann Lee", unit(0, 1, 0), THUMBNAIL)
    gallery.delete("x")
    gallery.enroll("Ann_Lee", unit(0, 0, 1), THUMBNAIL)  # same safe file name, one entry fewer
    assert len({e.thumbnail for e in gallery.entries}) == 2
    gallery.delete("Ann_Lee")
    assert (folder / gallery.entries[0].thumbnail).is_file()
    assert _thumbnail_files(folder) == [gallery.entries[0].thumbnail]


def test_a_save_removes_orphaned_thumbnails_but_not_other_pictures(gallery, tmp_path):
    folder = tmp_path / "gallery"
    (folder / THUMBNAILS / "Linus-0123456789ab.jpg").write_bytes(b"x")  # one a crash left
    (folder / THUMBNAILS / "holiday.jpg").write_bytes(b"y")  # the user's own
    (folder / "my-own-photo.jpg").write_bytes(b"z")
    gallery.enroll("Linus", unit(1, 1, 0), THUMBNAIL)
    assert not (folder / THUMBNAILS / "Linus-0123456789ab.jpg").exists()
    assert (folder / THUMBNAILS / "holiday.jpg").exists() and (folder / "my-own-photo.jpg").exists()
    ours = sorted(e.thumbnail for e in gallery.entries)
    assert _thumbnail_files(folder) == sorted([*ours, f"{THUMBNAILS}/holiday.jpg"])


def test_two_open_galleries_do_not_write_over_each_other(tmp_path):
    folder = tmp_path / "gallery"
    dashboard = Gallery.load(MODEL, folder)
    terminal = Gallery.load(MODEL, folder)  # `facelib enroll` while the dashboard is open
    terminal.enroll("Bob", unit(0, 1, 0), THUMBNAIL)
    dashboard.enroll("Ada", unit(1, 0, 0), THUMBNAIL)
    again = Gallery.load(MODEL, folder)
    assert again.names() == ["Bob", "Ada"]
    assert all((folder / e.thumbnail).is_file() for e in again.entries)


def test_delete_and_bad_names_give_clear_errors(gallery):
    gallery.delete("Ada")
    assert gallery.names() == ["Grace"]
    with pytest.raises(FacelibError, match="not in the gallery"):
        gallery.delete("Ada")
    with pytest.raises(FacelibError, match="name"):
        gallery.enroll("   ", unit(1, 0, 0), THUMBNAIL)
    for escaping in ("../outside", "a/b", "..", "c:\\x"):
        with pytest.raises(FacelibError, match="not a usable name"):
            gallery.enroll(escaping, unit(1, 0, 0), THUMBNAIL)


def test_a_damaged_gallery_file_says_what_to_do(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "gallery.json").write_text(json.dumps({"people": []}))
    with pytest.raises(FacelibError, match="damaged.*move it away"):
        Gallery.load(MODEL, folder)
