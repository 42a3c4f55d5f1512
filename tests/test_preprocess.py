import csv
import shutil

import pytest

from facelib.core.errors import ConfigError
from facelib.data import datasets
from facelib.data.preprocess import CropSettings, output_dir, preprocess_dataset, read_manifest


@pytest.fixture
def small_root(tmp_path, lfw_root):
    """Three people of LFW plus one corrupt file, in a folder of their own."""
    root = tmp_path / "lfw-mini"
    for person in ["Aaron_Peirsol", "Abdullah_Gul", "AJ_Cook"]:
        shutil.copytree(lfw_root / person, root / person)
    (root / "AJ_Cook" / "AJ_Cook_0002.jpg").write_bytes(b"\xff\xd8 broken")
    return root


def test_subset_writes_crops_and_manifest_then_reruns_do_no_work(small_root):
    settings = CropSettings(size=96)
    first = preprocess_dataset(small_root, settings, workers=2, progress=False)
    n_images = len(datasets.list_images(small_root))
    assert first.total == n_images and first.processed_now == n_images
    assert first.counts["failed"] == 1
    assert first.counts.get("detected", 0) + first.counts.get("multiple", 0) >= n_images - 3

    out = output_dir("lfw-mini", settings)
    records = read_manifest(out)
    assert len(records) == n_images
    for r in records:
        if r["status"] != "failed":
            assert (out / r["crop"]).is_file()
    broken = next(r for r in records if r["status"] == "failed")
    assert broken["identity"] == "AJ_Cook" and broken["message"].endswith(
        "is not an image file that can be read"
    )

    second = preprocess_dataset(small_root, settings, workers=2, progress=False)
    assert (second.processed_now, second.reused) == (0, n_images)
    assert second.counts == first.counts


def test_an_interrupted_run_resumes_with_only_the_missing_work(small_root):
    settings = CropSettings(size=64)
    preprocess_dataset(small_root, settings, workers=1, progress=False)
    out = output_dir("lfw-mini", settings)
    # Simulate a crash: the manifest was not yet written, one crop never finished,
    # another was cut short.
    manifest = out / "manifest.csv"
    manifest.rename(out / "manifest.partial.csv")
    crops = sorted(out.glob("*/*.jpg"))
    crops[0].unlink()
    crops[1].write_bytes(crops[1].read_bytes()[:100])
    resumed = preprocess_dataset(small_root, settings, workers=1, progress=False)
    assert resumed.processed_now == 2
    assert manifest.is_file() and not (out / "manifest.partial.csv").exists()
    with open(manifest) as f:
        assert len(list(csv.DictReader(f))) == resumed.total


def test_no_face_policy_skip_writes_no_crop(tmp_path):
    import cv2
    import numpy as np

    root = tmp_path / "blank"
    (root / "Nobody").mkdir(parents=True)
    cv2.imwrite(str(root / "Nobody" / "Nobody_0001.jpg"), np.full((120, 120, 3), 200, np.uint8))
    skip = preprocess_dataset(root, CropSettings(size=64, no_face="skip"), workers=1, progress=False)
    assert skip.counts == {"skipped": 1}
    assert not list(output_dir("blank", CropSettings(size=64, no_face="skip")).glob("*/*.jpg"))


def test_changed_settings_for_an_existing_output_are_refused(small_root):
    preprocess_dataset(small_root, CropSettings(size=48), limit=2, workers=1, progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        preprocess_dataset(small_root, CropSettings(size=48, margin=0.4), limit=2, workers=1, progress=False)


def test_a_folder_made_before_newer_settings_existed_is_reused(small_root):
    import json

    settings = CropSettings(size=40)
    preprocess_dataset(small_root, settings, limit=2, workers=1, progress=False)
    params = output_dir("lfw-mini", settings) / "settings.json"
    older = json.loads(params.read_text())
    for added in ("min_face_px", "pad_retry", "fallback_fraction", "equalize"):  # what an older facelib wrote
        del older[added]
    params.write_text(json.dumps(older))
    again = preprocess_dataset(small_root, settings, limit=2, workers=1, progress=False)
    assert (again.processed_now, again.reused) == (0, 2)
    assert output_dir("lfw-mini", settings).name == "lfw-mini-haar-40"  # the folder name did not change
    params.write_text(json.dumps({**older, "pad_retry": 0.0}))  # made with the retry off: really other
    with pytest.raises(ConfigError, match="other settings"):
        preprocess_dataset(small_root, settings, limit=2, workers=1, progress=False)


def test_preprocessing_follows_the_crop_policy(tmp_path, lfw_root):
    import cv2
    import numpy as np

    from facelib.data.images import load_image

    face = load_image(lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg")
    root = tmp_path / "policy"
    (root / "Someone").mkdir(parents=True)
    tight = face[82:168, 87:168]  # the face fills the frame: found on the padded copy
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    canvas[300:550, 900:1150] = face  # a small face in a large picture
    blank = np.full((200, 300, 3), 30, np.uint8)
    blank[45:155, 95:205] = 220  # no face: the central half is taken
    for name, rgb in [("Someone_0001", tight), ("Someone_0002", canvas), ("Someone_0003", blank)]:
        path = str(root / "Someone" / f"{name}.jpg")
        cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 98])
    settings = CropSettings(size=64)
    summary = preprocess_dataset(root, settings, workers=1, progress=False)
    assert summary.counts == {"detected": 2, "fallback": 1}
    records = {r["source"].split("/")[-1]: r for r in read_manifest(output_dir("policy", settings))}
    assert records["Someone_0001.jpg"]["message"].startswith("found on a padded copy")
    assert 900 < int(records["Someone_0002.jpg"]["x"]) < 1150
    fallback = load_image(output_dir("policy", settings) / records["Someone_0003.jpg"]["crop"])
    assert np.abs(fallback.astype(int) - 220).max() <= 3  # JPEG's loss only


def test_equalised_crops_go_to_their_own_folder_and_are_the_policys_finished_crops(small_root):
    import json

    import numpy as np

    from facelib.data.crop import crop_picture, finish_crop
    from facelib.data.images import load_image

    settings = CropSettings(size=48, equalize=True)
    preprocess_dataset(small_root, settings, limit=3, workers=1, progress=False)
    out = output_dir("lfw-mini", settings)
    assert out.name == "lfw-mini-haar-48-eq" and out != output_dir("lfw-mini", CropSettings(size=48))
    assert json.loads((out / "settings.json").read_text())["equalize"] is True
    detector = settings.make_detector()
    records = [r for r in read_manifest(out) if r["crop"]]
    assert len(records) >= 2  # the first three sorted pictures hold the corrupt one
    for record in records:
        raw, _ = crop_picture(
            load_image(small_root.parent / record["source"]), detector, settings, finish=False
        )
        stored = load_image(out / record["crop"]).astype(int)
        assert np.abs(stored - finish_crop(raw, settings)).mean() < 4.0  # JPEG quality 95 apart, 48 px
        assert np.abs(stored - raw).mean() > 10.0  # and not the crop as it came
    with pytest.raises(ConfigError, match="other settings"):
        preprocess_dataset(
            small_root, CropSettings(size=48), out_root=out, limit=3, workers=1, progress=False
        )
