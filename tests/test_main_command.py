"""The README's main command, `make run`, as a user runs it on a clean clone: fetch,
preprocess, train a named run, evaluate it by that name, serve the dashboard; then
once more, when every step must skip the work already done.

It runs the Makefile itself (so a broken `run` or `dashboard` rule fails it) with the
smoke preset in a fresh FACELIB_HOME, and the dashboard on a free loopback port.
Under the smoke preset `facelib evaluate` scores View 1 only and says so: View 2's
7,701 crops would add minutes.

HTTP 200 alone would not tell the dashboard from its "no model" page: Voilà writes the
notebook's outputs into the page's HTML, and notebook 04's says which model it serves
("facelib dashboard: model NAME (…)"). Before the second run a copy of the model, newer,
is put beside it, so that a dashboard falling back on the newest model is caught too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, skip_or_fail

from facelib.core import machine
from facelib.recognition.card import ModelCard

ROOT = Path(__file__).resolve().parent.parent
RUN = "main-command"
FIRST_RUN_TIMEOUT_S = 900  # measured: about 4 minutes on 2 busy cores
SECOND_RUN_TIMEOUT_S = 300
PAGE_TIMEOUT_S = 120  # Voilà answers once the notebook's kernel has started


def _need_make_and_installed_venv() -> None:
    """`make run` starts by checking the install; a stale one would reinstall from the
    registry inside this test. Under CI (which runs `make test`, installing first) that
    is a failure, elsewhere a skip with the fix."""
    message = None
    if not shutil.which("make"):
        message = "make is not installed"
    elif subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, capture_output=True).returncode:
        message = ".venv is missing or older than pyproject.toml: run `make install` first"
    if message:
        skip_or_fail(message)


def _get(url: str) -> tuple[int, str] | None:
    """The HTTP status and body of GET url, or None while nothing listens there yet.
    Voilà sends the page as the notebook runs: the body is complete once it has run."""
    try:
        with urllib.request.urlopen(url, timeout=PAGE_TIMEOUT_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError):
        return None


def served_model(page: str) -> str:
    """What the dashboard page says it serves: its plain-text output, which Voilà writes
    into the page's HTML as a JSON string ("facelib dashboard: model NAME (…)…")."""
    found = re.findall(r'"text/plain": ("facelib dashboard: (?:[^"\\]|\\.)*")', page)
    assert len(found) == 1, f"no dashboard output (or several) in the page:\n{page[-3000:]}"
    return json.loads(found[0])


def _stop(process: subprocess.Popen) -> None:
    """Stop make and everything it started: its process group (make, voila), then any
    descendant in a session of its own (Jupyter starts kernels so) still running."""
    import psutil  # an ipykernel dependency

    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        os.killpg(process.pid, signal.SIGTERM)  # Voilà shuts its kernels down on SIGTERM
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for leftover in alive:
        leftover.kill()


def make_run(home: Path, mirror: Path, port: int, timeout: float) -> tuple[str, float, str]:
    """`make run RUN=… PORT=…` until the dashboard answers HTTP 200 on the port, then
    stopped; returns its output, the seconds it took to get there and the page."""
    env = {
        **os.environ,
        "FACELIB_HOME": str(home),
        "FACELIB_PRESET": "smoke",
        "FACELIB_MIRROR": str(mirror),
    }
    for inherited in ("MAKEFLAGS", "MAKELEVEL"):  # a `make test` around this test must not steer it
        env.pop(inherited, None)
    lines: list[str] = []
    start = time.monotonic()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"RUN={RUN}", f"PORT={port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, so that all of it can be stopped
    )  # fmt: skip
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        while True:
            output = "".join(lines)
            if process.poll() is not None:
                pytest.fail(f"make run exited with status {process.returncode}:\n{output[-5000:]}")
            if time.monotonic() - start > timeout:
                pytest.fail(f"no dashboard on port {port} after {timeout:.0f} s:\n{output[-5000:]}")
            if "dashboard: open" in output:  # voila is starting: ask it for the page
                answer = _get(f"http://127.0.0.1:{port}/")
                if answer is not None:
                    status, page = answer
                    assert status == 200, f"the dashboard answered HTTP {status}:\n{output[-5000:]}"
                    return "".join(lines), time.monotonic() - start, page
            time.sleep(1)
    finally:
        _stop(process)
        reader.join(timeout=10)


def _in_order(output: str, commands: list[str]) -> bool:
    """Every command line appears in the output, in this order."""
    position = 0
    for command in commands:
        position = output.find(command, position)
        if position < 0:
            return False
    return True


@pytest.fixture
def clean_home():
    home = Path(tempfile.mkdtemp(prefix="facelib-make-run-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)  # LFW is extracted in there: ~250 MB


def test_make_run_reaches_the_dashboard_then_skips_the_finished_work(mirror, clean_home, monkeypatch):
    _need_make_and_installed_venv()
    monkeypatch.setenv("FACELIB_HOME", str(clean_home))  # for the checks in this process
    steps = [
        "facelib fetch",
        "facelib preprocess",
        f"facelib train --resume --name {RUN}",
        f"facelib evaluate --if-needed --model {RUN}",
        "voila notebooks/04_webcam_dashboard.ipynb",
    ]

    first_port = free_port()
    first, first_seconds, first_page = make_run(clean_home, mirror, first_port, FIRST_RUN_TIMEOUT_S)
    print(f"first make run: dashboard after {first_seconds:.0f} s")
    assert _in_order(first, steps), first[-5000:]
    # The plan before any work: the machine and each step's plan first, then training's own.
    cpu = machine.read_cpu()
    assert first.startswith(f"machine: {cpu.describe()}\n"), first[:2000]
    assert _in_order(first, ["plans:\n  smoke: 2 × 3 = 6 steps, fixed", "facelib fetch"]), first[:3000]
    assert _in_order(first, [f"training {RUN}:", "plan: 2 epoch(s) × 3 steps = 6 steps", "Epoch 1/2"]), first[
        -5000:
    ]
    assert "census: 5,749 people, 13,233 images" in first
    assert "processed now 120, already done 0" in first
    assert f"training {RUN}:" in first
    assert "View 2 skipped: the smoke preset evaluates View 1 only" in first
    assert "cropping " in first and "pictures of the pairs missing" in first  # 120 crops are not enough
    assert "saved in card.json" in first
    assert f"dashboard: open http://127.0.0.1:{first_port}" in first

    folder = clean_home / "models" / RUN
    card = ModelCard.load(folder)
    assert card.threshold is not None and len(card.evaluations) == 1
    assert card.evaluations[0]["view2"] is False
    assert (folder / "eval" / "metrics.json").is_file()
    served = f"facelib dashboard: model {RUN} ({folder.resolve()}), threshold {card.threshold:.3f}"
    assert served_model(first_page) == served

    # A newer model beside it: the dashboard must still serve RUN, not the newest.
    from facelib.recognition.model import newest_model_folder

    decoy = clean_home / "models" / "newer-than-main-command"
    decoy.mkdir()
    for name in ("card.json", "model.keras"):
        shutil.copyfile(folder / name, decoy / name)  # copyfile: a new modification time
    assert newest_model_folder().resolve() == decoy.resolve()

    second_port = free_port()
    second, second_seconds, second_page = make_run(clean_home, mirror, second_port, SECOND_RUN_TIMEOUT_S)
    print(f"second make run: dashboard after {second_seconds:.0f} s")
    assert _in_order(second, steps), second[-5000:]
    assert "processed now 0, already done 120" in second
    assert f"{RUN} is already trained" in second
    assert f"{RUN} is already evaluated" in second
    assert f"training {RUN}:" not in second and "cropping " not in second
    assert f"dashboard: open http://127.0.0.1:{second_port}" in second
    assert ModelCard.load(folder) == card  # nothing evaluated again
    assert served_model(second_page) == served
