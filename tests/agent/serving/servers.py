"""Start the real test model server (agent/serving/testing.py) and wait until it listens; ask it; watch it."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from weightwarden.agent.events import ModelFile
from weightwarden.agent.serving.held import loaded_models
from weightwarden.agent.serving.sensor import ServingSensor


def start_server(model: Path, host: str, *, token: str | None = None,
                 run_as: Sequence[str] = (), env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """The server (as `run_as` prefix, e.g. setpriv ...) and its port, once it answers."""
    argv = [*run_as, sys.executable, "-m", "weightwarden.agent.serving.testing", str(model), "--host", host,
            "--name", "llama-private"]
    if token:
        argv += ["--token", token]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env if env is not None else dict(os.environ))
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"the model server did not start: {line!r} {err!r}")
    return process, int(line)


def watching(model: ModelFile, seen: list[object], *, report_seconds: float = 0.2) -> ServingSensor:
    """A serving sensor that knows `model` as the one protected model, reporting into `seen`."""
    return ServingSensor(seen.append, seen.append, who=lambda pid: None, interval=0.2, report_seconds=report_seconds,
                         loaded=lambda pid: loaded_models(
                             pid, lambda device, inode: model if (device, inode) == (model.device, model.inode)
                             else None))


def ask(address: str, port: int, count: int, *, path: str = "/api/generate", source: str | None = None) -> int:
    """`count` requests, each on a new connection (from `source` when given); the answer bytes read."""
    total = 0
    for _ in range(count):
        connection = http.client.HTTPConnection(address, port, timeout=10,
                                                source_address=(source, 0) if source else None)
        try:
            connection.request("POST", path, body=b'{"prompt": "hi"}', headers={"Connection": "close"})
            answer = connection.getresponse()
            total += len(answer.read())
            assert answer.status == 200, answer.status
        finally:
            connection.close()
    return total


if __name__ == "__main__":  # a client run inside a network namespace: ADDRESS PORT COUNT [SOURCE]
    print(ask(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), source=sys.argv[4] if len(sys.argv) > 4 else None))


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
