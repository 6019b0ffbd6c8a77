"""Run code of another checkout (an older commit) in the same run as this one, for before/after ratios.

    .venv/bin/python -m bench.baseline CHECKOUT -- bench.sensors_storm --no-write ...

The other checkout's agent/, gui/ and rules/ are linked into a temporary `weightwarden` package that goes
first on PYTHONPATH, so `import weightwarden` (and every `weightwarden` command the bench starts, which
inherits the environment) runs that code; the bench itself and the test helpers come from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def environment(checkout: Path | None) -> Iterator[dict[str, str]]:
    """The environment that imports weightwarden from `checkout` (this checkout's when None)."""
    env = dict(os.environ)
    if checkout is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="ww-baseline-") as links:
        package = Path(links) / "weightwarden"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for name in ("agent", "gui", "rules"):
            (package / name).symlink_to(checkout.resolve() / name)
        env["PYTHONPATH"] = os.pathsep.join([links, str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        yield env


def describe(checkout: Path | None) -> str:
    """`abc1234 subject` of the checkout's HEAD."""
    found = subprocess.run(["git", "-C", str(checkout or REPO), "log", "-1", "--format=%h %s"],
                           capture_output=True, text=True, check=False)
    return found.stdout.strip()[:72] or str(checkout)


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    checkout, module, args = Path(sys.argv[1]), sys.argv[3], sys.argv[4:]
    print(f"[baseline] {module} against {describe(checkout)}", file=sys.stderr)
    with environment(checkout) as env:
        return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
