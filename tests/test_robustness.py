"""The robustness suite: its degradations on small pictures, the CLAHE retry of the
crop policy, and the report on the smoke model (validation pairs only)."""

import json
from pathlib import Path

import numpy as np
import pytest

from facelib.app.cli import main
from facelib.core import config
from facelib.core.errors import FacelibError
from facelib.data import datasets
from facelib.data.crop import CropSettings, crop_picture
from facelib.data.images import load_image
from facelib.evaluation.robustness import (
    DEGRADATIONS,
    REPORT,
    RobustnessReport,
    degrade,
    degraded_crops,
    read_report,
    robustness_report,
    side_light,
    suite_pairs,
)
from facelib.recognition.card import ModelCard

pytestmark = pytest.mark.tensorflow  # facelib's imports here load TensorFlow


def _picture(height: int = 90, width: int = 120) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.linspace(60, 200, width, dtype=np.float32)[None, :, None]
    noise = rng.normal(0, 20, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_each_degradation_is_fixed_by_seed_and_index_and_changes_the_picture(name):
    rgb = _picture()
    out = degrade(rgb, name, seed=0, index=3)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert np.array_equal(out, degrade(rgb, name, seed=0, index=3))
    if name == "none":
        assert np.array_equal(out, rgb)
    else:
        same_shape = out.shape == rgb.shape
        assert not same_shape or np.abs(out.astype(int) - rgb).mean() > 1.0, name


def test_framing_rows_change_what_the_picture_shows():
    rgb = _picture(100, 100)
    assert degrade(rgb, "tight", 0, 0).shape == (55, 55, 3)
    loose = degrade(rgb, "loose", 0, 0)
    assert loose.shape == (200, 200, 3)
    assert np.array_equal(loose[50:150, 50:150], rgb)  # the picture itself, in the middle


def test_side_light_puts_one_half_in_shadow():
    flat = np.full((80, 80, 3), 180, np.uint8)
    lit = side_light(flat, np.random.default_rng(1)).astype(float)
    halves = sorted([lit[:, :30].mean(), lit[:, 50:].mean()])
    assert halves[0] < 0.3 * halves[1]


def test_unknown_degradation_is_a_clear_error():
    with pytest.raises(FacelibError, match="unknown degradation 'fog'"):
        degrade(_picture(), "fog", 0, 0)


def test_the_clahe_retry_finds_faces_in_shadow_that_plain_detection_missed(lfw_root):
    plain, retry = CropSettings(), CropSettings(equalize_retry=True)
    detector = plain.make_detector()
    pictures = sorted(lfw_root.glob("*/*_0001.jpg"))[:60]
    missed = gained = 0
    for index, path in enumerate(pictures):
        dark = degrade(load_image(path), "lighting", 0, index)
        found_plain = crop_picture(dark, detector, plain)[1].face is not None
        crop, info = crop_picture(dark, detector, retry)
        if found_plain:  # only a retry: what plain detection found is cropped as before
            assert np.array_equal(crop, crop_picture(dark, detector, plain)[0])
        else:
            missed += 1
            gained += info.face is not None
    assert missed > 0 and gained > 0


def test_report_on_the_smoke_model_scores_its_validation_pairs(smoke_model):
    card = ModelCard.load(smoke_model)
    pairs = suite_pairs(card)
    assert len(pairs.same) == 2 * card.config["validation_pairs"]
    validation = set(card.validation_identities)
    # Validation people only: of the training side, never trained on, never a test person.
    assert validation <= set(datasets.view1_people("train"))
    assert not validation & set(datasets.view1_people("test"))
    assert not validation & set(card.training_identities)
    for path in pairs.left_crops + pairs.right_pictures:
        assert path.split("/")[-2] in validation
    report = robustness_report(smoke_model, progress=False)
    assert [r.degradation for r in report.rows] == list(DEGRADATIONS)
    for row in report.rows:
        assert 0.0 <= row.auc <= 1.0 and 0.0 <= row.faces_found <= 1.0
        assert row.accuracy_at_best_threshold >= row.accuracy_at_card_threshold - 1e-9
    # The `none` row crops the pictures again, nothing changed: the crops training made.
    crops_root = config.processed_dir() / card.config["crops"]
    again, found = degraded_crops(
        pairs.right_pictures[:8], "none", CropSettings.from_dict(card.crop_settings)
    )
    for crop, picture in zip(again, pairs.right_pictures[:8], strict=True):
        stored = load_image(crops_root / Path(picture).parent.name / Path(picture).name)
        assert np.abs(crop.astype(int) - stored).mean() < 2.0  # JPEG quality 95 apart
    assert found.all()
    saved = read_report(smoke_model)
    assert saved is not None and saved.rows == report.rows
    stored = json.loads((smoke_model / "eval" / REPORT).read_text())
    assert stored["degraded_auc"] == report.degraded_auc
    # the report says how verify corrected the light; one from before that field used one curve
    assert saved.light_correction == "curve per half" and "light correction: curve per half" in report.table()
    del stored["light_correction"]
    assert RobustnessReport.from_json(stored).light_correction == "one curve"


def test_cli_robustness_prints_the_chosen_rows(smoke_model, capsys):
    assert (
        main(["evaluate", "--robustness", "--model", str(smoke_model), "--degradations", "lighting,blur"])
        == 0
    )
    out = capsys.readouterr().out
    assert "lighting" in out and "blur" in out and "rotation" not in out
    assert "mean AUC over the degradations" in out


def test_cli_robustness_refuses_test_pair_options(smoke_model_copy, capsys):
    assert main(["evaluate", "--robustness", "--view2", "--model", smoke_model_copy]) != 0
    assert "--view2/--no-view2: not with --robustness" in capsys.readouterr().err
    assert main(["evaluate", "--degradations", "blur", "--model", smoke_model_copy]) != 0
    assert "--degradations goes with --robustness" in capsys.readouterr().err


def test_flip_tta_changes_the_embeddings_and_is_not_saved(smoke_model):
    plain = robustness_report(smoke_model, degradations=["none"], save=False, progress=False)
    saved = smoke_model / "eval" / REPORT
    before = saved.read_bytes() if saved.exists() else None
    flipped = robustness_report(smoke_model, progress=False, tta=True)
    assert (saved.read_bytes() if saved.exists() else None) == before
    assert flipped.note.startswith("flip test-time augmentation")
    assert flipped.row("none").best_threshold != plain.rows[0].best_threshold


@pytest.mark.tensorflow
def test_a_model_trained_on_folders_alone_is_sent_to_its_held_out_people(tmp_path):
    """The suite degrades LFW validation people's pictures: a model with none (trained on
    folders alone) gets the command that scores its own held-out people, not a lookup of
    its folder people in LFW's crops."""
    card = ModelCard(
        "folders",
        64,
        32,
        config={"crops": "lfw-deepfunneled-yunet-160"},
        validation_identities=["office/Gil", "office/Hal"],
        data_sources=[
            {"kind": "folder", "crops": "images-office-yunet-160", "validation_people": ["Gil", "Hal"]},
        ],
    )
    with pytest.raises(FacelibError, match="--held-out-of"):
        suite_pairs(card, tmp_path)


def test_the_suite_treats_a_degraded_picture_as_verify_does_for_an_equalising_policy(lfw_root):
    from facelib.data.crop import crop_picture, finish_crop
    from facelib.data.quality import face_conditions, light_corrected

    # YuNet finds every face here (Haar not, under side light).
    settings = CropSettings(detector="yunet", equalize=True)
    detector = settings.make_detector()
    pictures = [str(lfw_root / "George_W_Bush" / f"George_W_Bush_000{n}.jpg") for n in (1, 2, 3)]
    crops, found = degraded_crops(pictures, "lighting", settings, correct_light=True)
    for index, (crop, picture) in enumerate(zip(crops, pictures, strict=True)):
        raw, info = crop_picture(
            degrade(load_image(picture), "lighting", 0, index), detector, settings, finish=False
        )
        expected = finish_crop(light_corrected(raw, face_conditions(raw, info.face)), settings)
        assert np.array_equal(crop, expected)
    assert found.all()
