"""pyproject.toml's markers pick one TensorFlow for each machine people have (offline;
whether it has wheels there is `python bench/check_wheels.py`, which needs the index)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import check_wheels  # noqa: E402

PROJECT = check_wheels.read_project()
REQUIREMENTS = check_wheels.runtime_requirements(PROJECT)
PYTHONS = check_wheels.supported_pythons(PROJECT)
TARGETS = {target.name: target for target in check_wheels.TARGETS}


def test_the_targets_and_pythons_are_the_supported_ones():
    assert set(TARGETS) == {"Linux x86_64", "Linux aarch64", "macOS arm64", "Windows AMD64"}
    assert PYTHONS == ["3.11", "3.12", "3.13"]


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("target", list(TARGETS))
def test_markers_select_exactly_one_tensorflow(target, python):
    chosen = [
        r
        for r in check_wheels.applicable(REQUIREMENTS, TARGETS[target], python)
        if check_wheels.is_tensorflow(r)
    ]
    assert len(chosen) == 1, f"{target}, Python {python}: {[str(r) for r in chosen]}"
    # tensorflow-cpu has wheels for Linux x86_64 and Windows only, none for aarch64 or macOS
    expected = "tensorflow-cpu" if target == "Linux x86_64" else "tensorflow"
    assert chosen[0].name == expected


def test_the_tested_combination_keeps_tensorflow_cpu_2_21():
    chosen = [
        r
        for r in check_wheels.applicable(REQUIREMENTS, TARGETS["Linux x86_64"], "3.11")
        if check_wheels.is_tensorflow(r)
    ]
    assert [r.name for r in chosen] == ["tensorflow-cpu"]
    assert chosen[0].specifier.contains("2.21.0")


def test_other_dependencies_apply_everywhere():
    others = [r for r in REQUIREMENTS if not check_wheels.is_tensorflow(r)]
    for target in TARGETS.values():
        for python in PYTHONS:
            applying = check_wheels.applicable(others, target, python)
            assert applying == others, f"{target.name}, Python {python}"


def test_platform_tags_list_every_older_manylinux():
    tags = TARGETS["Linux aarch64"].platform_tags((2, 28))
    assert tags[0] == "manylinux_2_28_aarch64"
    assert "manylinux_2_27_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert TARGETS["Windows AMD64"].platform_tags() == ["win_amd64"]
    assert "macosx_12_0_arm64" in TARGETS["macOS arm64"].platform_tags()


def test_markers_are_judged_by_the_target_not_this_machine():
    env = check_wheels.marker_environment(TARGETS["Windows AMD64"], "3.12")
    assert env["sys_platform"] == "win32" and env["platform_machine"] == "AMD64"
    assert env["python_version"] == "3.12"
