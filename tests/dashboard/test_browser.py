"""End to end in a real browser: Voilà serves notebook 04, Debian's Chromium (driven by
Playwright) shows it with a fake camera that films an LFW face.

Needs /usr/bin/chromium and ffmpeg (`.ci/run` installs both); under CI their absence
fails the test, elsewhere it skips. Screenshots go to test-artifacts/ only, among them
the whole page with a probe identified among enrolled people (dashboard-full.png). The
README's picture, docs/dashboard.png, is not made here: it shows a real trained model
(`python bench/dashboard_screenshot.py --model models/RUN`), not this test's smoke model.

The page serves a copy of the smoke model holding View 1 distances of a sample of LFW
View 1 test pairs (as `facelib evaluate` leaves them in eval/), so the verdict is shown
among LFW pairs; a full evaluation would take minutes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SAMPLE_PAIRS = 40  # View 1 test pairs of each kind measured for the served model
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = ROOT / "notebooks" / "04_webcam_dashboard.ipynb"


def _need(tool: str, path: str | None) -> None:
    if not path or not Path(path).exists():
        skip_or_fail(f"{tool} is not installed (apt-get install chromium ffmpeg; .ci/run does it)")


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Poll the TCP port (a GET on / would start a kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with status {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="module")
def fake_camera(lfw_root, tmp_path_factory) -> Path:
    _need("ffmpeg", shutil.which("ffmpeg"))
    video = tmp_path_factory.mktemp("camera") / "face.y4m"
    face = lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-loop", "1", "-i", str(face), "-t", "2", "-r", "10",
         "-vf", "scale=640:480", "-pix_fmt", "yuv420p", str(video)],
        check=True, timeout=60,
    )  # fmt: skip
    return video


@pytest.fixture(scope="module")
def served_model(smoke_model, lfw_root, tmp_path_factory) -> Path:
    """A copy of the smoke model (same name, model.keras linked) with eval/ holding the
    distances of SAMPLE_PAIRS same and SAMPLE_PAIRS different View 1 test pairs."""
    import numpy as np

    from facelib.data import datasets
    from facelib.evaluation.evaluate import save_view1_distances
    from facelib.recognition.verification import FaceVerifier

    folder = tmp_path_factory.mktemp("served") / smoke_model.name
    folder.mkdir()
    (folder / "model.keras").symlink_to(smoke_model / "model.keras")
    shutil.copy(smoke_model / "card.json", folder / "card.json")
    pairs = datasets.view1_pairs("test")  # 500 same pairs, then 500 different ones
    pairs = pairs[:SAMPLE_PAIRS] + pairs[500 : 500 + SAMPLE_PAIRS]
    verifier = FaceVerifier(folder, no_face="whole")
    left = verifier.embed([p.left.path(lfw_root) for p in pairs])
    right = verifier.embed([p.right.path(lfw_root) for p in pairs])
    save_view1_distances(
        folder / "eval", np.linalg.norm(left - right, axis=1), np.array([p.same for p in pairs])
    )
    return folder


@pytest.fixture(scope="module")
def voila_url(served_model):
    port = free_port()
    env = {**os.environ, "FACELIB_MODEL": str(served_model)}
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "voila.log", "w")  # noqa: SIM115  (closed in finally)
    process = subprocess.Popen(
        [sys.executable, "-m", "voila", str(NOTEBOOK), f"--port={port}", "--no-browser",
         "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def page(voila_url, fake_camera):
    _need("chromium", CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-gpu",
            ],
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1100, "height": 1500})
        context.grant_permissions(["camera"], origin=voila_url.rstrip("/"))

        def loopback_only(route):  # Voilà asks a CDN for fonts: nothing leaves the machine
            host = route.request.url.split("/")[2].split(":")[0]
            route.continue_() if host in ("127.0.0.1", "localhost") else route.abort()

        context.route("**/*", loopback_only)
        page = context.new_page()
        page.goto(voila_url, timeout=180_000)
        page.get_by_role("button", name="Capture reference").wait_for(timeout=180_000)
        yield page
        browser.close()


def _upload(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button).click()
    chooser.value.set_files(str(path))


def _message(page) -> str:
    return page.locator(".facelib-message").inner_text(timeout=60_000)


def _wait_for_message(page, text: str) -> None:
    page.wait_for_function(
        f"document.querySelector('.facelib-message')?.innerText.includes({text!r})", timeout=60_000
    )


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_the_page_names_the_model_it_serves(page, smoke_model):
    header = page.locator("small", has_text=", detector ").inner_text(timeout=60_000)
    assert header.startswith(f"model {smoke_model.name}, detector"), header


def test_capture_reference_and_probe_shows_distance_and_verdict(page):
    page.wait_for_timeout(2000)  # the camera view needs a moment to start streaming
    page.get_by_role("button", name="Capture reference").click()
    page.wait_for_function(
        "document.querySelector('.facelib-message')?.innerText.includes('face found')", timeout=60_000
    )
    page.get_by_role("button", name="Capture probe").click()
    page.locator(".facelib-verdict").wait_for(timeout=60_000)
    assert page.locator(".facelib-distance").inner_text()
    assert page.locator(".facelib-verdict").inner_text() in ("same person", "different people")
    _shot(page, "dashboard-camera.png")


def test_uploading_another_person_as_probe_shows_a_distance(page, lfw_root):
    before = page.locator(".facelib-distance").inner_text()
    other = lfw_root / "Serena_Williams" / "Serena_Williams_0001.jpg"
    _upload(page, "Upload probe", other)
    page.wait_for_function(
        f"document.querySelector('.facelib-distance')?.innerText !== '{before}'", timeout=60_000
    )
    assert "Serena_Williams_0001.jpg" in _message(page)
    _shot(page, "dashboard-upload.png")


def test_enrolled_name_is_identified(page):
    page.get_by_placeholder("name to enroll").fill("George")
    page.get_by_role("button", name="Capture & enroll").click()
    page.wait_for_function(
        "document.querySelector('.facelib-message')?.innerText.includes('Enrolled')", timeout=60_000
    )
    page.get_by_role("button", name="Capture probe").click()
    page.wait_for_function(
        "document.querySelector('.facelib-identity')?.innerText.includes('George')", timeout=60_000
    )
    _shot(page, "dashboard-gallery.png")


def test_two_captures_of_one_person_then_a_probe_shows_the_three_nearest(page, lfw_root):
    page.get_by_placeholder("name to enroll").fill("Serena")
    serena = lfw_root / "Serena_Williams"
    _upload(page, "Upload enroll", serena / "Serena_Williams_0001.jpg")
    _wait_for_message(page, "Enrolled Serena (first template)")
    _upload(page, "Upload enroll", serena / "Serena_Williams_0002.jpg")
    _wait_for_message(page, "Enrolled Serena (2nd template)")
    for name, picture in [
        ("Colin", "Colin_Powell/Colin_Powell_0001.jpg"),
        ("Adel", "Adel_Al-Jubeir/Adel_Al-Jubeir_0001.jpg"),
    ]:
        page.get_by_placeholder("name to enroll").fill(name)
        _upload(page, "Upload enroll", lfw_root / picture)
        _wait_for_message(page, f"Enrolled {name} (first template)")
    people = [text.replace("\xa0", " ") for text in page.locator("select option").all_inner_texts()]
    assert people.count("Serena · 2 templates") == 1, people  # one line per person
    assert "Colin · 1 template" in people and "Adel · 1 template" in people

    _upload(page, "Upload probe", serena / "Serena_Williams_0003.jpg")
    _wait_for_message(page, "Serena_Williams_0003.jpg: face found")
    page.wait_for_function("document.querySelectorAll('.facelib-candidate').length === 3", timeout=60_000)
    candidates = page.locator(".facelib-candidate").all_inner_texts()
    assert all(any(name in row for name in ("Serena", "Colin", "Adel", "George")) for row in candidates)
    why = page.locator(".facelib-why").inner_text()
    assert why.startswith(("Serena:", "Colin:", "Adel:", "George:", "unknown: too far", "unknown: too close"))
    assert "of strangers named (FPIR target), calibration lfw" in page.locator(".facelib-rule").inner_text()
    # The verdict among the served model's LFW pairs: the histogram and the two shares.
    assert page.locator(".facelib-evidence svg").is_visible()
    evidence = page.locator(".facelib-evidence-text").inner_text()
    assert f"of {SAMPLE_PAIRS} same-person pairs were at least" in evidence, evidence
    _shot(page, "dashboard-identify.png")
    # Voilà scrolls inside its own container: a taller window shows the whole page.
    page.set_viewport_size({"width": 1100, "height": 1800})
    page.wait_for_timeout(500)
    _shot(page, "dashboard-full.png")
    page.set_viewport_size({"width": 1100, "height": 1500})


def test_a_blurred_face_at_enrolment_shows_the_quality_warning_and_a_better_capture(page, lfw_root, tmp_path):
    import cv2

    blurred = tmp_path / "blurred.jpg"
    picture = cv2.imread(str(lfw_root / "Colin_Powell" / "Colin_Powell_0002.jpg"))
    cv2.imwrite(str(blurred), cv2.GaussianBlur(picture, (0, 0), 4.0))
    page.get_by_placeholder("name to enroll").fill("Blurry")
    _upload(page, "Upload enroll", blurred)
    _wait_for_message(page, "Not enrolled: the face is blurred")
    quality = page.locator(".facelib-quality")
    assert quality.get_attribute("data-status") == "fail"
    text = quality.inner_text()
    assert "the face is blurred" in text and "a better capture: hold still, and focus" in text
    people = [t.replace("\xa0", " ") for t in page.locator("select option").all_inner_texts()]
    assert not any(p.startswith("Blurry") for p in people)
    _shot(page, "dashboard-quality.png")


def test_uploading_a_non_image_shows_a_message(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    _upload(page, "Upload probe", notes)
    page.wait_for_function(
        "document.querySelector('.facelib-message')?.innerText.includes('not an image')", timeout=60_000
    )
    assert "Traceback" not in page.content()


def test_an_upload_over_the_limit_is_refused_and_the_button_keeps_working(page, lfw_root, tmp_path):
    # An upload reaches the kernel as one websocket message, and Voilà (tornado) closes
    # the socket on one over 10 MiB: the refusal is reachable only while the limit is
    # below that. Were it not, this file would be dropped with the connection, no
    # message would come, and the button would stay dead.
    from facelib.app.dashboard_controller import MAX_UPLOAD_BYTES

    face = (lfw_root / "George_W_Bush" / "George_W_Bush_0001.jpg").read_bytes()
    big = tmp_path / "big.jpg"
    big.write_bytes(face + bytes(MAX_UPLOAD_BYTES + 500_000 - len(face)))  # a JPEG, padded
    _upload(page, "Upload probe", big)
    page.wait_for_function(
        "document.querySelector('.facelib-message')?.innerText.includes('big.jpg is too large')",
        timeout=60_000,
    )
    assert f"the limit is {MAX_UPLOAD_BYTES / 1e6:g} MB" in _message(page)
    assert page.get_by_text(f"Pictures up to {MAX_UPLOAD_BYTES / 1e6:g} MB").is_visible()
    _upload(page, "Upload probe", lfw_root / "George_W_Bush" / "George_W_Bush_0002.jpg")
    page.wait_for_function(
        "document.querySelector('.facelib-message')?.innerText.includes('George_W_Bush_0002.jpg: face found')",
        timeout=60_000,
    )
