"""Shared by the benchmarks: describe the machine and update docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import date
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def machine() -> str:
    """The CPU (model, flags that set the math, cores), the oneDNN state and the load:
    every figure is named with the machine that made it."""
    from facelib.core import machine as facelib_machine

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{facelib_machine.read_cpu().describe()}, {facelib_machine.math_state().describe()}, "
        f"Python {platform.python_version()}, {date.today().isoformat()}, "
        f"load average {load:.1f} at the start (another busy process halves every figure)"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section `## name` of docs/benchmarks.md."""
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nEach section is written by the command it names.\n"
    )
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
