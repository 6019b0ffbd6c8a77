from __future__ import annotations

from weightwarden.agent.settle import Settler


def test_a_path_is_due_once_quiet_for_the_settle_time() -> None:
    settler = Settler(1.0)
    settler.touch("/m/a", now=10.0)
    settler.touch("/m/a", now=10.5)  # still being written
    assert settler.due(11.2) == []
    assert abs((settler.seconds_to_next(11.2) or 0) - 0.3) < 1e-9
    assert settler.due(11.5) == ["/m/a"]
    assert settler.due(99.0) == [] and settler.seconds_to_next(99.0) is None


def test_closing_after_writing_makes_a_path_due_at_once_and_wakes_the_loop() -> None:
    settler = Settler(60.0)
    settler.touch("/m/a", now=5.0)
    settler.wake.clear()
    settler.closed("/m/a")
    assert settler.wake.is_set()
    assert settler.seconds_to_next(5.0) == 0.0
    assert settler.due(5.0) == ["/m/a"]


def test_only_the_first_touch_wakes_the_loop() -> None:
    settler = Settler(1.0)
    settler.touch("/m/a", now=1.0)
    assert settler.wake.is_set()
    settler.wake.clear()
    for step in range(100):  # a write storm on a known path must not spin the agent's loop
        settler.touch("/m/a", now=1.0 + step / 100)
    assert not settler.wake.is_set()


def test_forget_drops_a_path() -> None:
    settler = Settler(0.1)
    settler.touch("/m/a", now=0.0)
    settler.forget("/m/a")
    assert settler.due(10.0) == [] and len(settler) == 0
