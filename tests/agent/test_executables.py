"""What a process runs, from real executables on this machine: kinds known by content, the loader's target and
an interpreter's script found in argv, each file hashed once."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from weightwarden.agent.executables import ExecutableHashes, identify_process, split_invocation

LDSO = "/lib64/ld-linux-x86-64.so.2"


def real(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return os.path.realpath(found)


def test_kinds_come_from_content_not_names(tmp_path: Path) -> None:
    hashes = ExecutableHashes()
    python = os.path.realpath(sys.executable)
    disguised = tmp_path / "curl"
    shutil.copy2(python, disguised)  # a Python called curl is Python
    found = hashes.identify(str(disguised))
    assert found is not None and found.kind == "python"
    assert found.sha256 == hashlib.sha256(Path(python).read_bytes()).hexdigest()
    curl_copy = tmp_path / "python3"
    shutil.copy2(real("curl"), curl_copy)  # and curl called python3 is nothing of the kind
    found = hashes.identify(str(curl_copy))
    assert found is not None and found.kind is None
    if os.path.exists(LDSO):
        loader = hashes.identify(LDSO)
        assert loader is not None and loader.kind == "ld.so"
    bash = hashes.identify(real("bash"))
    assert bash is not None and bash.kind == "shell"


def test_each_file_is_hashed_once(tmp_path: Path) -> None:
    hashes = ExecutableHashes()
    tool = tmp_path / "tool"
    shutil.copy2(real("cat"), tool)
    first = hashes.identify(str(tool))
    assert hashes.identify(str(tool)) == first and hashes.hashed == 1
    os.utime(tool, ns=(0, 12345))  # changed (mtime): read again
    assert hashes.identify(str(tool)) == first and hashes.hashed == 2


@pytest.mark.parametrize(("kind", "argv", "expected"), [
    ("ld.so", ["/lib64/ld.so", "/usr/bin/curl", "-T", "f", "u"], (1, 2)),
    ("ld.so", ["/lib64/ld.so", "--library-path", "/x", "--argv0", "python3", "/usr/bin/curl", "-T"], (5, 6)),
    ("ld.so", ["/lib64/ld.so", "--list"], (None, 2)),
    ("python", ["python3", "-u", "-W", "ignore", "up.py", "a"], (4, 5)),
    ("python", ["python3", "-m", "huggingface_hub.commands.huggingface_cli", "upload"], (2, 3)),
    ("python", ["python3", "-c", "print(1)", "x"], (None, 3)),
    ("shell", ["bash", "-e", "-o", "pipefail", "run.sh", "x"], (4, 5)),
    ("shell", ["sh", "-c", "cat < m", "sh"], (None, 3)),
    ("perl", ["perl", "-e", "1"], (None, 3)),
    (None, ["curl", "-T", "f"], (None, 1)),
])
def test_where_the_real_program_and_its_arguments_start(kind: str | None, argv: list[str],
                                                        expected: tuple[int | None, int]) -> None:
    assert split_invocation(kind, argv) == expected


def test_a_script_and_a_loaded_program_are_found(tmp_path: Path) -> None:
    hashes = ExecutableHashes()
    python = os.path.realpath(sys.executable)
    who = identify_process(hashes, None, python, ["python3", "-u", "up.py", "--to", "x"], cwd=str(tmp_path))
    assert who.interpreter == "python" and who.script == str(tmp_path / "up.py")
    assert who.program == python and who.program_sha256 == who.executable_sha256
    if os.path.exists(LDSO):
        curl = real("curl")
        who = identify_process(hashes, None, os.path.realpath(LDSO), [LDSO, "--argv0", "python3", curl, "-V"])
        assert who.program == curl and who.interpreter is None
        assert who.program_sha256 == hashlib.sha256(Path(curl).read_bytes()).hexdigest() != who.executable_sha256
