"""Benchmark: click-to-verdict latency of the dashboard in a real browser.

    python bench/dashboard_latency.py [--model DIR] [--captures 20]

Serves notebook 04 with Voilà, opens it in Debian's Chromium (Playwright) with a fake
camera filming an LFW face, captures a reference, then clicks "Capture probe"
`--captures` times and times each click until the new verdict is in the page. Beside
it, in the same run, the kernel's own time for the same work (read it from the
verdict: decode + detect + crop + embed). Writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--captures", type=int, default=20)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from facelib.data import datasets
    from facelib.recognition.model import newest_model_folder

    model = (args.model or newest_model_folder()).resolve()  # the kernel runs in notebooks/
    face = datasets.fetch_lfw() / "George_W_Bush" / "George_W_Bush_0001.jpg"
    video = Path(tempfile.mkdtemp()) / "face.y4m"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-loop", "1", "-i", str(face), "-t", "2", "-r", "10",
         "-vf", "scale=640:480", "-pix_fmt", "yuv420p", str(video)],
        check=True,
    )  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "voila", str(ROOT / "notebooks" / "04_webcam_dashboard.ipynb"),
         f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1"],
        env={**os.environ, "FACELIB_MODEL": str(model)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-video-capture={video}", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )  # fmt: skip
            context = browser.new_context()
            context.grant_permissions(["camera"], origin=f"http://127.0.0.1:{port}")
            page = context.new_page()
            page.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url else r.abort())
            page.goto(f"http://127.0.0.1:{port}/", timeout=180_000)
            page.get_by_role("button", name="Capture reference").wait_for(timeout=180_000)
            page.wait_for_timeout(2000)
            page.get_by_role("button", name="Capture reference").click()
            page.wait_for_function(
                "document.querySelector('.facelib-message')?.innerText.includes('face found')"
            )
            browser_ms, kernel_ms = [], []
            for i in range(1, args.captures + 1):
                start = time.perf_counter()
                page.get_by_role("button", name="Capture probe").click()
                page.wait_for_function(
                    f"document.querySelector('.facelib-result')?.dataset.seq === '{i}'", timeout=60_000
                )
                browser_ms.append(1000 * (time.perf_counter() - start))
                kernel_ms.append(float(page.locator(".facelib-result").get_attribute("data-ms")))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    b50, k50 = np.percentile(browser_ms, 50), np.percentile(kernel_ms, 50)
    body = f"""
Command: `python bench/dashboard_latency.py{f" --model {args.model}" if args.model else ""} --captures {args.captures}`
Machine: {machine()}; headless Chromium with a fake camera (640x480), Voilà on loopback.

| | p50 | p95 |
| --- | ---: | ---: |
| click "Capture probe" → verdict in the page | {b50:.0f} ms | {np.percentile(browser_ms, 95):.0f} ms |
| the kernel's work for it (decode + detect + crop + embed + compare) | {k50:.0f} ms | {np.percentile(kernel_ms, 95):.0f} ms |
| widget round trip (difference at p50) | {b50 - k50:.0f} ms | |
"""
    print(body)
    write_section("Dashboard click-to-verdict latency", body)


if __name__ == "__main__":
    main()
