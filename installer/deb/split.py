"""Split one staged install (installer/linux/install.sh --files-only) into the agent's and the app's roots.

    python3 split.py STAGE AGENT_ROOT APP_ROOT

The app's share of the venv is what the `app` extra adds (PySide6-Essentials, shiboken6, and whatever
they require that the agent does not), read from the installed distributions' METADATA and RECORD, plus
the weightwarden.gui code, the weightwarden-gui script and the desktop entries. Everything else is the
agent's. Both packages install into the same /opt/weightwarden/venv, each owning its own files.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

VENV = Path("opt/weightwarden/venv")
# Outside the venv: the app's entries (installer/linux/install.sh puts them there).
APP_FILES = ("usr/bin/weightwarden-gui", "usr/share/applications/weightwarden.desktop",
             "etc/xdg/autostart/weightwarden-gui.desktop", "opt/weightwarden/venv/bin/weightwarden-gui")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_metadata(dist_info: Path) -> tuple[str, list[str]]:
    name, requires = "", []
    for line in (dist_info / "METADATA").read_text(encoding="utf-8").splitlines():
        if not line:
            break  # the headers end at the first blank line
        key, _, value = line.partition(": ")
        if key == "Name":
            name = canonical(value)
        elif key == "Requires-Dist":
            requires.append(value)
    return name, requires


def requirement(spec: str, extra: str | None) -> str | None:
    """The distribution a Requires-Dist line names, if it applies without extras (or with `extra`)."""
    head, _, marker = spec.partition(";")
    wants = re.findall(r"""extra\s*==\s*["']([^"']+)["']""", marker)
    if wants and (extra is None or canonical(extra) not in {canonical(w) for w in wants}):
        return None
    if not wants and extra is not None:
        return None
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", head)
    return canonical(found.group(1)) if found else None


def closure(start: set[str], dists: dict[str, tuple[Path, list[str]]]) -> set[str]:
    seen: set[str] = set()
    todo = [name for name in start if name in dists]  # not installed (another platform): nothing to own
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in dists[name][1]:
            needed = requirement(spec, None)
            if needed and needed in dists and needed not in seen:
                todo.append(needed)
    return seen


def app_paths(stage: Path) -> list[Path]:
    (site,) = (stage / VENV / "lib").glob("python3*/site-packages")
    dists = {}
    for dist_info in site.glob("*.dist-info"):
        name, requires = read_metadata(dist_info)
        dists[name] = (dist_info, requires)
    own = dists["weightwarden"][1]
    base = closure({n for s in own if (n := requirement(s, None))}, dists) | {"weightwarden"}
    app = closure({n for s in own if (n := requirement(s, "app"))}, dists) - base
    paths: list[Path] = []
    for name in sorted(app):
        dist_info = dists[name][0]
        for line in (dist_info / "RECORD").read_text(encoding="utf-8").splitlines():
            relative = line.rsplit(",", 2)[0]
            # console scripts are recorded as ../../../bin/NAME: inside the venv, so the app's too
            if (site / relative).resolve().is_relative_to((stage / VENV).resolve()) and (site / relative).exists():
                paths.append(site / relative)
        paths.append(dist_info)
    paths.append(site / "weightwarden" / "gui")
    paths += [stage / f for f in APP_FILES if (stage / f).exists() or (stage / f).is_symlink()]
    return paths


def move(path: Path, stage: Path, target_root: Path) -> None:
    target = target_root / path.relative_to(stage)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))


def main() -> int:
    stage, agent, app = (Path(arg) for arg in sys.argv[1:4])
    emptied = set()
    for path in app_paths(stage):
        if path.exists() or path.is_symlink():
            move(path, stage, app)
            emptied.update(path.parents)
    # Folders the app's files left empty are not the agent's to ship.
    for folder in sorted(emptied, key=lambda p: -len(p.parts)):
        if folder.is_relative_to(stage) and folder != stage and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    shutil.move(str(stage), str(agent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
