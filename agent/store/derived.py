"""The columns readers use, checked against the chained record they were derived from, and the review state
(an alert's `status`, its `latest` flag, the `alert_reviews` rows) rebuilt from chained content.

The app, `alerts`, filters, counts and sorts read columns (`severity`, `model`, `status`, `latest`...), not
the chained JSON: a column edited by someone with write access to the database would change what people
see while the chain stays intact. So `verify` derives every such column again from the chained record
(the same mapping `Store.write` applies) and compares, and rebuilds each alert's review status from the
chained `alert-reviewed` events in chain order, as the store's review write and incident trigger did
(store/review_queries.add_review, store/incidents.py). `check_rows` does the same for a handful of rows
(the ones on screen), so the app and the CLI can flag a row without walking the whole log.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from weightwarden.agent.events import parse_time

REVIEWED_ACTION = "alert-reviewed"
# A review is committed by the control socket at once and chained a moment later (it travels through the
# agent's queue and writer, store/writer.py flushes within a second): one younger than this may lack its
# chained event yet, and an incident update stored in that moment may show the status before the review.
REVIEW_IN_FLIGHT = timedelta(seconds=60)

# Column -> how it is derived from the chained record (store.store._event_row / _alert_row).
EVENT_COLUMNS = ("time", "action", "category", "severity", "model", "path", "process_pid")
ALERT_COLUMNS = ("time", "rule_id", "title", "severity", "model")


def _part(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def expected_event_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    event = _part(data, "event")
    file, process = data.get("file"), data.get("process")
    return (data.get("time"), event.get("action"), event.get("category"), event.get("severity"), data.get("model"),
            file.get("path") if isinstance(file, dict) else None,
            process.get("pid") if isinstance(process, dict) else None)


def expected_alert_columns(data: dict[str, Any]) -> tuple[Any, ...]:
    return data.get("time"), data.get("rule"), data.get("title"), data.get("severity"), data.get("model")


def column_problem(kind: str, data: dict[str, Any], columns: Sequence[Any]) -> str | None:
    """Which stored column disagrees with the chained record, said as verify says it; None when all agree."""
    names, expected = ((EVENT_COLUMNS, expected_event_columns(data)) if kind == "event"
                       else (ALERT_COLUMNS, expected_alert_columns(data)))
    for name, stored, wanted in zip(names, columns, expected, strict=True):
        if stored != wanted:
            return f"its {name} column says {stored!r}, the chained record says {wanted!r}"
    return None


def incident_of(data: dict[str, Any]) -> str:
    incident = _part(data, "evidence").get("incident")
    return incident if isinstance(incident, str) and incident else str(data.get("id"))


def checkpoint_details(kind: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The signed fields of a checkpoint, from chained content only: a `chain-checkpoint` event's details,
    or the shutdown signature an `agent-stopped` event carries in details.checkpoint."""
    if kind != "event":
        return None
    action = _part(data, "event").get("action")
    details = _part(data, "details")
    if action == "chain-checkpoint":
        return details
    if action == "agent-stopped" and isinstance(details.get("checkpoint"), dict):
        return dict(details["checkpoint"])
    return None


def chained_action(kind: str, data: dict[str, Any]) -> str | None:
    return _part(data, "event").get("action") if kind == "event" else None


# ------------------------------------------------------------------------------------ review state


@dataclass(frozen=True)
class ChainedReview:
    sequence: int  # of the alert-reviewed event
    review: dict[str, Any]  # its details: id, time, alert_id, action, status, text, uid, user


@dataclass(frozen=True)
class StateProblem:
    record_id: str
    sequence: int
    message: str


@dataclass
class _Row:
    id: str
    sequence: int
    severity: Any
    status: str | None  # as stored
    latest: int
    record_time: str
    expected: str = "open"
    escalated: bool = False
    also: set[str] = field(default_factory=set)  # statuses a review in flight explains


def replay_incident(rows: list[tuple[str, int, str, str | None, int]], reviews: list[ChainedReview]
                    ) -> list[StateProblem]:
    """Rebuild status and `latest` of one incident's rows (id, sequence, record JSON, status, latest; in insert
    order) from their chained records and the incident's chained reviews; the rows whose columns differ."""
    built: list[_Row] = []
    queue = sorted(reviews, key=lambda r: r.sequence)
    steps: list[tuple[int, int, Any]] = [(row[1], 0, row) for row in rows] + [(r.sequence, 1, r) for r in queue]
    for _sequence, order, item in sorted(steps, key=lambda step: (step[0], step[1])):
        if order == 0:
            row_id, sequence, record, status, latest = item
            data = json.loads(record)
            row = _Row(row_id, sequence, data.get("severity"), status, int(latest or 0), str(data.get("time", "")))
            if built:  # an update inherits the incident's status unless it raises the severity (incidents.py)
                before = built[-1]
                escalates = isinstance(row.severity, int) and isinstance(before.severity, int) \
                    and row.severity > before.severity
                row.expected = "open" if escalates else before.expected
                row.escalated = escalates
            else:
                row.expected = str(data.get("status") or "open")
            built.append(row)
            continue
        status = item.review.get("status")
        if not status:
            continue  # a justification: no status change
        for row in built:
            if row.escalated and row.expected == "open" and status != "open" and _in_flight(item, row):
                row.also.add("open")  # the review was committed before this update was stored, chained after
            row.expected = str(status)
    problems = []
    for index, row in enumerate(built):
        stored = row.status or "open"
        if stored != row.expected and stored not in row.also:
            problems.append(StateProblem(row.id, row.sequence, f"its status column says {stored!r}, the chained "
                                                               f"review events make it {row.expected!r}"))
        elif row.latest != (index == len(built) - 1):
            problems.append(StateProblem(row.id, row.sequence, f"its latest column says {row.latest}: it is "
                                                               f"{'' if index == len(built) - 1 else 'not '}the "
                                                               "newest state of its incident"))
    return problems


def _in_flight(review: ChainedReview, row: _Row) -> bool:
    try:
        made = parse_time(str(review.review.get("time")))
        stored = parse_time(row.record_time)
    except ValueError:
        return False
    return review.sequence > row.sequence and made - stored <= REVIEW_IN_FLIGHT


def incident_rows(conn: sqlite3.Connection, incident: str) -> list[tuple[str, int, str, str | None, int]]:
    return conn.execute("select id, sequence, record, status, latest from alerts where incident = ? order by rowid",
                        [incident]).fetchall()


def review_table_problems(conn: sqlite3.Connection, chained: Iterable[ChainedReview], *, newest_chained_time: str,
                          now: datetime) -> list[StateProblem]:
    """The `alert_reviews` rows (what the detail view lists) against the chained review events."""
    columns = ("id", "time", "alert_id", "action", "status", "text", "uid", "user")
    stored = {row[0]: dict(zip(columns, row, strict=True)) for row in conn.execute(
        f"select {', '.join(columns)} from alert_reviews")}
    problems = []
    for item in chained:
        review = item.review
        row = stored.pop(str(review.get("id")), None)
        if row is None:
            problems.append(StateProblem(str(review.get("alert_id")), item.sequence,
                                         f"review {review.get('id')} ({review.get('action')} by {review.get('user')})"
                                         " is chained but was removed from the review table"))
        elif any(row[key] != review.get(key) for key in columns):
            changed = ", ".join(key for key in columns if row[key] != review.get(key))
            problems.append(StateProblem(str(review.get("alert_id")), item.sequence,
                                         f"review {review.get('id')} was altered in the review table ({changed})"))
    for row in stored.values():
        if _recent(row["time"], newest_chained_time, now):
            continue  # made a moment ago: its chained event is on its way
        problems.append(StateProblem(str(row["alert_id"]), 0,
                                     f"review {row['id']} ({row['action']} by {row['user']}) is in the review table "
                                     "but not in the chain: it was inserted"))
    return problems


def _recent(time_text: str, newest_chained_time: str, now: datetime) -> bool:
    try:
        made = parse_time(time_text)
    except (TypeError, ValueError):
        return False
    return time_text >= newest_chained_time and now - made <= REVIEW_IN_FLIGHT and made <= now + REVIEW_IN_FLIGHT


# ------------------------------------------------------------------------------------ a few rows at once


def chained_reviews(conn: sqlite3.Connection, alert_ids: Iterable[str], *,
                    near: Sequence[str] | None = None) -> list[ChainedReview]:
    """The chained review events of some alerts. `near`: review times from the review table; their events are
    chained within seconds after, so only those moments are searched (the time index); None reads every
    `alert-reviewed` event (the `action` column finds them; a relabelled one is the full verify's to find)."""
    wanted = set(alert_ids)
    if near is None:
        rows = conn.execute("select sequence, record from events where action = ? order by sequence",
                            [REVIEWED_ACTION]).fetchall()
    else:
        rows = []
        for moment in sorted(set(near)):
            try:
                until = parse_time(moment) + REVIEW_IN_FLIGHT
            except ValueError:
                continue
            rows += conn.execute("select sequence, record from events where time >= ? and time <= ? and action = ?",
                                 [moment, until.strftime("%Y-%m-%dT%H:%M:%S.999Z"), REVIEWED_ACTION]).fetchall()
    found: dict[int, ChainedReview] = {}
    for sequence, record in rows:
        details = _part(json.loads(record), "details")
        if details.get("alert_id") in wanted:
            found[int(sequence)] = ChainedReview(int(sequence), details)
    return sorted(found.values(), key=lambda review: review.sequence)


def check_rows(conn: sqlite3.Connection, ids: Sequence[str], *, now: datetime) -> dict[str, str]:
    """For alerts on screen: id -> why verify rejects the row (its columns, its link to the record before it,
    its review status), for the rows with a problem. A few milliseconds for a page of rows; a chain rewritten
    from an earlier point and relinked is only found by the signatures (`weightwarden verify`)."""
    from weightwarden.agent.store.chain import GENESIS, link

    if not ids:
        return {}
    flagged: dict[str, str] = {}
    rows = conn.execute(f"select id, sequence, record, chain_hash, {', '.join(ALERT_COLUMNS)}, incident from alerts"
                        " where id in (select value from json_each(?))", [json.dumps(list(ids))]).fetchall()
    incidents: set[str] = set()
    for row_id, sequence, record, chain_hash, *columns, incident in rows:
        try:
            data = json.loads(record)
        except ValueError:
            flagged[row_id] = "its record is not JSON"
            continue
        problem = column_problem("alert", data, columns)
        if problem is None and (data.get("id") != row_id or data.get("sequence") != sequence):
            problem = "its id or sequence column differs from the chained record"
        if problem is None:
            before = conn.execute("select chain_hash from events where sequence = ? union all"
                                  " select chain_hash from alerts where sequence = ?",
                                  [sequence - 1, sequence - 1]).fetchall()
            previous = before[0][0] if len(before) == 1 else GENESIS if sequence == 1 else None
            if previous is None or chain_hash != link(previous, "alert", record):
                problem = "its content no longer matches its chain link"
        if problem:
            flagged[row_id] = problem
        incidents.add(incident or row_id)
    for incident in incidents:
        for state in _incident_state(conn, incident, now):
            if state.record_id in ids and state.record_id not in flagged:
                flagged[state.record_id] = state.message
    return flagged


def _incident_state(conn: sqlite3.Connection, incident: str, now: datetime) -> list[StateProblem]:
    members = incident_rows(conn, incident)
    member_ids = [member[0] for member in members]
    reviewed = [r[0] for r in conn.execute("select time from alert_reviews where alert_id in"
                                           " (select value from json_each(?))", [json.dumps(member_ids)])]
    plain = len(members) == 1 and not reviewed and (members[0][3] or "open") == "open" and members[0][4] == 1 \
        and '"status": "open"' in members[0][2]
    if plain:  # one state, never reviewed, shown as recorded: nothing to rebuild
        return []
    problems = replay_incident(members, chained_reviews(conn, member_ids, near=reviewed))
    if problems:  # the quick look found something: the answer comes from every chained review
        problems = replay_incident(members, chained_reviews(conn, member_ids))
    if problems and _pending_review(conn, incident, now):
        problems = [p for p in problems if not p.message.startswith("its status")]
    return problems


def _pending_review(conn: sqlite3.Connection, incident: str, now: datetime) -> bool:
    row = conn.execute("select max(time) from alert_reviews where alert_id in"
                       " (select id from alerts where incident = ?)", [incident]).fetchone()
    if not row or not row[0]:
        return False
    try:
        return now - parse_time(row[0]) <= REVIEW_IN_FLIGHT
    except ValueError:
        return False
