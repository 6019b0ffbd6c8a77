"""Attribution that survives tricks, with real processes and the real AccessSensor: a shell's redirection (the
shell opens, the program it execs reads), a descriptor inherited by a child, and memory-mapped reads measured
by the pages the process actually touched. The actor is an ordinary user (nobody); the agent's side is root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent.sensors.access import AccessObservation, AccessSensor

pytestmark = pytest.mark.root

MiB = 1 << 20
NOBODY = 65534
ACTOR: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []}  # subprocess: run as nobody


def open_to_actor(path: Path) -> Path:
    """Let the actor reach `path` through the test's private folders (pytest makes them 0700) and read it."""
    for folder in path.parents:
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
    path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return open_to_actor(write_safetensors(tmp_path / "models" / "llama" / "model.safetensors", rows=4096))


@pytest.fixture
def gnupg_home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    open_to_actor(home)
    home.chmod(0o700)
    try:
        yield home
    finally:  # gpg starts an agent for the home: stop it with the test
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, **ACTOR)


def protected(sensor: AccessSensor, path: Path) -> None:
    sensor.protect([str(path)])
    assert sensor.marked, "the model file could not be marked"


def read_by(collected: Collected, name: str) -> AccessObservation:
    try:
        found = wait_for(lambda: [o for o in collected.access("read") if o.process.name == name], timeout=10,
                         what=f"a read of the model by {name}")
    except AssertionError as error:
        seen = [(o.kind, o.process.pid, o.process.name, o.bytes_read) for o in collected.access("read")]
        raise AssertionError(f"{error}; reads seen: {seen}") from None
    assert len(found) == 1, found
    return found[0]


def shell_open(collected: Collected, shell: str) -> AccessObservation:
    """The shell's open (this machine may run other readers of files under /tmp: only ours count)."""
    (opened,) = [o for o in collected.access("opened") if o.process.command_line is not None
                 and o.process.command_line.startswith(f"{shell} -c")]
    return opened


def assert_reader_user(read: AccessObservation) -> None:
    """The reader runs as the actor. A reader that exec'd, read and was reaped before the proc connector's news
    of it was handled is known by its remains only (a zombie's comm, its exit record): then its user may be
    unknown too, and it says so by having no executable."""
    assert read.process.user == "nobody" or (read.process.user is None and read.process.executable is None)


def assert_redirected(read: AccessObservation, opened: AccessObservation) -> None:
    """dash opens a redirection in the shell and forks the reader; bash forks first (or, for a lone command,
    does not fork) and the child that opened execs the reader in its own pid."""
    assert opened.process.name in ("sh", "dash", "bash")
    assert opened.process.user == "nobody"
    assert_reader_user(read)
    # A reader that exited before it was looked at is known by its remains (pid and name, parent 0): then the
    # opened_by link below is what ties it to the shell.
    assert read.process.pid == opened.process.pid or read.process.ppid in (opened.process.pid, 0)
    assert read.opened_by is not None and read.opened_by.pid == opened.process.pid
    assert read.opened_by.name in ("sh", "dash", "bash") and read.opened_by.executable is not None
    assert os.path.basename(read.opened_by.executable) in ("sh", "dash", "bash")
    assert read.process.opened_by is not None and read.process.opened_by.pid == opened.process.pid  # in the record


def assert_read_whole(read: AccessObservation, model: Path) -> None:
    size = model.stat().st_size
    assert read.bytes_read is not None and size - 1024 < read.bytes_read <= size, (read.bytes_read, size)
    assert read.bytes_read_source in ("fd-position", "process-io", "exit-io")
    assert read.mapped is False


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_gpg_reading_a_shell_redirection_is_named_as_the_reader(access_sensor: AccessSensor, collected: Collected,
                                                                 model: Path, tmp_path: Path, gnupg_home: Path,
                                                                 shell: str) -> None:
    if shutil.which("gpg") is None or shutil.which(shell) is None:
        pytest.skip(f"gpg or {shell} is not installed")
    protected(access_sensor, model)
    out = gnupg_home / "out.gpg"
    subprocess.run(
        [shell, "-c", f"gpg --batch --symmetric --passphrase x --pinentry-mode loopback -o {out} < {model}"],
        env={**os.environ, "GNUPGHOME": str(gnupg_home), "HOME": str(gnupg_home)}, check=True, timeout=60,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **ACTOR)
    read = read_by(collected, "gpg")
    assert read.process.executable == os.path.realpath(shutil.which("gpg") or "gpg")
    assert read.process.command_line is not None and "--symmetric" in read.process.command_line
    assert_read_whole(read, model)
    assert_redirected(read, shell_open(collected, shell))
    assert out.stat().st_size > model.stat().st_size // 2  # gpg did read it all


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize("script", ["cat < {model} > /dev/null", "cat < {model} > /dev/null; true"],
                         ids=["lone-command", "in-a-list"])
def test_cat_reading_a_shell_redirection_is_named_as_the_reader(access_sensor: AccessSensor, collected: Collected,
                                                                 model: Path, script: str, shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    protected(access_sensor, model)
    subprocess.run([shell, "-c", script.format(model=model)], check=True, timeout=30, **ACTOR)
    read = read_by(collected, "cat")
    assert_read_whole(read, model)
    opened = shell_open(collected, shell)
    assert_redirected(read, opened)
    # the shell is not named as the reader of the model's bytes
    assert not [o for o in collected.access("read", opened.process.pid) if o.process.name != "cat" and o.bytes_read]


def test_a_child_reading_an_inherited_descriptor_is_the_reader(access_sensor: AccessSensor, collected: Collected,
                                                               model: Path) -> None:
    """The shell opens the model as fd 3 and keeps it while a child cat reads it from its stdin: cat's exit
    closes nothing (the shell still holds the file), so cat's read is reported when it is seen gone."""
    protected(access_sensor, model)
    subprocess.run(["sh", "-c", f"exec 3< {model}; cat <&3 > /dev/null; exec 3<&-"], check=True, timeout=30,
                   **ACTOR)
    read = read_by(collected, "cat")
    opened = shell_open(collected, "sh")
    assert opened.process.name in ("sh", "dash", "bash") and read.process.pid != opened.process.pid
    assert read.opened_by is not None and read.opened_by.pid == opened.process.pid
    assert read.process.ppid == opened.process.pid
    assert_reader_user(read)
    size = model.stat().st_size
    assert read.bytes_read is not None and size - 1024 < read.bytes_read <= size
    # the shell's own close is reported too, without the child's bytes counted as its own
    shell_read = wait_for(lambda: collected.access("read", opened.process.pid), timeout=10, what="the shell's close")[0]
    assert shell_read.opened_by is None
    assert (shell_read.bytes_read or 0) < size // 2


MAPPER = textwrap.dedent("""
    import mmap, sys
    path, touch = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    total = sum(m[i] for i in range(0, touch, mmap.PAGESIZE))  # one byte of each page of the first `touch`
    print("ready", flush=True)
    sys.stdin.readline()  # the test decides when the mapping goes
    m.close()
    print("closed", flush=True)
    sys.stdin.readline()
""")


def actor_python() -> str:
    """A Python the actor may run (the test's own may live under /root, closed to others)."""
    for candidate in (PYTHON, shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")):
        real = Path(os.path.realpath(candidate)) if candidate else None  # a venv's python is a symlink
        if real and all(os.stat(p).st_mode & stat.S_IXOTH for p in [*real.parents][:-1]):
            return str(real)
    pytest.skip("no Python that an ordinary user may run")


def big_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for _ in range(size // MiB):
            handle.write(os.urandom(MiB))
    return path


@pytest.mark.parametrize("touch", [16 * MiB, 64 * MiB], ids=["a-quarter", "all"])
def test_mapped_read_counts_the_pages_touched(access_sensor: AccessSensor, collected: Collected, tmp_path: Path,
                                              touch: int) -> None:
    model = open_to_actor(big_file(tmp_path / "models" / "big.bin", 64 * MiB))
    protected(access_sensor, model)
    mapper = subprocess.Popen([actor_python(), "-c", MAPPER, str(model), str(touch)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, **ACTOR)
    assert mapper.stdin is not None and mapper.stdout is not None
    try:
        assert mapper.stdout.readline().strip() == "ready"
        # the mapping's resident pages are sampled while the session lives: wait until a sample saw them
        try:
            wait_for(lambda: [s for s in access_sensor.session_view()
                              if s["pid"] == mapper.pid and int(str(s["resident"])) >= touch], timeout=10,
                     what="the touched pages to be sampled")
        except AssertionError as error:
            raise AssertionError(f"{error}: sessions {access_sensor.session_view()}, seen "
                                 f"{[(o.kind, o.process.pid, o.process.name) for o in collected.items]}") from None
        mapper.stdin.write("\n")
        mapper.stdin.flush()
        assert mapper.stdout.readline().strip() == "closed"
        (read,) = wait_for(lambda: collected.access("read", mapper.pid), timeout=10, what="the mapping's close")
        assert read.mapped is True and read.process.user == "nobody"
        assert read.bytes_read_source == "mapped-resident"
        # page-granular: the kernel maps up to 64 KiB of already-cached neighbours around a fault
        assert read.bytes_read is not None and touch <= read.bytes_read <= touch + 128 * 1024, read.bytes_read
    finally:
        if mapper.poll() is None:
            mapper.kill()
        mapper.wait(timeout=10)
        mapper.stdin.close()
        mapper.stdout.close()
