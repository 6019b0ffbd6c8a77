"""Databases for the app's tests, written through the real store, and an agent running in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tests.gui import real_alerts
from weightwarden.agent.config import load_config
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ModelFile, utc_now
from weightwarden.agent.store import Store

if TYPE_CHECKING:
    from weightwarden.agent.service import Agent

PROCESSES = ("rsync", "python3", "firefox", "aws")  # make_alert(i)'s process: PROCESSES[i % 4], run by ana


def make_alert(i: int, *, severity: int | None = None, minutes_ago: int | None = None) -> Alert:
    """Alert number i, as the engine raises it (tests/gui/real_alerts.py); severity i % 11 unless given.

    Every one is about /tmp/stage/copy-{i}.safetensors, a staged copy of model-{i % 4}:
    rsync sends it to a backup host (transfer-tool-sent-model), or reads it as a planted canary
    (canary-model-accessed, every other rsync); python3 writes it (model-copy, temporary); firefox uploads
    it (model-egress-budget); aws copies it to a bucket (transfer-tool-sent-model).
    """
    model = f"model-{i % 4}"
    name = PROCESSES[i % len(PROCESSES)]
    staged = f"/tmp/stage/copy-{i}.safetensors"
    when = utc_now() - timedelta(minutes=minutes_ago if minutes_ago is not None else 300 - i)
    level = severity if severity is not None else i % 11
    pid = 1000 + i
    if name == "rsync":
        who = real_alerts.process(name, pid, f"rsync -av {staged} backup-host:/srv/models/")
        scenario = real_alerts.canary if i % 8 == 4 else real_alerts.transfer
        return scenario(model, staged, who, when=when, severity=level)
    if name == "python3":
        who = real_alerts.process(name, pid, "python3 export.py --out /tmp/stage")
        return real_alerts.copy(model, f"/models/{model}/model.safetensors", staged, "temporary", who, when=when,
                                severity=level, sha256="ab" * 32)
    if name == "firefox":
        who = real_alerts.process(name, pid, "/usr/lib/firefox/firefox")
        return real_alerts.egress(model, staged, who, f"203.0.113.{i % 250}", 0.5 + (i % 5) / 10, when=when,
                                  severity=level)
    who = real_alerts.process(name, pid, f"aws s3 cp {staged} s3://acme-scratch/models/")
    return real_alerts.transfer(model, staged, who, when=when, severity=level)


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
