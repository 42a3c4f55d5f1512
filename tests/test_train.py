import csv
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import free_port

from facelib.core import config
from facelib.core.errors import ConfigError, FacelibError
from facelib.data import datasets
from facelib.data.pipeline import FaceSet, _seed, pk_indices, random_triplet_indices, training_split
from facelib.data.preprocess import read_manifest
from facelib.recognition.card import ModelCard
from facelib.recognition.model import ModelError, build_embedding_model, load_model_folder, save_model_folder
from facelib.training.run_folder import Backup, keep_history, kept_epochs, read_backup
from facelib.training.train import train, train_or_resume
from facelib.training.training_config import TrainConfig

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


def _faces(counts):
    counts = np.array(counts, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    paths = [f"id{i}/{j}.jpg" for i, c in enumerate(counts) for j in range(c)]
    return FaceSet([f"id{i}" for i in range(len(counts))], paths, offsets, counts)


def test_pk_batches_hold_p_identities_of_k_images():
    faces = _faces([2, 3, 9, 4, 5, 2, 7, 3])
    sample = pk_indices(faces, p=4, k=3, seed=1)
    for step in range(20):
        index, labels = (t.numpy() for t in sample(tf.constant(step, tf.int64)))
        assert len(index) == 12
        ids, per_id = np.unique(labels, return_counts=True)
        assert len(ids) == 4 and set(per_id) == {3}
        for i in ids:
            own = index[labels == i]
            lo, hi = faces.offsets[i], faces.offsets[i] + faces.counts[i]
            assert np.all((own >= lo) & (own < hi))  # images of that identity only
            if faces.counts[i] >= 3:
                assert len(set(own)) == 3  # no repeats when there are enough images
    again = pk_indices(faces, p=4, k=3, seed=1)(tf.constant(5, tf.int64))[0].numpy()
    assert np.array_equal(again, sample(tf.constant(5, tf.int64))[0].numpy())  # deterministic
    other = sample(tf.constant(6, tf.int64))[0].numpy()
    assert not np.array_equal(again, other)


def test_pk_batches_give_single_picture_people_their_share_of_the_slots():
    faces = _faces([2, 3, 4, 5, 2, 3] + [1] * 6)  # 6 of 25 pictures: one slot of 4
    sample = pk_indices(faces, p=4, k=2, seed=0)
    drawn = set()
    for step in range(40):
        index, labels = (t.numpy() for t in sample(tf.constant(step, tf.int64)))
        ids = np.unique(labels)
        singles = [i for i in ids if faces.counts[i] == 1]
        assert len(ids) == 4 and len(singles) == 1
        assert set(index[labels == singles[0]]) == {faces.offsets[singles[0]]}  # its one picture, twice
        drawn |= set(singles)
    assert len(drawn) == 6  # every one of them is drawn


def test_pk_batches_without_single_picture_people_are_the_stream_runs_resume_by():
    """The identities of a batch as drawn before people with one picture could join:
    a resumed run must get the same batches."""
    faces = _faces([2, 3, 4, 5, 2, 3, 9, 4])
    sample = pk_indices(faces, p=4, k=2, seed=3)
    for step in range(10):
        before = tf.random.experimental.stateless_shuffle(
            tf.range(len(faces.identities), dtype=tf.int64), _seed(3, tf.constant(step, tf.int64), 1)
        )[:4]
        labels = sample(tf.constant(step, tf.int64))[1].numpy()
        assert np.array_equal(labels, np.repeat(before.numpy(), 2))


def test_single_picture_people_join_training_but_never_validation(smoke_crops):
    plain = training_split(smoke_crops)
    more = training_split(smoke_crops, single_picture_people=True)
    pictures = Counter(r["identity"] for r in read_manifest(smoke_crops))
    added = set(more.train.identities) - set(plain.train.identities)
    assert added and all(pictures[name] == 1 for name in added)
    assert added <= set(datasets.view1_people("train"))
    assert more.validation.identities == plain.validation.identities


def test_single_picture_people_are_capped_with_the_identities(smoke_crops):
    capped = training_split(smoke_crops, max_identities=6, single_picture_people=True)
    everyone = training_split(smoke_crops, single_picture_people=True)
    plain = training_split(smoke_crops, max_identities=6)
    added = set(capped.train.identities) - set(plain.train.identities)
    assert (
        0
        < len(added)
        < len(set(everyone.train.identities) - set(training_split(smoke_crops).train.identities))
    )


def test_a_run_with_single_picture_people_trains_them_as_classes(smoke_crops, capsys):
    cfg = TrainConfig.preset("smoke", settings={"single_picture_people": True, "classifier": "cosface"})
    folder = train(cfg, "with-singles", verbose=0)
    card = ModelCard.load(folder)
    plain = training_split(smoke_crops, max_identities=24).train.identities
    added = set(card.training_identities) - set(plain)
    assert added and not added & set(card.validation_identities)
    assert f"({len(added)} with one picture)" in capsys.readouterr().out
    plain_images = training_split(smoke_crops, max_identities=24).train.with_at_least(2).images
    assert card.training_images == plain_images + len(added)  # one picture each


def test_random_triplets_pair_two_images_of_one_person_with_another_person():
    faces = _faces([2, 3, 4, 2, 5])
    index, labels = (t.numpy() for t in random_triplet_indices(faces, 16, seed=0)(tf.constant(3, tf.int64)))
    a, p, n = np.split(index, 3)
    la, lp, ln = np.split(labels, 3)
    assert np.array_equal(la, lp) and np.all(la != ln)
    assert np.all(a != p)
    owner = np.repeat(np.arange(5), faces.counts)
    assert np.array_equal(owner[a], la) and np.array_equal(owner[p], lp) and np.array_equal(owner[n], ln)


def test_training_identities_come_only_from_view1_train(smoke_crops):
    split = training_split(smoke_crops, validation_fraction=0.2)
    train_people, test_people = set(datasets.view1_people("train")), set(datasets.view1_people("test"))
    assert split.train.identities and split.validation.identities
    assert set(split.train.identities) <= train_people
    assert not set(split.train.identities) & test_people
    assert not set(split.validation.identities) & set(split.train.identities)
    pictures = Counter(r["identity"] for r in read_manifest(smoke_crops))
    assert all(pictures[name] >= 2 for name in split.validation.identities)


def test_validation_people_do_not_depend_on_what_the_detector_found(smoke_crops, tmp_path):
    """Crops made another way (here: all but one picture of a person turned into
    failures) must hold out the same people, or validation AUCs of two crop policies
    would be measured on different people."""
    import shutil

    other = tmp_path / "other-crops"
    shutil.copytree(smoke_crops, other)
    rows = read_manifest(other)
    victim = training_split(smoke_crops).validation.identities[0]
    for row in [r for r in rows if r["identity"] == victim][1:]:
        row.update(status="failed", crop="")
    with open(other / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert training_split(other).validation.identities == training_split(smoke_crops).validation.identities


def test_save_then_load_gives_identical_embeddings(tmp_path):
    model = build_embedding_model(input_size=40, embedding_dim=16)
    save_model_folder(tmp_path / "m", model, ModelCard("m", 0, 0))
    loaded, card = load_model_folder(tmp_path / "m")
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3)).astype("float32")
    assert np.allclose(model.predict(images, verbose=0), loaded.predict(images, verbose=0), atol=1e-6)
    assert (card.input_size, card.embedding_dim) == (40, 16)
    assert np.allclose(np.linalg.norm(loaded.predict(images, verbose=0), axis=1), 1.0, atol=1e-5)


def test_dropout_before_the_embedding_acts_in_training_only_and_adds_no_weights():
    plain = build_embedding_model(input_size=40, embedding_dim=16)
    dropped = build_embedding_model(input_size=40, embedding_dim=16, dropout=0.5)
    dropped.set_weights(plain.get_weights())  # the same weights fit both
    images = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3)).astype("float32")
    assert np.allclose(dropped(images, training=False), plain(images, training=False), atol=1e-6)
    assert not np.allclose(dropped(images, training=True), plain(images, training=True), atol=1e-3)
    # what training saves is rebuilt without the dropout layer, with the same weights
    from facelib.training.assembly import in_float32

    cfg = TrainConfig.preset("smoke", input_size=40, embedding_dim=16, settings={"embedding_dropout": 0.5})
    saved = in_float32(dropped, cfg, tf.distribute.get_strategy())
    assert "embedding_dropout" not in [layer.name for layer in saved.layers]
    # (the training call above moved the batch-norm statistics: compare with `dropped` now)
    assert np.allclose(saved(images), dropped(images, training=False), atol=1e-6)


def test_a_validation_seed_holds_out_the_same_people_whatever_the_training_seed(smoke_crops, tmp_path):
    from facelib.training.training_data import gather

    def held_out(**settings):
        cfg = TrainConfig.preset("smoke", settings=settings)
        faces = gather(cfg, smoke_crops, tmp_path / "-".join(map(str, settings.values())), True, False)
        return faces.validation.identities, [pair.tolist() for pair in faces.pairs]

    assert held_out(seed=0) == held_out(seed=1, validation_seed=0)
    assert held_out(seed=0) != held_out(seed=1)  # else the first check proves nothing


def test_loading_bad_model_folders_fails_clearly(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model_folder(tmp_path / "missing")
    (tmp_path / "nocard").mkdir()
    with pytest.raises(ModelError, match="no card.json"):
        load_model_folder(tmp_path / "nocard")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "card.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ModelError, match="not a facelib model card"):
        load_model_folder(tmp_path / "other")
    model = build_embedding_model(input_size=40, embedding_dim=16)
    save_model_folder(tmp_path / "m", model, ModelCard("m", 0, 0))
    card = ModelCard.load(tmp_path / "m")
    ModelCard.update(tmp_path / "m", lambda card: setattr(card, "embedding_dim", 64))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model_folder(tmp_path / "m")
    (tmp_path / "m" / "model.keras").write_bytes(b"not a zip file")
    card.save(tmp_path / "m")
    with pytest.raises(ModelError, match="not a model facelib can load"):
        load_model_folder(tmp_path / "m")


def test_smoke_training_lowers_the_loss(smoke_crops):
    """Trained on one small batch of LFW crops (8 images of 4 people), the loss must
    fall: the whole loop (model, loss, optimizer, callbacks, saving) learns."""
    from facelib.data.pipeline import training_dataset

    cfg = TrainConfig.preset("smoke", epochs=3, steps_per_epoch=8, schedule="constant", learning_rate=3e-4)
    faces = training_split(smoke_crops, cfg.validation_fraction, cfg.split_seed, cfg.max_identities).train
    batch = next(iter(training_dataset(faces.with_at_least(2), "batch_hard", cfg.p, cfg.k, cfg.input_size)))
    folder = train(cfg, "lowers-loss", verbose=0, data=tf.data.Dataset.from_tensors(batch).repeat())
    with open(folder / "history.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0], losses
    card = ModelCard.load(folder)
    assert card.history["epochs"] == 3 and 0 <= card.history["final_val_auc"] <= 1
    assert card.training_identities and card.data_manifest_sha256
    # Its validation people's impostor curve: the model identifies without `facelib evaluate`.
    curve = card.open_set
    assert curve["source"].startswith(
        f"validation people of the training side: {len(card.validation_identities)}"
    )
    assert not (folder / "backup").exists()


def _history_file(path, epochs, tail=""):
    rows = "".join(f"{e},0.5,100.0,0.75,0.1\n" for e in epochs)
    path.write_text("epoch,loss,peak_rss_mb,val_auc,val_gap\n" + rows + tail)
    return path


def test_history_is_cut_back_to_the_epochs_the_backup_holds(tmp_path):
    csv = _history_file(tmp_path / "history.csv", [0, 1, 2], tail="3,0.4")  # 3: a row cut by a kill
    keep_history(csv, 2)
    assert csv.read_text() == _history_file(tmp_path / "expected.csv", [0, 1]).read_text()
    keep_history(csv, 2)  # already consistent: unchanged
    assert csv.read_text().splitlines()[-1].startswith("1,")
    keep_history(csv, 0)  # no epoch backed up: CSVLogger starts a fresh file
    assert not csv.exists()
    keep_history(csv, 0)


@pytest.mark.parametrize("epochs", [[0], [0, 0, 1], [1, 2], []])
def test_history_that_misses_a_backed_up_epoch_is_refused(tmp_path, epochs):
    csv = _history_file(tmp_path / "history.csv", epochs)
    before = csv.read_text()
    with pytest.raises(ConfigError, match="does not hold one row for each of the 2 epoch"):
        keep_history(csv, 2)
    assert csv.read_text() == before
    with pytest.raises(ConfigError, match="does not hold one row"):
        keep_history(tmp_path / "missing.csv", 2)


def test_kept_epochs_past_the_backup_are_removed_as_they_will_be_trained_again(tmp_path):
    from facelib.training.run_folder import RunFolder

    run = tmp_path / "run"
    (run / "epochs").mkdir(parents=True)
    for n in (1, 2, 3, 10):
        (run / "epochs" / f"epoch-{n}.weights.h5").write_bytes(b"w")
    _history_file(run / "history.csv", [0, 1])
    cfg = TrainConfig.preset("smoke", settings={"keep_epochs": True})
    saved = json.loads(json.dumps(dataclasses.asdict(cfg)))
    RunFolder("run", run, True, Backup(2, run / "backup" / "epoch-2.weights.h5"), saved).begin(cfg)
    assert [p.name for p in kept_epochs(run)] == ["epoch-1.weights.h5", "epoch-2.weights.h5"]
    RunFolder("run", run, True, None, None).begin(cfg)  # a fresh start keeps none
    assert kept_epochs(run) == []


def test_keep_epochs_is_no_difference_when_a_run_is_resumed_or_run_again():
    from facelib.training.training_config import config_differences

    saved = dataclasses.asdict(TrainConfig.preset("smoke"))
    assert config_differences(saved, TrainConfig.preset("smoke", settings={"keep_epochs": True})) == []
    assert config_differences(saved, TrainConfig.preset("smoke", epochs=5)) == ["epochs 2 → 5"]


def test_backups_are_read_or_refused_clearly(tmp_path):
    backup = tmp_path / "run" / "backup"
    assert read_backup(tmp_path / "run") is None
    backup.mkdir(parents=True)
    (backup / "epoch-3.weights.h5").write_bytes(b"h5")
    (backup / "state.json").write_text(json.dumps({"epoch": 3, "weights": "epoch-3.weights.h5"}))
    assert read_backup(tmp_path / "run") == Backup(3, backup / "epoch-3.weights.h5")
    (backup / "state.json").write_text(json.dumps({"epoch": 4, "weights": "epoch-4.weights.h5"}))
    with pytest.raises(ConfigError, match="names epoch-4.weights.h5, which is missing"):
        read_backup(tmp_path / "run")
    (backup / "state.json").write_text('{"epoch": ')
    with pytest.raises(ConfigError, match="state.json is damaged"):
        read_backup(tmp_path / "run")
    # keras.callbacks.BackupAndRestore's files, from runs interrupted before facelib wrote its own
    (backup / "state.json").unlink()
    (backup / "latest.weights.h5").write_bytes(b"h5")
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    assert read_backup(tmp_path / "run") == Backup(2, backup / "latest.weights.h5")


def test_a_folder_that_is_no_whole_training_run_is_refused(smoke_crops):
    folder = config.models_dir() / "not-a-run"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files but no training run"):
        train(TrainConfig.preset("smoke"), "not-a-run", verbose=0)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    (folder / "config.json").write_text('{"p": ')
    with pytest.raises(ConfigError, match="config.json is damaged"):
        train(TrainConfig.preset("smoke"), "not-a-run", resume=True, verbose=0)
    (folder / "config.json").unlink()
    (folder / "backup").mkdir()
    (folder / "backup" / "epoch-1.weights.h5").write_bytes(b"h5")
    (folder / "backup" / "state.json").write_text(json.dumps({"epoch": 1, "weights": "epoch-1.weights.h5"}))
    with pytest.raises(ConfigError, match="has a backup but no config.json"):
        train(TrainConfig.preset("smoke"), "not-a-run", resume=True, verbose=0)


def test_multi_worker_strategy_trains_with_one_worker(smoke_crops, tmp_path):
    """The TF_CONFIG code path (MultiWorkerMirroredStrategy), one worker on loopback."""
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{free_port()}"]}, "task": {"type": "worker", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelib",
            "train",
            "--preset",
            "smoke",
            "--epochs",
            "1",
            "--name",
            "multiworker",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "validation AUC" in result.stdout
    assert "MultiWorkerMirroredStrategy, 1 replica" in result.stdout


def test_settings_from_the_command_line_are_typed_and_checked():
    parsed = TrainConfig.parse_settings(["p=16", "bfloat16=true", "learning_rate=2e-3", "classifier=cosface"])
    assert parsed == {"p": 16, "bfloat16": True, "learning_rate": 2e-3, "classifier": "cosface"}
    assert TrainConfig.parse_settings(["max_identities=24", "weights=none"]) == {
        "max_identities": 24,
        "weights": None,
    }
    assert TrainConfig.parse_settings(["weights=imagenet", "max_identities=none"]) == {
        "weights": "imagenet",
        "max_identities": None,
    }
    for bad in ["nosuch=1", "p=two", "bfloat16=maybe", "p", "max_identities=abc", "epochs=none"]:
        with pytest.raises(ConfigError, match="^--set"):
            TrainConfig.parse_settings([bad])
    with pytest.raises(ConfigError, match="classifier"):
        TrainConfig.preset("smoke", classifier="arcsoft")


def test_set_values_reach_the_config_as_given_and_plain_none_keeps_the_preset():
    assert TrainConfig.preset("smoke").max_identities == 24
    assert TrainConfig.preset("smoke", max_identities=None).max_identities == 24  # a flag left out
    settings = TrainConfig.parse_settings(["max_identities=none"])
    assert TrainConfig.preset("smoke", settings=settings).max_identities is None
    # --set wins over a plain flag
    assert TrainConfig.preset("smoke", settings={"epochs": 5}, epochs=3).epochs == 5


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be at least 1"),
        ({"learning_rate": 0.0}, "learning_rate must be above 0"),
        ({"learning_rate": -1e-3}, "learning_rate must be above 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be above 0"),
        ({"weight_decay": 5e-4}, "weight_decay 0.0005 needs optimizer adamw"),
        ({"weight_decay": -1.0, "optimizer": "adamw"}, "weight_decay must be 0 or more"),
        ({"precision": "float64"}, "precision must be one of auto, float32, bfloat16, float16"),
        ({"minutes": 0}, "minutes must be above 0"),
        ({"embedding_dropout": 1.0}, "embedding_dropout must be at least 0 and below 1"),
        ({"embedding_dropout": -0.1}, "embedding_dropout must be at least 0 and below 1"),
        ({"mining": "random", "single_picture_people": True}, "needs P×K batches"),
    ],
)
def test_impossible_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.preset("smoke", settings=settings)


def test_settings_that_fit_together_are_accepted():
    cfg = TrainConfig.preset("smoke", settings={"optimizer": "adamw", "weight_decay": 5e-4, "epochs": 1})
    assert (cfg.optimizer, cfg.weight_decay, cfg.epochs) == ("adamw", 5e-4, 1)
    assert TrainConfig.preset("gpu").precision == "auto"  # float16 on a GPU
    assert (
        TrainConfig.preset("gpu", settings={"mixed_precision": False, "bfloat16": True}).precision
        == "bfloat16"
    )


def test_a_finished_run_asked_for_other_settings_is_refused(smoke_model):
    run = smoke_model.name
    cfg = TrainConfig.preset("smoke")
    config_json = (smoke_model / "config.json").read_text()
    assert train_or_resume(cfg, run, verbose=0) == smoke_model  # the same settings: done
    with pytest.raises(ConfigError) as refused:
        train_or_resume(TrainConfig.preset("smoke", epochs=cfg.epochs + 18), run, verbose=0)
    # The flag to use instead is the command line's to add (test_cli.py).
    assert str(refused.value) == (
        f"{run} already finished with other settings (epochs {cfg.epochs} → {cfg.epochs + 18})"
    )
    assert (refused.value.run, refused.value.resumable) == (run, False)
    with pytest.raises(
        ConfigError, match=r"other settings \(mining batch_hard → random, max_identities 24 → none\)"
    ):
        train_or_resume(
            TrainConfig.preset("smoke", settings={"mining": "random", "max_identities": None}), run
        )
    assert (smoke_model / "config.json").read_text() == config_json  # nothing rewritten


def test_missing_crops_are_found_before_the_run_folder_is_made(smoke_crops, monkeypatch, tmp_path):
    cfg = TrainConfig.preset("smoke", crops="lfw-deepfunneled-yunet-77")
    with pytest.raises(FacelibError) as missing:
        train(cfg, "no-such-crops", verbose=0)
    message = str(missing.value)
    assert message.startswith(f"no face crops in {config.processed_dir() / 'lfw-deepfunneled-yunet-77'}; ")
    assert smoke_crops.name in message.split("crop folders there: ")[1].split(":")[0]
    assert "pass --crops NAME (or --set crops=NAME)" in message and "\n" not in message
    assert not (config.models_dir() / "no-such-crops").exists()

    monkeypatch.setenv("FACELIB_HOME", str(tmp_path))  # no crops at all
    with pytest.raises(FacelibError, match=r"no face crops in .*: run `facelib preprocess` first$"):
        train(cfg, "no-crops-at-all", verbose=0)
    assert not (tmp_path / "models" / "no-crops-at-all").exists()


def test_cosface_head_trains_beside_the_triplet_loss_and_is_not_saved(smoke_crops, monkeypatch):
    """bfloat16 + CosFace + AdamW: both losses are logged, the saved model is the bare
    embedding network (unit vectors of embedding_dim), and throughput is in history;
    keep_epochs keeps each epoch's embedding weights, the last ones the saved model's."""
    cfg = TrainConfig.preset(
        "smoke",
        classifier="cosface",
        bfloat16=True,
        optimizer="adamw",
        weight_decay=5e-4,
        soft_margin=False,
        settings={"keep_epochs": True},
    )
    assert keras.mixed_precision.global_policy().name == "float32"
    monkeypatch.setenv("FACELIB_ALLOW_EMULATED_BFLOAT16", "1")  # a CPU without it: emulated, still seconds
    folder = train(cfg, "cosface-smoke", verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored by train()
    with open(folder / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == cfg.epochs
    assert all(float(r["cosines_loss"]) > 0 and float(r["embedding_loss"]) >= 0 for r in rows)
    assert all(float(r["images_per_second"]) > 0 and float(r["train_seconds"]) > 0 for r in rows)
    model, card = load_model_folder(folder)
    assert not any(layer.name == "cosines" for layer in model.layers)
    # Trained in bfloat16, saved in float32: verify and evaluate compute in full precision.
    layers = list(model._flatten_layers(include_self=False))  # the ResNet50's own layers too
    assert len(layers) > 100
    assert {layer.dtype_policy.name for layer in layers} == {"float32"}
    assert all(w.dtype == "float32" for w in model.weights)
    images = (
        np.random.default_rng(0).integers(0, 256, (2, cfg.input_size, cfg.input_size, 3)).astype("float32")
    )
    out = model.predict(images, verbose=0)
    assert out.shape == (2, cfg.embedding_dim) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-3)
    # keep_epochs: each epoch's embedding weights, without the head; the last one's are the saved model's.
    kept = kept_epochs(folder)
    assert [p.name for p in kept] == [f"epoch-{n}.weights.h5" for n in range(1, cfg.epochs + 1)]
    last = build_embedding_model(cfg.input_size, cfg.embedding_dim)
    last.load_weights(kept[-1])
    assert np.allclose(last.predict(images, verbose=0), out, atol=1e-5)
    first = build_embedding_model(cfg.input_size, cfg.embedding_dim)
    first.load_weights(kept[0])
    assert not np.allclose(first.predict(images, verbose=0), out, atol=1e-3)
