"""The README's picture of the dashboard, made with a real trained model.

    python bench/dashboard_screenshot.py --model models/make-cpu [--out docs/dashboard.png]

Serves notebook 04 with Voilà and that model, opens it in Debian's Chromium (Playwright)
with a fake camera filming an LFW face, captures that face as the reference, enrolls a
few LFW people through the page's upload buttons (Serena Williams twice, Colin Powell,
Adel Al-Jubeir), uploads a probe (another picture of Serena Williams), waits for the
three nearest people and saves a full-page screenshot (1100 px wide) to --out.

The picture is an illustration, not a measurement: a handful of LFW pictures (some of
people on LFW's test side, possibly among the model's training people too; the script
says which) chosen to show the page, one probe. The model's measured figures are its
card's View 1 evaluation (`facelib evaluate`), which the script prints beside what the
page said, so the caption can quote both honestly.

Refuses a model trained for fewer than MIN_TRAINING_STEPS steps (the smoke preset
trains 6): the README must not show a model that judges at random.
`--allow-small-model` lifts that, to try the script on a smoke model.

Nothing of the model is changed: the page serves a temporary FACELIB_HOME whose
models/<name>/ holds links to the model's files and a copy of its card.json, and whose
gallery/ receives the enrolled people; it is removed at the end. LFW comes from
facelib.data.datasets.fetch_lfw() (set FACELIB_MIRROR to read it from a mirror). Needs
/usr/bin/chromium and ffmpeg (apt-get install chromium ffmpeg); never `playwright install`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "04_webcam_dashboard.ipynb"
CHROMIUM = "/usr/bin/chromium"
MIN_TRAINING_STEPS = 1000
WIDTH = 1100
CAMERA_FACE = "Serena_Williams/Serena_Williams_0004.jpg"  # what the fake camera films: the reference
ENROLL = [
    ("Serena", "Serena_Williams/Serena_Williams_0001.jpg"),
    ("Serena", "Serena_Williams/Serena_Williams_0002.jpg"),
    ("Colin", "Colin_Powell/Colin_Powell_0001.jpg"),
    ("Adel", "Adel_Al-Jubeir/Adel_Al-Jubeir_0001.jpg"),
]
PROBE = "Serena_Williams/Serena_Williams_0003.jpg"
TIMEOUT_MS = 120_000


def training_steps(card) -> int:
    """Steps the model was trained for: the card's steps_run, else its plan's total,
    else epochs × steps per epoch of its config (cards written before plans existed)."""
    if card.steps_run:
        return int(card.steps_run)
    if (card.plan or {}).get("total_steps"):
        return int(card.plan["total_steps"])
    cfg = card.config
    return int(cfg.get("steps_per_epoch", 0)) * int(cfg.get("epochs", 0))


def view1_lines(card) -> list[str]:
    """The card's View 1 figures: those of the evaluation whose threshold is in use
    (its metrics), and the latest of its evaluations when it differs."""
    lines = []

    def line(label: str, m: dict) -> str:
        return (
            f"  {label}: accuracy {100 * m['accuracy_mean']:.1f} ± {100 * m['accuracy_std']:.1f}% "
            f"(10 folds), AUC {m['auc']:.4f}, EER {100 * m['eer']:.1f}%, "
            f"TAR@FAR=1e-2 {100 * m['tar_at_far_1e2']:.1f}%, TAR@FAR=1e-3 {100 * m['tar_at_far_1e3']:.1f}%, "
            f"threshold {m['threshold']:.4f} ({m['pairs']} pairs)"
        )

    in_use = (card.metrics or {}).get("view1")
    if in_use:
        lines.append(line("View 1 (the evaluation whose threshold is in use)", in_use))
    evaluations = [e for e in card.evaluations if "view1" in (e.get("metrics") or {})]
    if evaluations and evaluations[-1]["metrics"]["view1"] != in_use:
        last = evaluations[-1]
        label = f"View 1, latest evaluation ({last.get('date')}, tta {last.get('tta')})"
        lines.append(line(label, last["metrics"]["view1"]))
    return lines


def serve_copy(model: Path, home: Path) -> Path:
    """models/<name>/ in `home`: a link to each of the model's files, card.json copied."""
    folder = home / "models" / model.name
    folder.mkdir(parents=True)
    for entry in model.iterdir():
        if entry.name == "card.json":
            shutil.copy(entry, folder / entry.name)
        else:
            (folder / entry.name).symlink_to(entry.resolve())
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"voila exited with status {server.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout:.0f} s")


def message(page) -> str:
    return page.locator(".facelib-message").inner_text(timeout=TIMEOUT_MS)


def after(page, before: str, action) -> str:
    """Do `action`, wait until the page's message line changes from `before`, return it."""
    action()
    page.wait_for_function(
        "before => (document.querySelector('.facelib-message')?.innerText ?? '') !== before",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    return message(page)


def upload(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=button).click()
    chooser.value.set_files(str(path))


def drive(page, lfw: Path, out: Path) -> dict:
    """Reference from the camera, the enrollments, the probe; the screenshot. Returns
    what the page said."""
    said: dict = {"header": page.locator("small", has_text=", detector ").inner_text(timeout=TIMEOUT_MS)}
    page.wait_for_timeout(2000)  # the camera view needs a moment to start streaming
    text = after(page, "", lambda: page.get_by_role("button", name="Capture reference").click())
    if "face found" not in text:
        raise RuntimeError(f"capturing the reference: {text}")
    said["reference"] = text
    for name, picture in ENROLL:
        page.get_by_placeholder("name to enroll").fill(name)
        text = after(page, text, lambda picture=picture: upload(page, "Upload enroll", lfw / picture))
        if f"Enrolled {name}" not in text:
            raise RuntimeError(f"enrolling {name} with {picture}: {text}")
        print(f"enrolled {name} with {picture}: {text}", flush=True)
    options = [t.replace("\xa0", " ") for t in page.locator("select option").all_inner_texts()]
    said["people"] = [t for t in options if " · " in t]  # the gallery list, not the FPIR dropdown

    seq = (
        page.locator(".facelib-result").get_attribute("data-seq")
        if page.locator(".facelib-result").count()
        else None
    )
    text = after(page, text, lambda: upload(page, "Upload probe", lfw / PROBE))
    if "face found" not in text:
        raise RuntimeError(f"the probe {PROBE}: {text}")
    said["probe"] = text
    page.wait_for_function(
        "document.querySelectorAll('.facelib-candidate').length >= Math.min(3, document.querySelectorAll('select option').length)",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function(
        "seq => { const r = document.querySelector('.facelib-result'); return r && r.dataset.seq !== seq; }",
        arg=seq,
        timeout=TIMEOUT_MS,
    )
    identity = page.locator(".facelib-identity")
    said["identity"] = identity.locator("div").first.inner_text()
    said["why"] = page.locator(".facelib-why").inner_text()
    said["nearest"] = [" ".join(row.split()) for row in page.locator(".facelib-candidate").all_inner_texts()]
    said["rule"] = page.locator(".facelib-rule").inner_text()
    said["verdict"] = page.locator(".facelib-verdict").inner_text()
    said["distance"] = " ".join(page.locator(".facelib-result div").nth(1).inner_text().split())
    evidence = page.locator(".facelib-evidence-text")  # or the note saying why there is none
    evidence = evidence if evidence.count() else page.locator(".facelib-evidence")
    said["evidence"] = " ".join(evidence.first.inner_text().split()) if evidence.count() else ""

    # Voilà scrolls inside its own container: a window as tall as the content shows it all.
    height = page.evaluate("Math.max(...Array.from(document.querySelectorAll('*'), e => e.scrollHeight))")
    page.set_viewport_size({"width": WIDTH, "height": max(900, min(int(height) + 40, 6000))})
    page.wait_for_timeout(800)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a trained model folder (models/RUN)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument(
        "--allow-small-model",
        action="store_true",
        help=f"serve a model trained for fewer than {MIN_TRAINING_STEPS} steps (to try the script)",
    )
    args = parser.parse_args()

    model = args.model.expanduser().resolve()
    if not (model / "model.keras").exists() or not (model / "card.json").is_file():
        sys.exit(f"{model} is not a model folder (it needs model.keras and card.json)")
    from facelib.recognition.card import ModelCard

    card = ModelCard.load(model)
    steps = training_steps(card)
    if steps < MIN_TRAINING_STEPS and not args.allow_small_model:
        sys.exit(
            f"refused: {model.name} was trained for {steps:,} steps (card.json), fewer than "
            f"{MIN_TRAINING_STEPS:,}: a smoke-sized model, whose names would be mostly wrong. "
            "Serve a real trained model (make run), or pass --allow-small-model to try the script."
        )
    for tool, path in [("chromium", CHROMIUM), ("ffmpeg", shutil.which("ffmpeg"))]:
        if not path or not Path(path).exists():
            sys.exit(f"{tool} is not installed (apt-get install chromium ffmpeg)")

    print(f"model: {card.name} ({model}), trained for {steps:,} steps")
    for line in view1_lines(card) or ["  no View 1 evaluation in card.json (run `facelib evaluate`)"]:
        print(line)
    if card.threshold is not None:
        print(f"  threshold in use: {card.threshold:.4f} (card.json)")
    trained_on = card.seen_identities
    shown = sorted({picture.split("/")[0] for _, picture in ENROLL} | {PROBE.split("/")[0]})
    seen = [person for person in shown if person in trained_on]
    print(f"  people shown that the model trained (or validated) on: {', '.join(seen) or 'none'}")

    from playwright.sync_api import sync_playwright

    from facelib.data import datasets

    lfw = datasets.fetch_lfw()  # in the caller's FACELIB_HOME, before the page's own
    with tempfile.TemporaryDirectory(prefix="facelib-screenshot-") as scratch:
        home = Path(scratch) / "home"
        served = serve_copy(model, home)
        video = Path(scratch) / "face.y4m"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-loop", "1", "-i", str(lfw / CAMERA_FACE), "-t", "2", "-r", "10",
             "-vf", "scale=-2:480,pad=640:480:(ow-iw)/2:0", "-pix_fmt", "yuv420p", str(video)],
            check=True, timeout=60,
        )  # fmt: skip
        port = free_port()
        env = {
            **os.environ,
            "FACELIB_HOME": str(home),
            "FACELIB_MODEL": str(served),
            "FACELIB_ROLE": "verify",
        }
        log_path = Path(scratch) / "voila.log"
        with open(log_path, "w") as log:
            # The websocket setting (as `make dashboard`): uploads travel over the kernel's websocket.
            server = subprocess.Popen(
                [sys.executable, "-m", "voila", str(NOTEBOOK), f"--port={port}", "--no-browser",
                 "--Voila.ip=127.0.0.1", "--show_tracebacks=True",
                 '--Voila.tornado_settings={"websocket_max_message_size": 104857600}'],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
            try:
                wait_for_port(port, server)
                url = f"http://127.0.0.1:{port}/"
                with sync_playwright() as p:
                    browser = p.chromium.launch(
                        executable_path=CHROMIUM,
                        headless=True,
                        args=["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                              "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              "--no-first-run", "--disable-quic"],
                    )  # fmt: skip
                    try:
                        context = browser.new_context(viewport={"width": WIDTH, "height": 1500})
                        context.grant_permissions(["camera"], origin=url.rstrip("/"))

                        def loopback_only(route):  # Voilà asks a CDN for fonts: nothing leaves
                            host = route.request.url.split("/")[2].split(":")[0]
                            route.continue_() if host in ("127.0.0.1", "localhost") else route.abort()

                        context.route("**/*", loopback_only)
                        page = context.new_page()
                        page.goto(url, timeout=180_000)
                        page.get_by_role("button", name="Capture reference").wait_for(timeout=180_000)
                        said = drive(page, lfw, args.out)
                    finally:
                        browser.close()
            except Exception:
                log.flush()
                print("voila's log (last lines):", *log_path.read_text().splitlines()[-30:], sep="\n  ")
                raise
            finally:
                server.terminate()
                server.wait(timeout=30)

    print(f"\nwhat the page said ({args.out}):")
    print(f"  header: {said['header']}")
    print(f"  reference (the fake camera filming {CAMERA_FACE}): {said['reference']}")
    print(f"  gallery: {'; '.join(said['people'])}")
    print(f"  probe: {said['probe']}")
    print(f"  identity: {said['identity']}")
    print(f"  why: {said['why']}")
    print("  nearest people:")
    for row in said["nearest"]:
        print(f"    {row}")
    print(f"  rule: {said['rule']}")
    print(f"  verdict against the reference: {said['verdict']}, {said['distance']}")
    if said["evidence"]:
        print(f"  among the model's LFW View 1 pairs: {said['evidence']}")


if __name__ == "__main__":
    main()
