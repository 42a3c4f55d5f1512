"""The gallery on its own: embeddings chosen by hand, so every distance is known."""

import json

import numpy as np
import pytest

from facelib.decision import same_person
from facelib.errors import FacelibError
from facelib.gallery import Gallery, Identity

MODEL = "test-model@2024"
THRESHOLD = 1.0
THUMBNAIL = np.full((8, 8, 3), 128, np.uint8)


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float64)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def gallery(tmp_path):
    gallery = Gallery.load(MODEL, tmp_path / "gallery")
    gallery.enroll("Ada", _unit(1, 0, 0), THUMBNAIL)
    gallery.enroll("Grace", _unit(0, 1, 0), THUMBNAIL)
    return gallery


def test_the_nearest_person_within_the_threshold_is_named(gallery):
    near_ada = _unit(1, 0.3, 0)  # 0.29 from Ada, 1.2 from Grace
    identity = gallery.identify(near_ada, THRESHOLD)
    assert identity == Identity("Ada", pytest.approx(np.linalg.norm(near_ada - _unit(1, 0, 0))))


def test_nobody_within_the_threshold_is_unknown_with_the_nearest_distance(gallery):
    elsewhere = _unit(0, 0, 1)  # sqrt(2) from both
    identity = gallery.identify(elsewhere, THRESHOLD)
    assert identity.name is None and identity.distance == pytest.approx(np.sqrt(2))


def test_identify_follows_the_decision_rule_at_the_threshold(gallery):
    probe = _unit(1, 0.3, 0)
    distance = float(np.linalg.norm(probe - _unit(1, 0, 0)))
    # exactly at the threshold is not a match: the one rule in facelib.decision
    assert not same_person(distance, distance)
    assert gallery.identify(probe, threshold=distance).name is None
    assert gallery.identify(probe, threshold=distance + 1e-6).name == "Ada"


def test_empty_gallery_identifies_nobody(tmp_path):
    assert Gallery.load(MODEL, tmp_path / "empty").identify(_unit(1, 0, 0), THRESHOLD) is None


def test_entries_of_another_model_are_kept_but_never_compared(tmp_path):
    folder = tmp_path / "gallery"
    Gallery.load("old-model@2020", folder).enroll("Ada", _unit(1, 0, 0), THUMBNAIL)
    current = Gallery.load(MODEL, folder)
    assert current.names() == ["Ada"] and [e.name for e in current.foreign()] == ["Ada"]
    assert current.identify(_unit(1, 0, 0), THRESHOLD) is None  # distance 0, yet not used


def test_enroll_persists_and_re_enrolling_replaces(gallery, tmp_path):
    gallery.enroll("Ada", _unit(0, 0, 1), THUMBNAIL)
    again = Gallery.load(MODEL, tmp_path / "gallery")
    assert again.names() == ["Grace", "Ada"]
    assert again.identify(_unit(0, 0, 1), THRESHOLD).name == "Ada"
    thumbnails = sorted(p.name for p in (tmp_path / "gallery").glob("*.jpg"))
    assert thumbnails == sorted(e.thumbnail for e in again.entries)  # the replaced one is gone


def test_names_with_the_same_file_name_keep_their_own_thumbnails(tmp_path):
    gallery = Gallery.load(MODEL, tmp_path / "gallery")
    gallery.enroll("x", _unit(1, 0, 0), THUMBNAIL)
    gallery.enroll("Ann Lee", _unit(0, 1, 0), THUMBNAIL)
    gallery.delete("x")
    gallery.enroll("Ann_Lee", _unit(0, 0, 1), THUMBNAIL)  # same safe file name, same count
    assert len({e.thumbnail for e in gallery.entries}) == 2
    gallery.delete("Ann_Lee")
    assert (tmp_path / "gallery" / gallery.entries[0].thumbnail).is_file()


def test_delete_and_bad_names_give_clear_errors(gallery):
    gallery.delete("Ada")
    assert gallery.names() == ["Grace"]
    with pytest.raises(FacelibError, match="not in the gallery"):
        gallery.delete("Ada")
    with pytest.raises(FacelibError, match="name"):
        gallery.enroll("   ", _unit(1, 0, 0), THUMBNAIL)


def test_a_damaged_gallery_file_says_what_to_do(tmp_path):
    folder = tmp_path / "gallery"
    folder.mkdir()
    (folder / "gallery.json").write_text(json.dumps({"people": []}))
    with pytest.raises(FacelibError, match="damaged.*move it away"):
        Gallery.load(MODEL, folder)
