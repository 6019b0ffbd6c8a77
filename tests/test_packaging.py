"""The wheel ships every Python folder, the rules as data, and both console scripts."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = {"agent": "weightwarden.agent", "gui": "weightwarden.gui", "rules": "weightwarden.rules"}


def python_folders() -> set[str]:
    """Every folder under agent/, gui/, rules/ holding a .py file, as its import name."""
    names = set()
    for folder, package in SOURCE_ROOTS.items():
        for module in (REPO / folder).rglob("*.py"):
            relative = module.parent.relative_to(REPO / folder)
            names.add(".".join([package, *relative.parts]))
    return names


def test_every_python_folder_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert python_folders() - listed == set()
    assert listed - python_folders() == set(), "pyproject lists packages that do not exist"


def test_every_python_folder_has_an_init() -> None:
    missing = [name for name in python_folders()
               if not (REPO / name.split(".", 1)[1].replace(".", "/") / "__init__.py").exists()]
    assert missing == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, capture_output=True)
    (path,) = out.glob("weightwarden-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_contains_every_python_folder_and_the_rules(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    for package in python_folders():
        assert package.replace(".", "/") + "/__init__.py" in names
    yar = [n for n in names if n.startswith("weightwarden/rules/formats/") and n.endswith(".yar")]
    assert len(yar) == len(list((REPO / "rules" / "formats").glob("*.yar"))) > 0
    assert not any(n.startswith(("agent/", "gui/", "rules/", "tests/")) for n in names)


def test_wheel_declares_both_entry_points(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "weightwarden = weightwarden.agent.cli.main:main" in text
    assert "weightwarden-gui = weightwarden.gui.main:main" in text

