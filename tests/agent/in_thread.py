"""A real Agent running in a thread of the test process, stopped (and checked to stop) on exit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from weightwarden.agent.config import Config
from weightwarden.agent.service import Agent


@contextmanager
def agent_in_thread(config: Config, *, stop_seconds: float = 60) -> Iterator[Agent]:
    agent = Agent(config)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), name="agent-under-test")
    thread.start()
    try:
        yield agent
    finally:
        stop.set()
        thread.join(timeout=stop_seconds)
        assert not thread.is_alive(), "the agent did not stop"
