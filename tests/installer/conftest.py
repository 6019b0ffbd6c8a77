"""Fixtures for the installer tests: wheels built from this checkout, and throwaway system roots.

Nothing here touches the host outside temporary directories: installs go to a DESTDIR or a dpkg --root
with --force-script-chrootless (the maintainer scripts honour $DPKG_ROOT), and no service is started.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from weightwarden.agent import __version__

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "installer"
SYSTEM_PYTHON = "/usr/bin/python3"


def require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installer/dev.sh installs them on Debian)")


def require_system_python() -> None:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"packages are built on the distribution's {SYSTEM_PYTHON}, absent here")


def newer_version(version: str = __version__) -> str:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    parts += [0] * (3 - len(parts))
    return f"{parts[0]}.{parts[1]}.{parts[2] + 1}"


def build_wheel(source: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True)
    (wheel,) = out.glob("weightwarden-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weightwarden wheel of this checkout, alone (installs use --no-deps with it)."""
    out = tmp_path_factory.mktemp("wheelhouse")
    build_wheel(REPO, out)
    return out


@pytest.fixture(scope="session")
def newer_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same code released as the next patch version: a real "newer package" to upgrade to."""
    source = tmp_path_factory.mktemp("newer-source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("agent", "gui", "rules"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    newer = newer_version()
    for path, pattern in ((source / "pyproject.toml", r'^version = "[^"]+"'),
                          (source / "agent" / "__init__.py", r'^__version__ = "[^"]+"')):
        text, count = re.subn(pattern, pattern.split(" = ")[0].lstrip("^") + f' = "{newer}"', path.read_text(),
                              count=1, flags=re.MULTILINE)
        assert count == 1, path
        path.write_text(text)
    out = tmp_path_factory.mktemp("newer-wheelhouse")
    wheel = build_wheel(source, out)
    assert wheel.name.startswith(f"weightwarden-{newer}-")
    return out


def make_root(path: Path) -> Path:
    """A minimal system root: account files for groupadd --prefix, and an empty dpkg database."""
    (path / "etc").mkdir(parents=True)
    (path / "etc" / "group").write_text("root:x:0:\n")
    (path / "etc" / "gshadow").write_text("root:*::\n")
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    for sub in ("info", "updates"):
        (path / "var" / "lib" / "dpkg" / sub).mkdir(parents=True)
    (path / "var" / "lib" / "dpkg" / "status").touch()
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("installing into a root sets root:weightwarden-admin ownership, which needs root (CI is)")


@pytest.fixture
def system_root(tmp_path: Path) -> Path:
    require_root()
    return make_root(tmp_path / "root")


def group_line(root: Path, name: str = "weightwarden-admin") -> str | None:
    for line in (root / "etc" / "group").read_text().splitlines():
        if line.split(":")[0] == name:
            return line
    return None


def tree(root: Path, skip: Callable[[Path], bool] = lambda p: False) -> dict[str, tuple[int, str]]:
    """Every path under root with its mode and, for files, content; symlinks by target."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        if skip(path):
            continue
        relative = "/" + str(path.relative_to(root))
        if path.is_symlink():
            found[relative] = (0, "-> " + str(path.readlink()))
        elif path.is_file():
            found[relative] = (path.stat().st_mode & 0o7777, path.read_bytes().hex()[:64])
        else:
            found[relative] = (path.stat().st_mode & 0o7777, "dir")
    return found
