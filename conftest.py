"""Shared fixtures. Every test session gets its own FACELIB_HOME in a temp folder
(set before any notebook kernel starts, so nbval's kernels inherit it), the `smoke`
preset and oneDNN on; the LFW mirror comes from FACELIB_MIRROR.

Tests come in kinds, told by markers. `mirror`: needs the LFW mirror; set here from each
test's fixtures, so that it cannot drift from what the test uses (a test that reached the
mirror some other way would say so with its own mark). `tensorflow`: loads TensorFlow;
set by the test files, and checked here. A test with neither is a unit test: `make
test-unit` runs those, `pytest -m "not mirror"` also the TensorFlow ones."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import skip_or_fail

_HOME = Path(tempfile.mkdtemp(prefix="facelib-test-home-"))
os.environ["FACELIB_HOME"] = str(_HOME)
os.environ["FACELIB_PRESET"] = "smoke"
# TensorFlow's oneDNN kernels on, on every CPU, before anything loads TensorFlow: the
# suite passes with them (facelib may choose them off for some work on some CPUs, and
# tests/test_machine.py compares both); a value set by whoever runs the tests wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


_TENSORFLOW_BEFORE = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config, items):
    for item in items:
        # fixturenames is the closure: a test using lfw_root, smoke_model or any fixture
        # built on them holds `mirror` too. Notebooks (nbval's cells, no fixtures) read
        # LFW and train or load the smoke model.
        if item.path.suffix == ".ipynb" or "mirror" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mirror)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    item.stash[_TENSORFLOW_BEFORE] = "tensorflow" in sys.modules
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test marked neither `tensorflow` nor `mirror` that loads TensorFlow (in its
    fixtures or its body) fails, so that the unit tests stay free of it. The check sees
    only a first load: it holds in a run of one file that imports no TensorFlow."""
    result = yield
    if (
        not item.stash.get(_TENSORFLOW_BEFORE, True)
        and "tensorflow" in sys.modules
        and not any(item.iter_markers("tensorflow"))
        and not any(item.iter_markers("mirror"))
    ):
        pytest.fail("this test loads TensorFlow: mark it @pytest.mark.tensorflow", pytrace=False)
    return result


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The LFW mirror. Under CI a missing mirror is a failure, not a skip: a green
    run that skipped the data tests would say nothing."""
    value = os.environ.get("FACELIB_MIRROR")
    if not value or not (Path(value) / "lfw").is_dir():
        message = (
            "FACELIB_MIRROR is not set to a folder holding lfw/ "
            "(run tests with `make test`, which sets it when ../shared/mirror exists)"
        )
        skip_or_fail(message)
    return Path(value)


@pytest.fixture(scope="session")
def lfw_root(mirror) -> Path:
    """The extracted deep-funneled images in the session's FACELIB_HOME."""
    from facelib.data import datasets

    return datasets.fetch_lfw()


@pytest.fixture
def sample_jpeg(lfw_root) -> Path:
    return lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg"


@pytest.fixture(scope="session")
def smoke_crops(lfw_root) -> Path:
    """Face crops of the first 120 LFW images (the smoke preset's), made once."""
    from facelib.core import config
    from facelib.data.preprocess import CropSettings, output_dir, preprocess_dataset

    settings = CropSettings(detector=config.preset("smoke").detector)  # the crops the preset trains on
    preprocess_dataset(lfw_root, settings, limit=120, progress=False)
    return output_dir(lfw_root.name, settings)


@pytest.fixture(scope="session")
def smoke_model(smoke_crops) -> Path:
    """A model trained with the smoke preset (seconds): real, but not accurate."""
    from facelib.training.train import TrainConfig, train_or_resume

    return train_or_resume(TrainConfig.preset("smoke"), "smoke-fixture", verbose=0)


@pytest.fixture
def smoke_model_copy(smoke_model) -> str:
    """The run name of a copy of the smoke model (model.keras linked, card copied, no
    threshold) that says it was trained on 96 px crops: evaluating it makes a crop
    folder of its own, never touching the session's smoke crops."""
    import uuid

    from facelib.core import config
    from facelib.recognition.card import ModelCard

    name = f"copy-{uuid.uuid4().hex[:8]}"
    folder = config.models_dir() / name
    folder.mkdir()
    (folder / "model.keras").symlink_to(smoke_model / "model.keras")
    card = ModelCard.load(smoke_model)
    card.threshold = None
    card.crop_settings = {**card.crop_settings, "size": 96}
    card.config = {**card.config, "crops": card.training_crops.replace("-160", "-96")}
    card.save(folder)
    yield name
    shutil.rmtree(folder)
