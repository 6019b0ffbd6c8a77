"""Real kernel interfaces: fanotify, the proc connector, sock_diag, network namespaces. Each test that
needs one skips with the reason the probe gave when this kernel or privilege does not offer it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from tests.waiting import wait_for  # noqa: F401 - re-exported for the tests of this folder
from weightwarden.agent.processes import ProcessCache
from weightwarden.agent.sensors import fanotify
from weightwarden.agent.sensors.access import AccessObservation, AccessSensor
from weightwarden.agent.sensors.files import SensorHealth
from weightwarden.agent.sensors.processes import ProcConnectorSensor, proc_connector_unavailable

PYTHON = sys.executable




def require_fanotify() -> None:
    why = fanotify.unavailable()
    if why is not None:
        pytest.skip(f"fanotify unavailable here: {why}")


def require_proc_connector() -> None:
    why = proc_connector_unavailable()
    if why is not None:
        pytest.skip(f"proc connector unavailable here: {why}")


class Collected:
    """Observations and health reports, thread-safe, with waiting helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[object] = []
        self.health: list[SensorHealth] = []

    def add(self, item: object) -> None:
        with self._lock:
            self.items.append(item)

    def add_health(self, health: SensorHealth) -> None:
        with self._lock:
            self.health.append(health)

    def access(self, kind: str, pid: int | None = None) -> list[AccessObservation]:
        with self._lock:
            return [o for o in self.items if isinstance(o, AccessObservation) and o.kind == kind
                    and (pid is None or o.process.pid == pid)]


@pytest.fixture
def cache() -> Iterator[ProcessCache]:
    require_proc_connector()
    cache = ProcessCache()
    sensor = ProcConnectorSensor(cache, lambda health: None)
    sensor.start()
    try:
        yield cache
    finally:
        sensor.stop()


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def access_sensor(cache: ProcessCache, collected: Collected) -> Iterator[AccessSensor]:
    require_fanotify()
    sensor = AccessSensor(cache, collected.add, collected.add_health)
    sensor.start()
    try:
        yield sensor
    finally:
        sensor.stop()
