"""The newest Weightwarden version that has used a data directory, so an older one refuses to run on it.

The database refuses a newer schema on its own (`store.migrations.SchemaTooNewError`), but only once it is
opened, and only for the database. The stamp, a one-line text file `weightwarden.version` in the data
directory, covers everything there (database, keys, outbox cursors) and is cheap to read from a shell:
the Debian package's preinst and `installer/linux/install.sh` check it before replacing any file.

    python -m weightwarden.agent.version_stamp check DATA_DIR [VERSION]   # exit 1: a downgrade
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from weightwarden.agent import __version__
from weightwarden.agent.store import StoreError

STAMP_NAME = "weightwarden.version"
ALLOW_DOWNGRADE_ENV = "WEIGHTWARDEN_ALLOW_DOWNGRADE"

_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(?:[-_.~]?(a|b|rc|alpha|beta|c|pre|preview)[-_.]?(\d*))?"
                      r"(?:[-_.+~].*)?\s*$", re.IGNORECASE)
_PRE_ORDER = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}


class DowngradeError(StoreError):
    """This version is older than the one that last used the data directory."""


def version_key(version: str) -> tuple[tuple[int, ...], tuple[int, int]]:
    """An orderable key for `1.2.3`, `1.2.3rc1` (before 1.2.3), `1.2.3-1` (Debian revision ignored).

    Raises ValueError for anything else, so a garbled stamp is reported rather than compared wrongly.
    """
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    release = tuple(int(part) for part in match.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:  # 1.2 == 1.2.0
        release = release[:-1]
    pre = (_PRE_ORDER[match.group(2).lower()], int(match.group(3) or 0)) if match.group(2) else (9, 0)
    return release, pre


def stamp_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / STAMP_NAME


def read_stamp(data_dir: str | os.PathLike[str]) -> str | None:
    try:
        text = stamp_path(data_dir).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StoreError(f"{stamp_path(data_dir)}: cannot read the version stamp: {error}") from None
    return text or None


def check(data_dir: str | os.PathLike[str], version: str = __version__) -> None:
    """Raise DowngradeError when the data directory was last used by a newer version.

    $WEIGHTWARDEN_ALLOW_DOWNGRADE=1 lets an administrator go back anyway; the database still refuses a
    schema it does not know.
    """
    stamped = read_stamp(data_dir)
    if stamped is None or os.environ.get(ALLOW_DOWNGRADE_ENV) == "1":
        return
    try:
        newer = version_key(stamped) > version_key(version)
    except ValueError as error:
        raise StoreError(f"{stamp_path(data_dir)}: {error}") from None
    if newer:
        raise DowngradeError(
            f"{data_dir} was last used by Weightwarden {stamped}, newer than this version {version}: "
            f"refusing to downgrade (its data may not be readable by an older version). Install {stamped} or "
            f"newer; to go back anyway, export the data first and set {ALLOW_DOWNGRADE_ENV}=1")


def record(data_dir: str | os.PathLike[str], version: str = __version__) -> None:
    """Stamp the data directory with `version` unless a newer one is already there (atomic replace)."""
    stamped = read_stamp(data_dir)
    if stamped is not None:
        try:
            if version_key(stamped) >= version_key(version):
                return
        except ValueError:
            pass  # a garbled stamp is replaced by a good one
    path = stamp_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{STAMP_NAME}.{os.getpid()}")
    temporary.write_text(version + "\n", encoding="utf-8")
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or args[0] not in ("check", "record"):
        print("usage: python -m weightwarden.agent.version_stamp check|record DATA_DIR [VERSION]", file=sys.stderr)
        return 2
    version = args[2] if len(args) == 3 else __version__
    try:
        (check if args[0] == "check" else record)(args[1], version)
    except DowngradeError as error:
        print(f"weightwarden: {error}", file=sys.stderr)
        return 1
    except (StoreError, OSError) as error:
        print(f"weightwarden: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
