"""The model card: typed, upgraded on load, changed only by a locked re-read and write."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path

import pytest

from facelib.recognition.card import SCHEMA, ModelCard, ModelError

DATA = Path(__file__).parent / "data"
# A card as facelib wrote it before the card had a schema number (commit 9c71cb9: a smoke
# model, trained and then evaluated by that commit's `facelib train` and `facelib evaluate`).
SCHEMA_1_CARD = DATA / "card-schema-1.json"


def test_a_card_written_before_the_schema_loads_and_saves_in_the_current_one(tmp_path):
    old = json.loads(SCHEMA_1_CARD.read_text())
    assert "schema" not in old
    shutil.copy(SCHEMA_1_CARD, tmp_path / "card.json")
    card = ModelCard.load(tmp_path)
    assert (card.name, card.input_size, card.embedding_dim) == (old["name"], 48, 32)
    assert card.threshold == old["threshold"] and card.open_set == old["open_set"]
    assert card.training_crops == old["config"]["crops"] and card.evaluations == old["evaluations"]
    card.save(tmp_path)
    again = json.loads((tmp_path / "card.json").read_text())
    # Every key kept, nothing else changed; keys added since (issue 18's confidence) at their default.
    added = {"confidence": None, "confidence_note": None}
    assert again == {**old, "schema": SCHEMA, **added}


@pytest.mark.tensorflow  # a real Keras model beside the old card
def test_a_model_folder_from_before_the_schema_still_loads(tmp_path):
    from facelib.recognition.model import build_embedding_model, load_model_folder

    build_embedding_model(input_size=48, embedding_dim=32).save(tmp_path / "model.keras")
    shutil.copy(SCHEMA_1_CARD, tmp_path / "card.json")
    model, card = load_model_folder(tmp_path)
    assert model.output_shape[-1] == card.embedding_dim == 32


def test_unknown_keys_are_kept_and_a_newer_schema_or_a_damaged_card_is_refused(tmp_path):
    card = ModelCard("m", 64, 128)
    card.extra = {"written_by_a_newer_facelib": {"x": 1}}
    card.save(tmp_path)
    assert ModelCard.load(tmp_path).extra == {"written_by_a_newer_facelib": {"x": 1}}

    data = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**data, "schema": SCHEMA + 1}))
    with pytest.raises(ModelError, match="newer facelib"):
        ModelCard.load(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({k: v for k, v in data.items() if k != "input_size"}))
    with pytest.raises(ModelError, match="lacks input_size"):
        ModelCard.load(tmp_path)
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        ModelCard.load(tmp_path)


def _append_slowly(folder: str, tag: str, times: int) -> None:
    def change(card: ModelCard) -> None:
        time.sleep(0.05)  # a slow writer: without the lock the other process reads meanwhile
        card.evaluations.append({"by": tag})

    for _ in range(times):
        ModelCard.update(folder, change)


def test_updates_from_two_processes_at_once_lose_nothing(tmp_path):
    ModelCard("m", 64, 128).save(tmp_path)
    context = multiprocessing.get_context("spawn")  # no TensorFlow state copied by fork
    workers = [context.Process(target=_append_slowly, args=(str(tmp_path), t, 5)) for t in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    tags = sorted(e["by"] for e in ModelCard.load(tmp_path).evaluations)
    assert tags == ["a"] * 5 + ["b"] * 5


def test_each_sources_people_are_looked_for_in_its_own_crop_folder():
    """Evaluate's recalibration and export's check crops read a folder's people from the
    folder's crops, not from the LFW crop folder the config names (where they are not)."""
    card = ModelCard(
        "mixed",
        64,
        32,
        config={"crops": "lfw-deepfunneled-yunet-160"},
        training_identities=["Ann", "Bob", "Carl", "Dora"],
        validation_identities=["Eve", "Fay", "Gil", "Hal"],
        data_sources=[
            {"kind": "lfw", "crops": "lfw-deepfunneled-yunet-160", "validation_people": ["Eve", "Fay"]},
            {
                "kind": "folder",
                "crops": "images-office-yunet-160",
                "training_people": ["Carl", "Dora"],
                "validation_people": ["Gil", "Hal"],
            },
        ],
    )
    assert card.source_people() == [
        ("lfw-deepfunneled-yunet-160", ["Eve", "Fay"]),
        ("images-office-yunet-160", ["Gil", "Hal"]),
    ]
    assert card.source_people(validation=False) == [
        ("lfw-deepfunneled-yunet-160", ["Ann", "Bob"]),
        ("images-office-yunet-160", ["Carl", "Dora"]),
    ]
    lfw_only = ModelCard("lfw", 64, 32, config={"crops": "c"}, validation_identities=["Eve"])
    assert lfw_only.source_people() == [("c", ["Eve"])]


def test_a_fine_tune_has_seen_everyone_its_parent_saw():
    """A fine-tune's weights carry its parent's people: evaluate must leave their LFW
    pairs out (View 2 holds View 1's training people) and check the parent's folders."""
    card = ModelCard(
        "fine-tuned",
        64,
        32,
        training_identities=["Ann"],
        validation_identities=["Bob"],
        parent_model={"name": "lfw-model", "seen_identities": ["Carl", "Dora"], "folder_people": ["Eve"]},
    )
    assert card.seen_identities == {"Ann", "Bob", "Carl", "Dora"}
    assert card.folder_people == {"Eve"}
    assert ModelCard("old", 64, 32, parent_model={"name": "p"}).seen_identities == set()
