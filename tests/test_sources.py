"""Folders of your own people as training data (facelib.data.sources), and the bad input
they may hold: each a clear error or a counted skip. Unit tests: no TensorFlow, no LFW."""

import json
import os

import cv2
import numpy as np
import pytest

from facelib.core.errors import ConfigError, FacelibError
from facelib.data import sources
from facelib.training.training_config import TrainConfig, config_differences, fine_tune_settings


def picture(path, seed: int) -> None:
    """A small JPEG whose content (and so hash) the seed sets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), np.uint8)
    cv2.imwrite(str(path), pixels)


def people(root, sizes: dict[str, int], start: int = 0):
    seed = start
    for person, n in sizes.items():
        for i in range(n):
            picture(root / person / f"{i}.jpg", seed)
            seed += 1
    return root


def test_a_folder_lists_its_people_with_hashes_in_a_sorted_manifest(tmp_path):
    root = people(tmp_path / "own", {"Grace": 2, "Ada": 3})
    listing = sources.list_folder(root)
    assert [r[:2] for r in listing.rows] == [
        ("Ada/0.jpg", "Ada"),
        ("Ada/1.jpg", "Ada"),
        ("Ada/2.jpg", "Ada"),
        ("Grace/0.jpg", "Grace"),
        ("Grace/1.jpg", "Grace"),
    ]
    assert listing.people == 2 and listing.skips.total == 0
    manifest = tmp_path / "m.csv"
    digest = sources.write_manifest(manifest, listing.rows)
    assert digest == sources.file_sha256(manifest) == sources.text_sha256(listing.rows)
    assert sources.read_manifest_file(manifest) == listing.rows


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "is empty"),
        (lambda root: None, "does not exist"),
        (lambda root: picture(root / "loose.jpg", 0), "no person folders"),
        (lambda root: (root / "Ada").mkdir(parents=True), "no usable picture"),
        (
            lambda root: (root / "Ada").mkdir(parents=True) or (root / "Ada" / "notes.txt").write_text("x"),
            "no usable",
        ),
    ],
    ids=["empty", "missing", "no person folders", "empty person folder", "no picture at all"],
)
def test_a_folder_without_usable_pictures_is_a_clear_error(tmp_path, make, message):
    root = tmp_path / "own"
    make(root)
    with pytest.raises(FacelibError, match=message):
        sources.list_folder(root)


def test_files_that_are_no_jpeg_pictures_are_counted_skips(tmp_path):
    root = people(tmp_path / "own", {"Ada": 2, "Grace": 2})
    (root / "Ada" / "notes.txt").write_text("not a picture")
    picture(root / "Ada" / "scan.png", 99)
    picture(root / "loose.jpg", 98)
    (root / "Grace" / "more").mkdir()
    listing = sources.list_folder(root)
    assert len(listing.rows) == 4
    assert listing.skips.to_dict() == {
        sources.NOT_A_PICTURE: 1,
        sources.NOT_JPEG: 1,
        sources.LOOSE: 1,
        sources.NESTED: 1,
    }
    assert any("Ada/notes.txt" in line for line in listing.skips.lines())


def test_a_picture_under_two_people_is_dropped_everywhere_and_a_copy_within_one_kept_once(tmp_path):
    root = people(tmp_path / "own", {"Ada": 3, "Grace": 2})
    picture(root / "Grace" / "same-as-ada.jpg", 0)  # Ada/0.jpg's content
    picture(root / "Ada" / "copy.jpg", 1)  # Ada/1.jpg again
    listing = sources.list_folder(root)
    paths = [r[0] for r in listing.rows]
    assert "Ada/0.jpg" not in paths and "Grace/same-as-ada.jpg" not in paths
    assert "Ada/1.jpg" in paths and "Ada/copy.jpg" not in paths
    assert listing.skips.counts[sources.DUPLICATE_ACROSS] == 2
    assert listing.skips.counts[sources.DUPLICATE_WITHIN] == 1


def test_links_that_lead_out_of_the_folder_are_counted_skips(tmp_path):
    root = people(tmp_path / "own", {"Ada": 2, "Grace": 2})
    outside = people(tmp_path / "elsewhere", {"Eve": 2}, start=50)
    os.symlink(outside / "Eve" / "0.jpg", root / "Ada" / "linked.jpg")
    os.symlink(outside / "Eve", root / "Eve")
    inside = root / "Grace" / "alias.jpg"
    os.symlink(root / "Ada" / "0.jpg", inside)  # inside, but Ada's picture under Grace: a duplicate
    listing = sources.list_folder(root)
    assert {r[1] for r in listing.rows} == {"Ada", "Grace"}
    assert listing.skips.counts[sources.OUTSIDE] == 2
    assert listing.skips.counts[sources.DUPLICATE_ACROSS] == 2


@pytest.mark.parametrize(
    "path", ["../Eve/0.jpg", "/etc/passwd", "Ada/../../x.jpg", "Ada\\..\\x.jpg", "Ada/sub/x.jpg", ""]
)
def test_a_manifest_naming_a_path_outside_its_folder_is_refused(tmp_path, path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,person,sha256\nAda/0.jpg,Ada,x\n{path},Ada,y\n")
    with pytest.raises(FacelibError, match="lead out of its folder|not PERSON/PICTURE"):
        sources.read_manifest_file(manifest)


def test_a_manifest_row_in_another_persons_folder_is_refused(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,person,sha256\nAda/0.jpg,Grace,x\n")
    with pytest.raises(FacelibError, match="not in the folder of 'Grace'"):
        sources.read_manifest_file(manifest)


def test_validation_people_are_seeded_disjoint_and_leave_people_to_train():
    counts = {f"p{i:03d}": 1 + i % 4 for i in range(200)}
    validation, train, singles = sources.split_people(counts, 0.1, seed=0, where="x")
    assert set(validation).isdisjoint(train) and set(validation).isdisjoint(singles)
    assert all(counts[n] >= 2 for n in validation + train) and all(counts[n] == 1 for n in singles)
    assert len(validation) == round(0.1 * len(validation + train))
    assert sources.split_people(counts, 0.1, 0, "x") == (validation, train, singles)
    assert sources.split_people(counts, 0.1, 1, "x")[0] != validation
    with pytest.raises(FacelibError, match="3 people have two usable pictures"):
        sources.split_people({"a": 2, "b": 3, "c": 2, "d": 1}, 0.1, 0, "own")


def test_folder_settings_are_checked_and_a_resume_sees_other_folders_as_other_settings():
    with pytest.raises(ConfigError, match="no training data"):
        TrainConfig(lfw_people=False)
    with pytest.raises(ConfigError, match="freeze_until must be one of"):
        TrainConfig(freeze_until="stage9")
    saved = json.loads(json.dumps(TrainConfig(images=("/a",), lfw_people=False).__dict__))
    assert config_differences(saved, TrainConfig(images=["/a"], lfw_people=False)) == []
    assert config_differences(saved, TrainConfig(images=("/b",), lfw_people=False)) == [
        "images ['/a'] → ['/b']"
    ]
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):  # folders are flags, not --set
        TrainConfig.parse_settings(["images=/a"])


def test_a_fine_tune_keeps_the_models_shape_and_crops_and_shortens_the_schedule():
    # a base that relights, so that the fine-tune's own choice of augmentation shows
    base = TrainConfig.preset("cpu", augmentation="lighting-mild")
    parent = {"input_size": 112, "embedding_dim": 128, "config": {"head": "l2", "crops": "x-yunet-160"}}
    settings = fine_tune_settings(base, parent)
    assert settings["learning_rate"] == pytest.approx(base.learning_rate / 10)
    assert settings["minutes"] == pytest.approx(base.minutes / 4)
    assert settings["epochs"] == base.epochs // 3
    assert settings["classifier"] == "none"  # no new head at random (docs/recipes.md)
    assert base.augmentation == "lighting-mild" and settings["augmentation"] == "basic"  # as measured
    assert (settings["input_size"], settings["embedding_dim"], settings["crops"]) == (112, 128, "x-yunet-160")


@pytest.mark.tensorflow  # FaceSet lives in the tf.data pipeline's module
def test_the_training_index_of_a_manifest_is_built_without_touching_the_files():
    rows = [(f"p{i}/{j}.jpg", f"p{i}", "") for i in range(50) for j in range(1 + i % 3)]
    train, validation = sources.index_from_manifest(rows, "/nowhere", 0.1, 0)
    assert train.images + validation.images == len(rows)
    assert set(train.identities).isdisjoint(validation.identities)
    for faces in (train, validation):
        for name, start, n in zip(faces.identities, faces.offsets, faces.counts, strict=True):
            assert all(f"/{name}/" in p for p in faces.paths[start : start + n])
