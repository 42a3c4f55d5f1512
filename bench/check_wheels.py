"""Check that facelib's dependencies resolve to wheels on the machines people have.

    python bench/check_wheels.py [--python 3.14 ...] [--glibc 2.28] [--tensorflow-only] [--jobs N]

For each target (Linux x86_64 and aarch64, macOS arm64, Windows x86-64) and each Python
that pyproject.toml's requires-python allows, it picks the TensorFlow requirement whose
environment marker applies there, and asks pip which wheel it would take
(`pip install --dry-run --report`, with --platform and --python-version; nothing is
installed or downloaded but the indexes' pages). The other runtime dependencies are
resolved the same way, in one call per target. Dependencies are not followed (--no-deps):
pip would judge their markers by this machine, not the target.

Prints a table and exits with 1 if anything does not resolve. Needs the package index
(pip's own settings), the standard library, pip and `packaging` (pip's own copy if the
venv has none). Only resolution is checked here: the tested combination is Python 3.11
with tensorflow-cpu on Linux x86_64 (pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
except ImportError:  # a venv with pip only: pip carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
TENSORFLOW_NAMES = {"tensorflow", "tensorflow-cpu"}
# Pythons looked at; requires-python keeps those it allows.
CANDIDATE_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15")
# A Linux target's glibc: Debian 10, RHEL 8 and Ubuntu 20.04 have 2.28 or above.
DEFAULT_GLIBC = (2, 28)
MACOS = (14, 0)  # the newest macOS a wheel may ask for; arm64 starts at 11


@dataclass(frozen=True)
class Target:
    name: str
    sys_platform: str  # the values PEP 508 markers see on such a machine
    platform_system: str
    platform_machine: str
    os_name: str

    def platform_tags(self, glibc: tuple[int, int] = DEFAULT_GLIBC) -> list[str]:
        """pip's --platform values for this target, most specific first: pip takes a
        given tag as it is (manylinux_2_28 does not imply manylinux_2_17), so every
        older compatible tag is listed too."""
        if self.sys_platform == "linux":
            arch = self.platform_machine
            tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc[1], 16, -1)]
            return tags + [f"manylinux2014_{arch}"]
        if self.sys_platform == "darwin":
            return [
                f"macosx_{major}_0_{arch}"
                for major in range(MACOS[0], 10, -1)
                for arch in (self.platform_machine, "universal2")
            ]
        if self.sys_platform == "win32":
            return ["win_amd64"]
        raise ValueError(f"no platform tags for {self.name}")


TARGETS = (
    Target("Linux x86_64", "linux", "Linux", "x86_64", "posix"),
    Target("Linux aarch64", "linux", "Linux", "aarch64", "posix"),
    Target("macOS arm64", "darwin", "Darwin", "arm64", "posix"),
    Target("Windows AMD64", "win32", "Windows", "AMD64", "nt"),
)


def read_project(pyproject: Path = PYPROJECT) -> dict:
    return tomllib.loads(pyproject.read_text())["project"]


def runtime_requirements(project: dict) -> list[Requirement]:
    return [Requirement(text) for text in project["dependencies"]]


def is_tensorflow(requirement: Requirement) -> bool:
    return canonicalize_name(requirement.name) in TENSORFLOW_NAMES


def supported_pythons(project: dict, candidates: Iterable[str] = CANDIDATE_PYTHONS) -> list[str]:
    """The candidate X.Y versions whose X.Y.0 requires-python allows."""
    allowed = SpecifierSet(project.get("requires-python", ""))
    return [version for version in candidates if allowed.contains(f"{version}.0", prereleases=True)]


def marker_environment(target: Target, python: str) -> dict[str, str]:
    """What PEP 508 markers see on `target` running CPython `python` (X.Y)."""
    return {
        "sys_platform": target.sys_platform,
        "platform_system": target.platform_system,
        "platform_machine": target.platform_machine,
        "os_name": target.os_name,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": f"{python}.0",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def applicable(requirements: Iterable[Requirement], target: Target, python: str) -> list[Requirement]:
    """The requirements whose marker holds on `target` with `python` (no marker: always)."""
    environment = marker_environment(target, python)
    return [r for r in requirements if r.marker is None or r.marker.evaluate(environment)]


def without_marker(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


@dataclass
class Resolution:
    wheels: dict[str, str]  # canonical name → wheel file name
    versions: dict[str, str]  # canonical name → version
    error: str | None = None


def pip_resolve(
    requirements: list[str], target: Target, python: str, glibc: tuple[int, int] = DEFAULT_GLIBC
) -> Resolution:
    """Ask pip which wheels it would take for `requirements` on `target` (network)."""
    with tempfile.TemporaryDirectory(prefix="check-wheels-") as scratch:
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps"]
        command += ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
        for tag in target.platform_tags(glibc):
            command += ["--platform", tag]
        command += ["--target", scratch, "--report", "-", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run(command + requirements, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [
            line.removeprefix("ERROR: ") for line in done.stderr.splitlines() if line.startswith("ERROR")
        ]
        return Resolution(
            {}, {}, short_error(errors[0]) if errors else done.stderr.strip()[-300:] or "pip failed"
        )
    wheels, versions = {}, {}
    for item in json.loads(done.stdout)["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        wheels[name] = item["download_info"]["url"].rsplit("/", 1)[-1].split("#")[0]
        versions[name] = item["metadata"]["version"]
    return Resolution(wheels, versions)


def short_error(message: str, keep: int = 3) -> str:
    """pip's first error, its "(from versions: …)" cut to the newest few."""
    head, sep, versions = message.partition("(from versions: ")
    listed = versions.rstrip(")").split(", ")
    if not sep or len(listed) <= keep:
        return message
    return f"{head}(from versions: …, {', '.join(listed[-keep:])})"


@dataclass
class Row:
    target: str
    python: str
    requirement: str
    result: str
    ok: bool


def check(
    project: dict,
    pythons: list[str],
    glibc: tuple[int, int],
    others: bool,
    jobs: int,
) -> list[Row]:
    requirements = runtime_requirements(project)
    cases = [(target, python) for target in TARGETS for python in pythons]

    def one(case: tuple[Target, str]) -> list[Row]:
        target, python = case
        rows = []
        tensorflow = [r for r in applicable(requirements, target, python) if is_tensorflow(r)]
        if len(tensorflow) != 1:
            names = ", ".join(str(r) for r in tensorflow) or "none"
            return [Row(target.name, python, "tensorflow", f"markers select {names}", False)]
        wanted = without_marker(tensorflow[0])
        found = pip_resolve([wanted], target, python, glibc)
        name = canonicalize_name(tensorflow[0].name)
        if found.error:
            rows.append(Row(target.name, python, wanted, found.error, False))
        else:
            rows.append(Row(target.name, python, wanted, found.wheels[name], True))
        if others:
            rest = [r for r in applicable(requirements, target, python) if not is_tensorflow(r)]
            found = pip_resolve([without_marker(r) for r in rest], target, python, glibc)
            label = f"the other {len(rest)} dependencies"
            if found.error:
                rows.append(Row(target.name, python, label, found.error, False))
            else:
                compiled = sorted(
                    f"{n} {found.versions[n]}"
                    for n, wheel in found.wheels.items()
                    if "-none-any" not in wheel
                )
                rows.append(Row(target.name, python, label, "compiled: " + ", ".join(compiled), True))
        return rows

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return [row for rows in pool.map(one, cases) for row in rows]


def table(rows: list[Row]) -> str:
    header = ("target", "python", "requirement", "resolves to")
    cells = [header] + [
        (r.target, r.python, r.requirement, ("" if r.ok else "FAIL: ") + r.result) for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[3]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python",
        action="append",
        help="X.Y to check (repeatable; default: each that requires-python allows)",
    )
    parser.add_argument("--glibc", default="{}.{}".format(*DEFAULT_GLIBC), help="Linux targets' glibc")
    parser.add_argument("--tensorflow-only", action="store_true", help="skip the other runtime dependencies")
    parser.add_argument("--jobs", type=int, default=2, help="pip calls at once")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    args = parser.parse_args(argv)

    project = read_project(args.pyproject)
    pythons = args.python or supported_pythons(project)
    major, minor = (int(part) for part in args.glibc.split("."))
    rows = check(project, pythons, (major, minor), not args.tensorflow_only, args.jobs)
    print(table(rows))
    failed = [r for r in rows if not r.ok]
    print(
        f"\n{len(rows) - len(failed)} of {len(rows)} resolve (glibc {args.glibc} on Linux, "
        f"requires-python {project.get('requires-python', 'any')})"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
