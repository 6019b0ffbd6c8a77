"""The places and receivers the detection scenarios (test_scenarios.py, bench/detect_latency.py) act on.

- `usb_stick`: a loop-mounted ext4 image, standing in for a USB stick, mounted where desktop automounters
  put hot-plugged drives (/media/<name>);
- `Remote`: a pair of network namespaces joined by a veth pair (private addresses, only inside them) with
  an OpenSSH server (Debian's sshd, own host key and authorized key) and room for other listeners;
- `scenario_config`: an agent config protecting `models` and watching the places copies land.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SERVER_ADDRESS = "10.231.9.2"
CLIENT_ADDRESS = "10.231.9.1"
SSH_PORT = 2222


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@contextmanager
def usb_stick(image: Path, size_mb: int = 48) -> Iterator[Path]:
    """A fresh ext4 filesystem in `image`, loop-mounted at /media/ww-usb-<tag> for the block."""
    if shutil.which("mkfs.ext4") is None or shutil.which("mount") is None:
        raise RuntimeError("mkfs.ext4 (e2fsprogs) and mount (util-linux) are needed for the USB stand-in")
    with image.open("wb") as handle:
        handle.truncate(size_mb << 20)
    _run("mkfs.ext4", "-q", "-F", str(image))
    point = Path("/media") / f"ww-usb-{uuid.uuid4().hex[:6]}"
    point.mkdir(parents=True)
    try:
        _run("mount", "-o", "loop", str(image), str(point))
    except subprocess.CalledProcessError as error:
        point.rmdir()
        raise RuntimeError(f"cannot loop-mount a filesystem here: {error.stderr.decode().strip()}") from None
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        with suppress(OSError):
            point.rmdir()


class Remote:
    """Two network namespaces (client, server) and an sshd in the server one; `ssh_options` logs in."""

    def __init__(self, home: Path) -> None:
        self.home = home
        tag = uuid.uuid4().hex[:6]
        self.client, self.server = f"ww-dc-{tag}", f"ww-ds-{tag}"
        self._tag = tag
        self._made: list[str] = []
        self.sshd: subprocess.Popen[bytes] | None = None
        self.key = home / "id_ed25519"
        self.inbox = home / "inbox"  # where uploads land on the "remote" side

    def start(self) -> None:
        for name in (self.client, self.server):
            _run("ip", "netns", "add", name)
            self._made.append(name)
        c, s = f"wwdc{self._tag}", f"wwds{self._tag}"
        _run("ip", "link", "add", c, "netns", self.client, "type", "veth", "peer", "name", s, "netns", self.server)
        _run("ip", "-n", self.client, "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", c)
        _run("ip", "-n", self.server, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", s)
        for name, dev in ((self.client, c), (self.server, s)):
            _run("ip", "-n", name, "link", "set", dev, "up")
            _run("ip", "-n", name, "link", "set", "lo", "up")
        self.inbox.mkdir(parents=True, exist_ok=True)
        if os.path.exists(SSHD):
            self._start_sshd()

    def _start_sshd(self) -> None:
        host_key = self.home / "host_ed25519"
        for key in (host_key, self.key):
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        authorized = self.home / "authorized_keys"
        authorized.write_text(self.key.with_suffix(".pub").read_text())
        os.chmod(authorized, 0o600)
        config = self.home / "sshd_config"
        config.write_text(textwrap.dedent(f"""\
            ListenAddress {SERVER_ADDRESS}:{SSH_PORT}
            HostKey {host_key}
            PidFile {self.home / 'sshd.pid'}
            AuthorizedKeysFile {authorized}
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            Subsystem sftp internal-sftp
            """))
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        self.sshd = subprocess.Popen(["ip", "netns", "exec", self.server, SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not self._listening():
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                error = self.sshd.stderr.read().decode() if self.sshd.stderr and self.sshd.poll() is not None else ""
                raise RuntimeError(f"sshd did not start in the namespace: {error.strip() or 'timed out'}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        out = subprocess.run(["ip", "netns", "exec", self.server, "ss", "-Hltn", f"sport = :{SSH_PORT}"],
                             capture_output=True, text=True, check=False).stdout
        return str(SSH_PORT) in out

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]

    def in_client(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]

    def in_server(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.server, *argv]

    def stop(self) -> None:
        if self.sshd is not None:
            self.sshd.terminate()
            try:
                self.sshd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait(timeout=10)
            if self.sshd.stderr is not None:
                self.sshd.stderr.close()
        for name in self._made:  # deleting a namespace also deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


LISTEN = textwrap.dedent("""
    import socket, sys
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2]))); server.listen()
    print("listening", flush=True)
    conn, _ = server.accept()
    while conn.recv(1 << 16):
        pass
""")
# Sends the file in steps the test paces: one line on stdin per step, "sent N" after each.
UPLOAD = textwrap.dedent("""
    import socket, sys
    data = open(sys.argv[1], "rb").read()
    steps = [float(s) for s in sys.argv[4].split(",")]
    sock = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10)
    done = 0
    for share in steps:
        sys.stdin.readline()
        end = int(len(data) * share)
        sock.sendall(data[done:end])
        done = end
        print("sent", done, flush=True)
    sys.stdin.readline()
    sock.close()
""")


class Upload:
    """A listener in the server namespace and a paced uploader in the client namespace (own session)."""

    def __init__(self, remote: Remote, source: Path, port: int, steps: list[float],
                 argv: list[str] | None = None) -> None:
        self.listener = subprocess.Popen(remote.in_server(sys.executable, "-c", LISTEN, SERVER_ADDRESS, str(port)),
                                         stdout=subprocess.PIPE, text=True)
        assert self.listener.stdout is not None and self.listener.stdout.readline().strip() == "listening"
        command = argv or [sys.executable, "-c", UPLOAD, str(source), SERVER_ADDRESS, str(port),
                           ",".join(map(str, steps))]
        self.uploader = subprocess.Popen(remote.in_client(*command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, start_new_session=True)

    def step(self) -> int:
        assert self.uploader.stdin is not None and self.uploader.stdout is not None
        self.uploader.stdin.write("\n")
        self.uploader.stdin.flush()
        return int(self.uploader.stdout.readline().split()[1])

    def finish(self) -> float:
        assert self.uploader.stdin is not None
        self.uploader.stdin.write("\n")
        self.uploader.stdin.flush()
        self.uploader.wait(timeout=10)
        return time.time()

    def close(self) -> None:
        for process in (self.uploader, self.listener):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


def scenario_config(path: Path, *, data: Path, models: Path, watched: list[Path], allow_processes: list[str]) -> Path:
    """An agent config for the scenarios: fast status and network polls, the backup tool allowlisted."""
    from tests.agent.cli.helpers import write_config

    write_config(path, data_dir=data, protected=[models], watched=watched)
    allowed = ", ".join(f'"{p}"' for p in allow_processes)
    with path.open("a") as handle:
        handle.write(f"\n[sensors]\nstatus_seconds = 0.5\nnetwork_poll_seconds = 0.2\n"
                     "file_marks = false\n"  # only what the scenario does: tests.agent.cli.helpers.QUIET_WORLD
                     f"\n[detect]\nallow_processes = [{allowed}]\n")
    return path
