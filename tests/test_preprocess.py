import csv
import shutil

import pytest

from facelib import datasets
from facelib.errors import ConfigError
from facelib.preprocess import CropSettings, output_dir, preprocess_dataset, read_manifest


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
