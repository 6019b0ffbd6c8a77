"""Sealing at rest: round trips, tampering, hostile inputs, crash safety, owner and mode, who may unseal.

Real files and real subprocesses (killed with SIGKILL at named points through the test hook env var, and
at random moments); no mocks.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from weightwarden.agent.cli.main import main
from weightwarden.agent.seal.container import MAGIC, TAG, SealHeader
from weightwarden.agent.seal.escrow import store_escrow_key
from weightwarden.agent.seal.inplace import (
    CRASH_ENV,
    SealError,
    read_sealed_header,
    seal_file,
    unseal_file,
    verify_file,
)
from weightwarden.agent.seal.keys import key_id, machine_private_key, machine_public_key, private_pem, public_pem

CHUNK = 4096


class Machine:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.public: X25519PublicKey = machine_public_key(data_dir)
        self.private: X25519PrivateKey = machine_private_key(data_dir)
        # The organisation's escrow pair: its private half recovers files without the agent (the CLI's
        # only offline unseal); the tests enrol the public half where they need it.
        self.escrow = X25519PrivateKey.generate()
        self.escrow_key_file = data_dir.parent / "escrow.pem"
        self.escrow_key_file.write_bytes(private_pem(self.escrow))
        os.chmod(self.escrow_key_file, 0o600)
        store_escrow_key(str(data_dir), self.escrow.public_key())  # as `enroll --escrow-public-key` does

    def recover_args(self) -> list[str]:
        return ["unseal", "--escrow-key", str(self.escrow_key_file)]

    def seal(self, path: Path, chunk_size: int = CHUNK) -> SealHeader:
        return seal_file(str(path), [("machine", self.public), ("escrow", self.escrow.public_key())],
                         chunk_size=chunk_size)


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("WEIGHTWARDEN_DATA_DIR", str(data_dir))
    return Machine(data_dir)


def plain_file(path: Path, size: int, seed: int = 1) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(".wwseal-"))


def chunks_of(sealed: bytes, header_length: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each stored chunk in a sealed file with full chunks of CHUNK bytes."""
    spans, position, left = [], header_length, size
    while True:
        length = min(CHUNK, left)
        spans.append((position, position + length + TAG))
        position += length + TAG
        left -= length
        if left <= 0:
            return spans


def header_length(sealed: bytes) -> int:
    return 12 + int.from_bytes(sealed[8:12], "big")


def test_the_machine_key_is_created_once_private_half_0600(machine: Machine) -> None:
    assert stat.S_IMODE((machine.data_dir / "seal_key.pem").stat().st_mode) == 0o600
    assert machine_public_key(machine.data_dir) == machine.public


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_round_trip_byte_for_byte_and_no_plaintext_in_the_sealed_file(machine: Machine, tmp_path: Path,
                                                                      size: int) -> None:
    path = tmp_path / "model.safetensors"
    data = plain_file(path, size)
    header = machine.seal(path)
    sealed = path.read_bytes()
    assert sealed.startswith(MAGIC)
    assert header.chunks == max(1, -(-size // CHUNK))
    assert len(sealed) == header_length(sealed) + size + TAG * header.chunks
    assert header.sha256 == hashlib.sha256(data).hexdigest() and header.name == "model.safetensors"
    # any 64-byte run of the plaintext holds an aligned 32-byte block: none of those may appear
    assert not any(data[o:o + 32] in sealed for o in range(0, size - 31, 32))
    assert verify_file(str(path), machine.private).size == size
    unseal_file(str(path), machine.private)
    assert path.read_bytes() == data
    assert leftovers(tmp_path) == []


def test_the_default_chunk_size_is_4_mib(machine: Machine, tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    data = plain_file(path, (4 << 20) + 3)
    header = seal_file(str(path), [("machine", machine.public)])
    assert (header.chunk_size, header.chunks) == (4 << 20, 2)
    unseal_file(str(path), machine.private)
    assert path.read_bytes() == data


def _flip_bit(sealed: bytes, other: bytes) -> bytes:
    start, _end = chunks_of(sealed, header_length(sealed), 5 * CHUNK + 7)[2]
    return sealed[:start + 10] + bytes([sealed[start + 10] ^ 1]) + sealed[start + 11:]


def _truncate_mid_chunk(sealed: bytes, other: bytes) -> bytes:
    return sealed[:-1]


def _truncate_at_boundary(sealed: bytes, other: bytes) -> bytes:
    return sealed[:chunks_of(sealed, header_length(sealed), 5 * CHUNK + 7)[-1][0]]


def _swap_chunks(sealed: bytes, other: bytes) -> bytes:
    spans = chunks_of(sealed, header_length(sealed), 5 * CHUNK + 7)
    (a, b), (c, d) = spans[1], spans[2]
    return sealed[:a] + sealed[c:d] + sealed[a:b] + sealed[d:]


def _chunk_from_another_file(sealed: bytes, other: bytes) -> bytes:
    a, b = chunks_of(sealed, header_length(sealed), 5 * CHUNK + 7)[1]
    c, d = chunks_of(other, header_length(other), 5 * CHUNK + 7)[1]
    return sealed[:a] + other[c:d] + sealed[b:]


def _edit_header(sealed: bytes, other: bytes) -> bytes:
    return sealed.replace(b'"name":"model.bin"', b'"name":"model.bix"', 1)


def _append(sealed: bytes, other: bytes) -> bytes:
    return sealed + b"\x00" * 20


TAMPERING = {
    "flip a bit": (_flip_bit, "chunk 2 of 6 fails authentication"),
    "truncate mid-chunk": (_truncate_mid_chunk, "truncated: chunk 5 of 6"),
    "truncate at a chunk boundary": (_truncate_at_boundary, "truncated: chunk 5 of 6 has 0"),
    "swap two chunks": (_swap_chunks, "chunk 1 of 6 fails authentication"),
    "chunk from another file": (_chunk_from_another_file, "chunk 1 of 6 fails authentication"),
    "edit the header": (_edit_header, "chunk 0 of 6 fails authentication.*header was edited"),
    "append bytes": (_append, "20 unexpected bytes after the last chunk"),
}


@pytest.mark.parametrize("kind", TAMPERING)
def test_verify_and_unseal_detect_tampering_and_leave_the_file_alone(machine: Machine, tmp_path: Path,
                                                                     kind: str) -> None:
    path, other_path = tmp_path / "model.bin", tmp_path / "other" / "model.bin"
    other_path.parent.mkdir()
    plain_file(path, 5 * CHUNK + 7)
    plain_file(other_path, 5 * CHUNK + 7, seed=2)
    machine.seal(path)
    machine.seal(other_path)
    assert main(["seal", "--verify", str(path)]) == 0
    tamper, message = TAMPERING[kind]
    damaged = tamper(path.read_bytes(), other_path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(SealError, match=f"{path}: {message}"):
        verify_file(str(path), machine.private)
    with pytest.raises(SealError, match=f"{path}: {message}"):
        unseal_file(str(path), machine.private)
    assert path.read_bytes() == damaged and leftovers(tmp_path) == []
    assert main(["seal", "--verify", str(path)]) == 1


def test_a_cut_header_and_a_foreign_file_are_clear_errors(machine: Machine, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.bin"
    plain_file(path, 100)
    machine.seal(path)
    path.write_bytes(path.read_bytes()[:30])
    assert main([*machine.recover_args(), str(path)]) == 1
    assert f"{path}: truncated in the header" in capsys.readouterr().err
    path.write_bytes(b"not sealed at all")
    assert main(["seal", "--verify", str(path)]) == 1
    assert f"{path}: not a sealed file" in capsys.readouterr().err


@pytest.mark.parametrize(("edit", "message"), [
    (lambda sealed: sealed[:8] + (1 << 31).to_bytes(4, "big") + sealed[12:], "header claims 2147483648 bytes"),
    (lambda sealed: sealed[:12] + b"[" + sealed[13:], "malformed header"),
    (lambda sealed: sealed.replace(b'"chunk_size":4096', b'"chunk_size":0   ', 1),
     "malformed header: bad chunk_size 0"),
    (lambda sealed: sealed.replace(b'"size":20480', b'"size":99999', 1), "chunk 0 of 25 fails authentication"),
    (lambda sealed: sealed[:7] + b"\x09" + sealed[8:], "unsupported sealed format version 0009"),
])
def test_hostile_headers_are_clear_errors(machine: Machine, tmp_path: Path, edit: Any, message: str) -> None:
    path = tmp_path / "model.bin"
    plain_file(path, 5 * CHUNK)
    machine.seal(path)
    damaged = edit(path.read_bytes())
    path.write_bytes(damaged)
    for action in (verify_file, unseal_file):
        with pytest.raises(SealError, match=f"{path}: {message}"):
            action(str(path), machine.private)
    assert path.read_bytes() == damaged and leftovers(tmp_path) == []


def test_a_user_file_named_like_a_temporary_is_not_removed(machine: Machine, tmp_path: Path) -> None:
    mine = tmp_path / ".wwseal-notes.tmp"
    mine.write_bytes(b"keep me")
    plain_file(tmp_path / "model.bin", 10)
    machine.seal(tmp_path / "model.bin")
    assert mine.read_bytes() == b"keep me"


def test_escrow_key_unwraps_a_file_sealed_with_escrow(machine: Machine, tmp_path: Path) -> None:
    escrow = X25519PrivateKey.generate()
    escrow_pem = tmp_path / "escrow.pub.pem"
    escrow_pem.write_bytes(public_pem(escrow.public_key()))
    path = tmp_path / "model.bin"
    data = plain_file(path, 3 * CHUNK)
    assert main(["seal", "--escrow", str(escrow_pem), "--chunk-size", str(CHUNK), str(path)]) == 0
    assert verify_file(str(path), machine.private).size == len(data)
    header = verify_file(str(path), escrow)
    assert [key.kind for key in header.keys] == ["machine", "escrow"]
    unseal_file(str(path), escrow)
    assert path.read_bytes() == data
    stranger = X25519PrivateKey.generate()
    machine.seal(path)
    with pytest.raises(SealError, match="not sealed for key"):
        unseal_file(str(path), stranger)


def test_cli_round_trip(machine: Machine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "model.bin"
    data = plain_file(path, 10_000)
    assert main(["seal", "--chunk-size", "3000", str(path)]) == 0
    assert "sealed" in capsys.readouterr().out
    assert main(["seal", str(path)]) == 1
    assert f"{path}: already sealed" in capsys.readouterr().err
    assert main(["seal", "--verify", str(path)]) == 0
    # the enrolled escrow key is used by default, and recovers the file without the agent
    assert [(k.kind, k.key_id) for k in read_sealed_header(str(path)).keys] == [
        ("machine", key_id(machine.public)), ("escrow", key_id(machine.escrow.public_key()))]
    assert main(["unseal", str(path)]) == 2  # no agent: unsealing goes through it
    assert "unsealing goes through the agent" in capsys.readouterr().err
    assert main([*machine.recover_args(), str(path)]) == 0
    assert path.read_bytes() == data


def test_refuses_fifos_symlinks_directories_and_leaves_them_alone(machine: Machine, tmp_path: Path) -> None:
    target = tmp_path / "target.bin"
    data = plain_file(target, 1000)
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(SealError, match=f"{link}: is a symbolic link"):
        machine.seal(link)
    with pytest.raises(SealError, match=f"{fifo}: not a regular file \\(fifo\\)"):
        machine.seal(fifo)
    with pytest.raises(SealError, match=f"{folder}: "):
        machine.seal(folder)
    with pytest.raises(SealError, match=f"{tmp_path / 'missing'}: No such file"):
        machine.seal(tmp_path / "missing")
    assert link.is_symlink() and target.read_bytes() == data and stat.S_ISFIFO(fifo.stat().st_mode)
    assert leftovers(tmp_path) == []


def test_a_file_that_changes_while_being_sealed_is_left_alone(machine: Machine, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    plain_file(path, 5 * CHUNK)

    def grow(index: int) -> None:
        if index == 1:
            with open(path, "ab") as out:
                out.write(b"more")

    with pytest.raises(SealError, match=r"grew while being sealed \(past byte 20480\); left as it was"):
        seal_file(str(path), [("machine", machine.public)], chunk_size=CHUNK, on_chunk=grow)
    assert len(path.read_bytes()) == 5 * CHUNK + 4 and not path.read_bytes().startswith(MAGIC)

    def rewrite(index: int) -> None:
        if index == 3:
            with open(path, "r+b") as out:
                out.write(b"edited")

    with pytest.raises(SealError, match="changed while being processed; left as it was"):
        seal_file(str(path), [("machine", machine.public)], chunk_size=CHUNK, on_chunk=rewrite)
    assert path.read_bytes().startswith(b"edited")
    assert leftovers(tmp_path) == []


def test_owner_group_and_mode_are_kept(machine: Machine, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    data = plain_file(path, 3 * CHUNK)
    os.chmod(path, 0o640)
    if os.geteuid() == 0:
        os.chown(path, 1234, 5678)
    before = path.stat()
    machine.seal(path)
    sealed = path.stat()
    assert (sealed.st_uid, sealed.st_gid, sealed.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert sealed.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    unseal_file(str(path), machine.private)
    after = path.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert path.read_bytes() == data


# --- crash safety -----------------------------------------------------------------------------------------

def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "weightwarden.agent.cli.main", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _command(operation: str, machine: Machine) -> list[str]:
    """The CLI's seal, or its one unseal without an agent: recovery with the escrow key."""
    return machine.recover_args() if operation == "unseal" else [operation]


def _finish(process: subprocess.Popen[bytes]) -> int:
    process.communicate(timeout=60)
    return process.returncode


def _plain_or_sealed_of(path: Path, data: bytes, machine: Machine) -> str:
    """PATH holds the exact plain bytes, or a complete sealed file whose plaintext is exactly them."""
    content = path.read_bytes()
    if content == data:
        return "plain"
    header = verify_file(str(path), machine.private)  # raises on any incomplete or damaged sealed file
    assert header.sha256 == hashlib.sha256(data).hexdigest() and header.size == len(data)
    return "sealed"


CRASH_POINTS = ["chunk-1", "chunk-7", "chunk-20", "before-rename", "after-rename"]


@pytest.mark.parametrize("operation", ["seal", "unseal"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_sigkill_at_every_named_point_leaves_plain_or_sealed(machine: Machine, tmp_path: Path, operation: str,
                                                             point: str) -> None:
    path = tmp_path / "model.bin"
    data = plain_file(path, 20 * CHUNK)
    if operation == "unseal":
        machine.seal(path)
    process = _cli(*_command(operation, machine), *(["--chunk-size", str(CHUNK)] if operation == "seal" else []),
                   str(path), env={CRASH_ENV: point})
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    renamed = point == "after-rename"
    assert len(leftovers(tmp_path)) == (0 if renamed else 1)  # checked first: verifying cleans up too
    state = _plain_or_sealed_of(path, data, machine)
    assert state == ({"seal": "sealed", "unseal": "plain"}[operation] if renamed else
                     {"seal": "plain", "unseal": "sealed"}[operation])
    # the rerun removes the dead run's temporary file and finishes the job
    rerun = _cli(*_command(operation, machine), str(path)) \
        if state != {"seal": "sealed", "unseal": "plain"}[operation] else \
        _cli(*_command("seal" if operation == "unseal" else "unseal", machine), str(path))
    assert _finish(rerun) == 0
    assert leftovers(tmp_path) == []
    if _plain_or_sealed_of(path, data, machine) == "sealed":
        unseal_file(str(path), machine.private)
    assert path.read_bytes() == data


def test_sigkill_at_random_moments_never_loses_the_file(machine: Machine, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    data = plain_file(path, 8 << 20)
    moments = random.Random(7)
    states = set()
    for _round in range(12):
        operation = "seal" if _plain_or_sealed_of(path, data, machine) == "plain" else "unseal"
        process = _cli(operation, "--chunk-size", "65536", str(path)) if operation == "seal" else \
            _cli(*machine.recover_args(), str(path))
        # a seal spends its first half second loading the format rules (it identifies the plaintext)
        time.sleep(moments.uniform(0.15, 0.6) + (0.5 if operation == "seal" else 0))
        process.kill()
        process.communicate(timeout=60)
        states.add((operation, process.returncode == 0, _plain_or_sealed_of(path, data, machine)))
    assert _finish(_cli("seal", "--verify", str(path))) in (0, 1)
    final = _cli(*_command("unseal" if _plain_or_sealed_of(path, data, machine) == "sealed" else "seal", machine),
                 str(path))
    assert _finish(final) == 0
    assert leftovers(tmp_path) == []
    assert len(states) >= 2  # the kills landed at different stages, not always before anything happened


# --- who may unseal -----------------------------------------------------------------------------------------

@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder outside the test's 0700 temporary tree that an ordinary user can enter and write."""
    folder = Path(tempfile.mkdtemp(prefix="ww-seal-shared-", dir="/tmp"))
    os.chmod(folder, 0o1777)
    yield folder
    shutil.rmtree(folder)


def _as_nobody(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m",
                           "weightwarden.agent.cli.main", *args],
                          env={**os.environ, "WEIGHTWARDEN_DATA_DIR": str(data_dir), "HOME": "/nonexistent"},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_an_ordinary_user_cannot_unseal_or_verify(machine: Machine, shared_folder: Path) -> None:
    path = shared_folder / "model.bin"
    data = plain_file(path, 3 * CHUNK)
    machine.seal(path)
    os.chmod(path, 0o666)
    sealed = path.read_bytes()
    for command, secret in (([*machine.recover_args(), str(path)], machine.escrow_key_file),
                            (["seal", "--verify", str(path)], machine.data_dir / "seal_key.pem")):
        result = _as_nobody(*command, data_dir=machine.data_dir)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert str(secret) in result.stderr and "permission denied" in result.stderr.lower()
    # without a key of their own, nobody can only ask the agent (none runs here: a usage error)
    result = _as_nobody("unseal", str(path), data_dir=machine.data_dir)
    assert result.returncode == 2 and "unsealing goes through the agent" in result.stderr
    assert path.read_bytes() == sealed and leftovers(shared_folder) == []
    # nor by copying the sealed file somewhere with a key of their own
    own = shared_folder / "nobody-data"
    result = _as_nobody("seal", "--verify", str(path), data_dir=own)
    assert result.returncode == 2 and "no sealing key" in result.stderr
    unseal_file(str(path), machine.private)
    assert path.read_bytes() == data


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_sealing_a_file_without_permission_leaves_it_alone(machine: Machine, shared_folder: Path) -> None:
    own = shared_folder / "nobody-data"
    unreadable = shared_folder / "secret.bin"
    data = plain_file(unreadable, 100)
    os.chmod(unreadable, 0o600)
    result = _as_nobody("seal", str(unreadable), data_dir=own)
    assert result.returncode == 1 and f"{unreadable}: Permission denied" in result.stderr
    locked = shared_folder / "locked"
    locked.mkdir()
    readonly = locked / "model.bin"
    plain_file(readonly, 100)
    os.chmod(readonly, 0o644)
    result = _as_nobody("seal", str(readonly), data_dir=own)
    assert result.returncode == 1 and "cannot write in its folder: Permission denied" in result.stderr
    assert unreadable.read_bytes() == data and not readonly.read_bytes().startswith(MAGIC)
    assert leftovers(locked) == [] and leftovers(shared_folder) == []


def test_escrow_pem_helpers_write_pem() -> None:
    key = X25519PrivateKey.generate()
    assert b"PRIVATE KEY" in private_pem(key) and b"PUBLIC KEY" in public_pem(key.public_key())
