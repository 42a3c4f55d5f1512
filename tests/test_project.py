"""House rules that are cheap to check: one dependency list, notebooks without outputs."""

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    # dev names the other extras as facelib[...]: their packages are counted through them
    declared = {_name(r) for r in project["dependencies"] + extras} - {"facelib"}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_list = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    in_env = {_name(r) for r in pip_list if not r.startswith("-e")}
    assert in_env == declared


def test_committed_notebooks_carry_no_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        dirty = [
            i
            for i, c in enumerate(cells)
            if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])
        ]
        assert not dirty, f"{path.name}: cells {dirty} hold outputs; clear them before committing"


def test_the_default_home_is_the_project_folder():
    """data/ and models/ land beside pyproject.toml (and .gitignore), not in the package."""
    from facelib.core import config

    assert config.PROJECT_ROOT == ROOT and (config.PROJECT_ROOT / "pyproject.toml").is_file()
