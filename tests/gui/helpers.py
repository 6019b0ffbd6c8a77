"""Databases for the app's tests, written through the real store, and an agent running in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from weightwarden.agent.config import load_config
from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Destination,
    Event,
    FileInfo,
    ModelFile,
    ProcessInfo,
    utc_now,
)
from weightwarden.agent.store import Store

if TYPE_CHECKING:
    from weightwarden.agent.service import Agent

RULES = ("model-copy", "egress-budget", "canary-touched")
PROCESSES = ("rsync", "python3", "firefox", "aws")


def make_alert(i: int, *, severity: int | None = None, minutes_ago: int | None = None) -> Alert:
    model = f"model-{i % 4}"
    process = PROCESSES[i % len(PROCESSES)]
    return Alert(
        rule_id=RULES[i % len(RULES)], title=f"Copy of protected model {model}",
        severity=severity if severity is not None else i % 11,
        message=f"/tmp/stage/copy-{i}.safetensors is a copy of /models/{model}/model.safetensors",
        paths=(f"/models/{model}/model.safetensors", f"/tmp/stage/copy-{i}.safetensors"), model=model,
        process=ProcessInfo(pid=1000 + i, name=process, command_line=f"{process} --job {i}", user="ana", ppid=1),
        destination=Destination(kind="temporary", path=f"/tmp/stage/copy-{i}.safetensors"),
        evidence={"source_path": f"/models/{model}/model.safetensors", "copy_path": f"/tmp/stage/copy-{i}.safetensors",
                  "format": "safetensors", "size": 4096, "matched_on": "sha256", "sha256": "ab" * 32,
                  "quick_fingerprint": "q" * 32, "bytes_sent": 1024},
        time=utc_now() - timedelta(minutes=minutes_ago if minutes_ago is not None else 300 - i),
    )


def make_database(path: Path, alerts: int = 30) -> Path:
    store = Store(path)
    try:
        store.upsert_model_files([ModelFile(path=f"/models/model-{m}/model.safetensors", format="safetensors",
                                            size=4096 * (m + 1), model=f"model-{m}", sha256="ab" * 32)
                                  for m in range(4)], seen=utc_now())
        store.write([Event(Action.MODEL_CREATED, Category.FILE, "model created: /tmp/stage/copy-0.safetensors",
                           file=FileInfo(path="/tmp/stage/copy-0.safetensors"), model="model-0",
                           time=utc_now() - timedelta(minutes=301))])
        store.write([make_alert(i) for i in range(alerts)])
        store.write([Event(Action.AGENT_STARTED, Category.HOST, "started",
                           details={"mode": "user", "coverage": "reduced", "version": "test", "host": "h"}),
                     Event(Action.SENSOR_HEALTH, Category.HOST, "files: running: ok",
                           details={"sensor": "files", "status": "running"})])
    finally:
        store.close()
    return path


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def running_agent(tmp_path: Path, *, admin_group: str = "", extra_config: str = "") -> Iterator[Agent]:
    """A real agent (user mode) on a data dir under tmp_path, serving its control socket, in a thread."""
    from weightwarden.agent.service import Agent

    for name in ("models", "watch", "data"):
        (tmp_path / name).mkdir(exist_ok=True)
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[agent]\nmode = "user"\ndata_dir = "{tmp_path / "data"}"\nadmin_group = "{admin_group}"\n\n'
        f'[inventory]\nroots = ["{tmp_path / "models"}"]\nscan_on_start = false\n\n'
        f'[watch]\nroots = ["{tmp_path / "watch"}"]\n\n[store]\nflush_seconds = 0.05\n\n{extra_config}')
    agent = Agent(load_config(config_file))
    agent.config_file = config_file  # type: ignore[attr-defined]
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), name="test-agent")
    thread.start()
    try:
        wait_until(lambda: Path(agent.control.path).exists(), what="the control socket")
        yield agent
    finally:
        stop.set()
        thread.join(30)
