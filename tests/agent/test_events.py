from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Event,
    FileInfo,
    UuidV7Generator,
    display_path,
    format_time,
    id_time_ms,
    new_id,
    parse_time,
    raw_path_hex,
    utc_now,
)


def test_ids_are_uuid7_and_sort_by_creation_even_within_one_millisecond() -> None:
    generate = UuidV7Generator()
    ids = [generate(now_ms=1_700_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert id_time_ms(ids[0]) == 1_700_000_000_000


def test_ids_follow_the_clock() -> None:
    generate = UuidV7Generator()
    earlier, later = generate(now_ms=1_800_000_000_000), generate(now_ms=1_800_000_000_500)
    assert earlier < later
    assert id_time_ms(later) == 1_800_000_000_500
    assert generate(now_ms=1_700_000_000_000) > later  # a clock stepping back never reorders ids


def test_default_ids_carry_the_current_time() -> None:
    assert abs(id_time_ms(new_id()) - time.time() * 1000) < 5000


def test_ids_from_many_threads_are_unique() -> None:
    out: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [new_id() for _ in range(1000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 4000


def test_times_are_utc_with_milliseconds() -> None:
    moment = datetime(2026, 11, 29, 16, 22, 37, 123456, tzinfo=UTC)
    assert format_time(moment) == "2026-11-29T16:22:37.123Z"
    assert parse_time("2026-11-29T16:22:37.123Z") == moment.replace(microsecond=123000)
    assert utc_now().microsecond % 1000 == 0


def test_events_are_frozen_and_render_ecs_shape() -> None:
    event = Event(Action.MODEL_CREATED, Category.FILE, "created", file=FileInfo(path="/m/a", size=3),
                  model="a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.model = "b"  # type: ignore[misc]
    record = json.loads(json.dumps(event.to_dict()))
    assert record["event"] == {"kind": "event", "action": "model-created", "category": "file", "severity": 0}
    assert record["file"] == {"path": "/m/a", "size": 3}


def test_alert_severity_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"0\.\.10"):
        Alert(rule_id="r", title="t", severity=11, message="m")


def test_non_utf8_paths_are_shown_escaped_and_kept_raw() -> None:
    raw = b"/models/caf\xe9.bin"
    assert display_path(raw) == "/models/caf\\xe9.bin"
    assert raw_path_hex(raw) == raw.hex()
    assert raw_path_hex("/models/plain") is None
    info = FileInfo.at(raw)
    assert bytes.fromhex(info.path_hex or "") == raw
    json.dumps(info.path).encode("utf-8")
