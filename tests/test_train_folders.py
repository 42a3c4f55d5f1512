"""`facelib train --images`: two folders of people trained on together (smoke), resumed,
fine-tuned from with frozen early stages, and the refusals. The folders are LFW people
outside View 1's training split and outside View 1's test pairs (the stand-in for your
own people)."""

import json

import keras
import numpy as np
import pytest

from facelib.core import config
from facelib.core.errors import ConfigError, FacelibError, RunFolderError
from facelib.data import sources
from facelib.evaluation.evaluate import Metrics, unchecked_folder_people
from facelib.recognition.calibration import validation_calibration
from facelib.recognition.card import ModelCard
from facelib.recognition.model import load_model_folder
from facelib.training.train import train
from facelib.training.training_config import TrainConfig

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def own_folders(lfw_root, tmp_path_factory):
    """Two folders of 8 stand-in people each (two pictures or more)."""
    return [str(p) for p in sources.make_lfw_standin(tmp_path_factory.mktemp("own"), 2, 16, min_pictures=2)]


def folder_config(folders, **settings) -> TrainConfig:
    return TrainConfig.preset(
        "smoke", settings={"images": tuple(folders), "lfw_people": False, "validation_pairs": 8, **settings}
    )


class Crash(Exception):
    pass


class StopAtSecondEpoch(keras.callbacks.Callback):
    """Stands in for a crash after epoch 1 was backed up."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise Crash


@pytest.fixture(scope="module")
def folder_run(own_folders):
    """A smoke run on both folders, interrupted after its first epoch, then resumed."""
    cfg = folder_config(own_folders)
    with pytest.raises(Crash):
        train(cfg, "two-folders", extra_callbacks=[StopAtSecondEpoch()], verbose=0)
    folder = config.models_dir() / "two-folders"
    manifests = {p.name: p.read_bytes() for p in (folder / "sources").iterdir()}
    assert (folder / "backup").is_dir() and not (folder / "model.keras").exists()
    with pytest.raises(RunFolderError, match="images"):  # other folders: not this run
        train(folder_config(own_folders[:1]), "two-folders", resume=True, verbose=0)
    train(cfg, "two-folders", resume=True, verbose=0)
    return folder, manifests


def test_two_folders_train_together_and_a_resume_continues_the_run(folder_run, own_folders):
    folder, manifests = folder_run
    history = (folder / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1"]  # epoch 1 not trained again
    assert {p.name: p.read_bytes() for p in (folder / "sources").iterdir()} == manifests
    card = ModelCard.load(folder)
    assert [s["root"] for s in card.data_sources] == own_folders
    for source, name in zip(card.data_sources, sorted(manifests), strict=True):
        rows = sources.read_manifest_file(folder / "sources" / name)
        assert source["manifest_sha256"] == sources.text_sha256(rows)
        assert source["pictures"] == len(rows) and source["people"] == len({r[1] for r in rows})
        assert set(source["validation_people"]).isdisjoint(source["training_people"])
        assert len(source["validation_people"]) >= 2
    assert card.folder_people == {
        r[1] for name in manifests for r in sources.read_manifest_file(folder / "sources" / name)
    }
    crops = [config.processed_dir() / s["crops"] for s in card.data_sources]
    assert all((c / "manifest.csv").is_file() and (c / "origin.json").is_file() for c in crops)
    # Training stored the folders' confidence and curve; `facelib evaluate --recalibrate`
    # measures them again on the same people, in the folders' crops (not LFW's).
    assert card.confidence is not None and card.open_set is not None
    model, _ = load_model_folder(folder)
    again = validation_calibration(model, card)
    assert again.curve.source == card.open_set["source"]
    assert all(s["crops"] in again.curve.source for s in card.data_sources)
    assert again.confidence.same_pairs == card.confidence["same_pairs"]


def test_a_fine_tune_starts_from_the_model_with_its_early_stages_frozen(folder_run, own_folders):
    parent, _ = folder_run
    cfg = folder_config(own_folders[:1], weights=str(parent), freeze_until="stage2", epochs=1)
    folder = train(cfg, "fine-tuned", verbose=0)
    before, _ = load_model_folder(parent)
    after, card = load_model_folder(folder)

    def weights(model, prefix):
        layers = model.get_layer("resnet50").layers
        return [w for layer in layers if layer.name.startswith(prefix) for w in layer.get_weights()]

    for prefix in ("conv1_", "conv2_"):
        assert all(
            np.array_equal(a, b) for a, b in zip(weights(before, prefix), weights(after, prefix), strict=True)
        )
    assert not all(
        np.array_equal(a, b) for a, b in zip(weights(before, "conv5_"), weights(after, "conv5_"), strict=True)
    )
    assert card.parent_model["name"] == "two-folders" and card.parent_model["freeze_until"] == "stage2"
    assert [s["root"] for s in card.parent_model["data_sources"]] == own_folders
    assert card.data_sources[0]["manifest_sha256"]
    # What the parent saw, the fine-tune has seen: evaluate leaves those people's LFW pairs out.
    assert card.seen_identities >= ModelCard.load(parent).seen_identities
    assert card.folder_people >= ModelCard.load(parent).folder_people


def test_a_model_of_another_input_size_or_crop_policy_is_not_fine_tuned(folder_run, own_folders):
    parent, _ = folder_run
    for settings, message in [
        ({"input_size": 64}, "input size 48 \\(this run: 64\\)"),
        ({"crops": "lfw-deepfunneled-haar-160"}, "crop policy detector yunet \\(this run: haar\\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(folder_config(own_folders, weights=str(parent), **settings), "refused", verbose=0)
        assert not (config.models_dir() / "refused").exists()


def test_lfw_figures_of_a_model_trained_on_unmatchable_folders_are_marked(folder_run, tmp_path):
    folder, _ = folder_run
    card = ModelCard.load(folder)
    assert unchecked_folder_people(card) == []  # the stand-in uses LFW's names: checked by name
    assert card.folder_people <= card.seen_identities
    renamed = json.loads(json.dumps(card.to_dict()))
    renamed["data_sources"][0]["training_people"] = ["person-1", "person-2"]
    unchecked = unchecked_folder_people(ModelCard.from_dict(renamed))
    assert unchecked == ["person-1", "person-2"]
    row = Metrics("view1", 10, 0.9, 0.8, 0.1, 0.5, 0.1, 0.5, 0.3, unchecked_people=len(unchecked))
    assert "NOT KNOWN UNSEEN" in row.row()


def test_a_folder_of_people_with_no_face_found_is_a_clear_error(lfw_root, tmp_path):
    import cv2

    root = tmp_path / "blank"
    for k, person in enumerate(("Ada", "Grace", "Eve", "Lin")):
        for i in range(2):
            (root / person).mkdir(parents=True, exist_ok=True)
            shade = np.full((120, 120, 3), 20 * (2 * k + i) + 40, np.uint8)  # no face, each its own
            cv2.imwrite(str(root / person / f"{i}.jpg"), shade)
    with pytest.raises(FacelibError, match="0 people have two usable pictures"):
        train(folder_config([str(root)]), "blank", verbose=0)
