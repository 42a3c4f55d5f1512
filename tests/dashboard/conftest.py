"""Fixtures of the dashboard's tests: the smoke model's verifier, a controller and a page
over it, three pictures of one person, and a controller over chosen embeddings."""

import pytest
from helpers import THUMBNAIL, unit

from facelib.app.dashboard import Dashboard
from facelib.app.dashboard_controller import DashboardController
from facelib.recognition.gallery import Gallery, model_id
from facelib.recognition.verification import FaceVerifier

from .helpers import MODEL, FakeVerifier


@pytest.fixture(scope="package")  # one model load for the whole folder, as when it was one file
def verifier(smoke_model):
    return FaceVerifier(smoke_model, no_face="error")


@pytest.fixture
def gallery_dir(tmp_path):
    return tmp_path / "gallery"


@pytest.fixture
def controller(verifier, gallery_dir):
    return DashboardController(verifier, Gallery.load(model_id(verifier.folder, verifier.card), gallery_dir))


@pytest.fixture
def board(smoke_model, gallery_dir):
    return Dashboard(smoke_model, gallery_folder=gallery_dir)


@pytest.fixture
def bush(lfw_root):
    return [lfw_root / "George_W_Bush" / f"George_W_Bush_{n:04d}.jpg" for n in (1, 2, 3)]


@pytest.fixture
def chosen(tmp_path):
    """A controller over a gallery of four people at right angles, Ada with two templates."""
    controller = DashboardController(FakeVerifier(tmp_path / "model"), Gallery.load(MODEL, tmp_path / "g"))
    gallery = controller.gallery
    gallery.enroll("Ada", unit(1, 0, 0, 0, 0), THUMBNAIL)
    gallery.enroll("Ada", unit(1, 0, 0, 0, 0.2), THUMBNAIL)
    for name, vector in [("Grace", (0, 1, 0, 0, 0)), ("Linus", (0, 0, 1, 0, 0)), ("Ken", (0, 0, 0, 1, 0))]:
        gallery.enroll(name, unit(*vector), THUMBNAIL)
    return controller
