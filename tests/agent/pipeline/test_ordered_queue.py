"""The ordered queue: a source's own order is kept, sources are merged by time, ties never depend on luck."""

from __future__ import annotations

import threading
from collections.abc import Callable

from weightwarden.agent.pipeline.ordered_queue import ObservationQueue


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def taken(queue: ObservationQueue) -> list[object]:
    return [item.observation for item in queue.take(0)]


def test_a_source_keeps_its_own_order_even_when_its_stamps_go_backwards() -> None:
    clock = Clock(1000.0)
    queue = ObservationQueue(clock=clock)
    emit = queue.emitter("access")
    emit("first", at=10.0)
    emit("second", at=9.0)  # a clock step back, or a late report: still after "first"
    clock.now = 2000.0
    assert taken(queue) == ["first", "second"]


def test_sources_are_merged_by_time_when_the_earlier_one_is_queued_later() -> None:
    clock = Clock(100.0)
    queue = ObservationQueue(window=0.05, clock=clock)
    network, access = queue.emitter("network"), queue.emitter("access")
    network("sent", at=100.02)
    access("read", at=100.01)  # stamped first, queued second: the scheduler ran the other thread first
    assert taken(queue) == []  # neither is older than the window yet
    clock.now = 100.2
    assert taken(queue) == ["read", "sent"]


def test_an_observation_is_released_only_once_older_than_the_window() -> None:
    clock = Clock(50.0)
    queue = ObservationQueue(window=0.5, clock=clock)
    emit = queue.emitter("files")
    emit("a")  # stamped now: 50.0
    clock.now = 50.4
    assert taken(queue) == [] and len(queue) == 1
    clock.now = 50.5
    assert taken(queue) == ["a"] and len(queue) == 0


def test_take_waits_for_the_window_of_what_is_queued() -> None:
    queue = ObservationQueue(window=0.05)
    queue.emitter("files")("a")
    assert [i.observation for i in queue.take(2.0)] == ["a"]  # returns once due, well before 2 s
    assert queue.take(0.01) == []


def test_drain_takes_everything_in_order_without_waiting() -> None:
    clock = Clock(10.0)
    queue = ObservationQueue(window=60, clock=clock)
    b, a = queue.emitter("b"), queue.emitter("a")
    b("b1", at=5.0)
    a("a1", at=5.0)  # a tie in time: the source's name decides, then its sequence
    a("a2", at=5.0)
    b("b0", at=4.0)  # source b never goes backwards: stamped 5.0, after b1
    assert [i.observation for i in queue.drain()] == ["a1", "a2", "b1", "b0"]


def test_a_wall_clock_step_back_neither_holds_nor_reorders_observations() -> None:
    wall = Clock(1_800_000_000.0)
    queue = ObservationQueue(window=0.01, wall=wall)
    emit = queue.emitter("files")
    emit("before the step")
    wall.now -= 3600  # NTP steps the clock back an hour
    emit("after the step")
    items = queue.take(2.0)
    items += queue.take(2.0) if len(items) < 2 else []
    assert [i.observation for i in items] == ["before the step", "after the step"]
    assert items[1].wall == items[0].wall - 3600  # the record time is the wall clock's, as it was


def test_the_agents_queue_releases_at_once_in_stamp_order_whatever_the_threads() -> None:
    queue = ObservationQueue()  # as the agent makes it: no window, the real clocks
    emitters = [queue.emitter(f"sensor-{n}") for n in range(8)]

    def hand_over(emit: Callable[[object], None], n: int) -> None:
        for number in range(500):
            emit((n, number))

    threads = [threading.Thread(target=hand_over, args=(emit, n)) for n, emit in enumerate(emitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    items = queue.take(0)  # nothing to wait for: what is queued is due
    assert len(items) == 8 * 500
    assert [i.time for i in items] == sorted(i.time for i in items)
    for n in range(8):  # each source's own order, exactly as handed over
        assert [i.observation for i in items if i.source == f"sensor-{n}"] == [(n, k) for k in range(500)]
