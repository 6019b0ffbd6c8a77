"""Real processes and a real ordinary user for the access decision tests."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.waiting import wait_for


@dataclass(frozen=True)
class Person:
    name: str
    uid: int
    gid: int


@pytest.fixture(scope="module")
def person() -> Iterator[Person]:
    """An ordinary local account, made for the test and removed after it."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root")
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name = f"wwacc{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        entry = pwd.getpwnam(name)
        yield Person(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", "--force", name], check=False, capture_output=True)


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a long-lived process (optionally as another user) and wait until it runs what it was asked."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], *, as_user: Person | None = None) -> subprocess.Popen[bytes]:
        command = argv
        if as_user is not None:
            command = ["setpriv", f"--reuid={as_user.uid}", f"--regid={as_user.gid}", "--init-groups", *argv]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd="/")
        started.append(process)
        real = os.path.realpath(argv[0])
        # Between fork and exec the child is a copy of this Python with pytest's command line: wait for both
        # the executable and the command line asked for (a Python child would pass an executable-only wait).
        wait_for(lambda: _exe(process.pid) == real and _argv(process.pid) == argv, timeout=10,
                 what=f"{argv[0]} to run")
        return process

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _argv(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode() for a in handle.read().rstrip(b"\0").split(b"\0")]
    except (OSError, UnicodeDecodeError):
        return None


def as_user(person: Person, action: Callable[[], object]) -> tuple[int, str]:
    """Run `action` in a forked child that has become `person` (groups, gid, uid): (exit code, message).

    The venv's Python lives under /root, which an ordinary user cannot enter, so the CLI cannot be exec'd as
    them; the child runs the same library call the command runs."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setresgid(person.gid, person.gid, person.gid)
            os.setresuid(person.uid, person.uid, person.uid)
            message = str(action())
        except BaseException as error:
            code, message = 1, f"{type(error).__name__}: {error}"
        os.write(write, message.encode())
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message
