"""The wheel ships every Python folder, the rules as data, and both console scripts."""

from __future__ import annotations

import ast
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



def qt_modules_imported(folder: str) -> set[str]:
    """The PySide6 modules imported anywhere under a source folder (import and from-import forms)."""
    found: set[str] = set()
    for module in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "PySide6":
                names = [f"PySide6.{alias.name}" for alias in node.names]
            found.update(name for name in names if name.split(".")[0] in ("PySide6", "shiboken6"))
    return found


def test_the_app_uses_only_the_qt_modules_in_pyside6_essentials() -> None:
    """The `app` extra installs PySide6-Essentials: QtCore, QtGui and QtWidgets are in it; Addons are not."""
    assert qt_modules_imported("gui") == {"PySide6.QtCore", "PySide6.QtGui", "PySide6.QtWidgets"}


def test_the_agent_and_rules_never_import_qt() -> None:
    """The weightwarden-agent package (and a plain `pip install weightwarden`) has no Qt at all; only
    `audit --pdf` renders with Qt where the app is installed, and says so where it is not."""
    assert qt_modules_imported("agent/cli") == set()
    for folder in sorted(p.name for p in (REPO / "agent").iterdir() if p.is_dir() and p.name != "audit"):
        assert qt_modules_imported(f"agent/{folder}") == set(), folder
    render = (REPO / "agent/audit/render.py").read_text()
    assert "except ImportError:\n        raise PdfUnavailableError" in render
    assert qt_modules_imported("rules") == set()


def test_qt_is_only_in_the_app_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith(("pyside", "shiboken"))]
    (qt,) = project["optional-dependencies"]["app"]
    assert qt.startswith("PySide6-Essentials") and "!=6.12.0" in qt


def test_the_coverage_floor_only_rises() -> None:
    """CI (installer/dev.sh test) fails below .ci/coverage-floor; raising it is
    fine, lowering it is not: every committed value, and the working copy's, is at least the one before."""
    floor = REPO / ".ci" / "coverage-floor"
    current = float(floor.read_text())
    assert 0 < current <= 100
    log = subprocess.run(["git", "-C", str(REPO), "log", "--format=%H", "--", ".ci/coverage-floor"],
                         capture_output=True, text=True)
    if log.returncode != 0:
        pytest.skip(f"not a git checkout: {log.stderr.strip()}")
    history = [float(subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:.ci/coverage-floor"],
                                    capture_output=True, text=True, check=True).stdout)
               for commit in reversed(log.stdout.split())]
    values = [*history, current]
    assert values == sorted(values), f"the coverage floor went down: {values}"
    dev = (REPO / "installer" / "dev.sh").read_text()
    assert '--fail-under="$(cat .ci/coverage-floor)"' in dev
    assert "coverage run" in dev.split("    test)")[1].split(";;")[0]  # the test command itself measures it
