"""Reads for reviewing alerts (paged, filtered, sorted) and the one write the control socket makes.

Keyset pagination: a page continues after the last row's (sort value, sequence), so page 4,000 of a
million alerts costs what page 1 costs; an OFFSET would rescan every row before it. Each sortable
column has an index on (column, sequence) (review_schema.alert_search).

One alert per incident: an incident's updates are stored as new alert rows (append-only), and every
listing, count and aggregate here shows only the latest row of each incident (`latest = 1`, kept by
the trigger of store/incidents.py) with its `updates` count, unless a filter asks for every update.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from weightwarden.agent.alert_evidence import AlertEvidence, evidence_from
from weightwarden.agent.events import format_time, new_id, utc_now
from weightwarden.agent.store import derived, review_schema

STATUSES = ("open", "acknowledged", "resolved", "false-positive")
REVIEW_ACTIONS = {"justify": None, "acknowledge": "acknowledged", "resolve": "resolved",
                  "false-positive": "false-positive", "reopen": "open"}

# Sortable columns: the SQL expression each sorts by (the same expression its index is built on).
# Alerts are appended in sequence order and never deleted, so rowid order is time order: sorting "time"
# by rowid walks the table's own b-tree, and FTS5 can hand matches over in rowid order too.
SORT_KEYS = {"time": "rowid", "severity": "severity", "rule": "rule_id", "model": "coalesce(model, '')",
             "status": "status"}
_COLUMNS = "rowid, id, sequence, time, severity, rule_id, title, model, status, record, incident, updates"
_JOINED_COLUMNS = ("a.rowid, a.id, a.sequence, a.time, a.severity, a.rule_id, a.title, a.model, a.status, a.record,"
                   " a.incident, a.updates")
COUNT_CAP = 100_000  # a free-text count stops here ("more than 100,000"): counting every match costs seconds


@dataclass(frozen=True)
class AlertFilter:
    """What the alerts view shows. Empty fields do not filter."""

    min_severity: int = 0
    statuses: tuple[str, ...] = ()
    rule: str | None = None
    model: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    every_update: bool = False  # every stored update of an incident, not only its latest state


@dataclass(frozen=True)
class AlertSort:
    key: str = "time"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.key not in SORT_KEYS:
            raise ValueError(f"cannot sort alerts by {self.key!r}; sortable: {', '.join(SORT_KEYS)}")


@dataclass(frozen=True)
class AlertRow:
    """One alert as the app lists it: the stored record plus its current review status."""

    rowid: int
    id: str
    sequence: int
    time: str
    severity: int
    rule: str
    title: str
    model: str | None
    status: str
    record_json: str = field(repr=False)  # parsed on use: a million loaded rows stay small
    incident: str | None = None  # the id of the incident's first alert (its own id for a first alert)
    updates: int = 0  # how many updates of the incident came before and including this row

    @property
    def record(self) -> dict[str, Any]:
        """The stored record (Alert.to_dict() shape)."""
        value: dict[str, Any] = json.loads(self.record_json)
        return value

    @property
    def evidence(self) -> AlertEvidence:
        """The alert's evidence as the typed kind it was written as (agent/alert_evidence.py), any record age."""
        return evidence_from(self.record.get("evidence"))

    def sort_value(self, key: str) -> Any:
        return {"time": self.rowid, "severity": self.severity, "rule": self.rule,
                "model": self.model or "", "status": self.status}[key]


def fts_query(text: str) -> str:
    """User text as an FTS5 query: every word must appear; the last one may be a prefix.

    Each word becomes a quoted phrase, so FTS syntax in what people type (AND, -, :, quotes) is literal.
    """
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return ""
    phrases = [f'"{w}"' for w in words]
    # Prefix-match the last word only when it ends in a few letters: "42*" would expand to every number
    # token starting with 42 (pids, sizes, paths) and cost seconds on a large log.
    tail = re.split(r"[^\w]+", words[-1].strip('"'))[-1] if words[-1] else ""
    if len(tail) >= 3 and not tail.isdigit():
        phrases[-1] += "*"
    return " ".join(phrases)


def _where(flt: AlertFilter, *, with_text: bool = True, table: str = "",
           latest_by_index: bool = True) -> tuple[list[str], list[Any]]:
    """SQL conditions for a filter; `table` prefixes the columns ("a." when alerts is joined).

    `latest_by_index=False` writes the latest-state test as `+latest = 1`: the unary plus keeps SQLite from
    walking a (latest, ...) index when a rowid range or FTS5 should drive the scan (live updates, free
    text), which it otherwise prefers and which turns a 1 ms lookup into a scan of every latest row.
    """
    t = table
    latest = f"{t}latest = 1" if latest_by_index else f"+{t}latest = 1"
    clauses: list[str] = [] if flt.every_update else [latest]
    params: list[Any] = []
    if flt.min_severity > 0:
        clauses.append(f"{t}severity >= ?")
        params.append(flt.min_severity)
    if flt.statuses:
        clauses.append(f"{t}status in ({', '.join('?' for _ in flt.statuses)})")
        params.extend(flt.statuses)
    if flt.rule:
        clauses.append(f"{t}rule_id = ?")
        params.append(flt.rule)
    if flt.model:
        clauses.append(f"coalesce({t}model, '') = ?")
        params.append(flt.model)
    if flt.since is not None:
        clauses.append(f"{t}time >= ?")
        params.append(format_time(flt.since))
    if flt.until is not None:
        clauses.append(f"{t}time < ?")
        params.append(format_time(flt.until))
    query = fts_query(flt.text)
    if query and with_text:
        clauses.append(f"{t}rowid in (select rowid from alerts_fts where alerts_fts match ?)")
        params.append(query)
    return clauses, params


def _row(row: Sequence[Any]) -> AlertRow:
    return AlertRow(rowid=row[0], id=row[1], sequence=row[2], time=row[3], severity=row[4], rule=row[5],
                    title=row[6], model=row[7], status=row[8] or "open", record_json=row[9],
                    incident=row[10] or row[1], updates=row[11] or 0)


def alert_page(conn: sqlite3.Connection, flt: AlertFilter, sort: AlertSort, *,
               after: tuple[Any, int] | None = None, limit: int = 200) -> list[AlertRow]:
    """Up to `limit` alerts in `sort` order, continuing after the key (sort value, sequence) given."""
    if sort.key == "time" and fts_query(flt.text):
        return _text_page_by_time(conn, flt, sort, after, limit)
    clauses, params = _where(flt)
    expression = SORT_KEYS[sort.key]
    direction = "desc" if sort.descending else "asc"
    if after is not None:
        if sort.key == "time":  # rowid order is sequence order; the (latest, sequence) index serves both
            clauses.append(f"sequence {'<' if sort.descending else '>'} ?")
            params.append(after[1])
        else:
            clauses.append(f"({expression}, sequence) {'<' if sort.descending else '>'} (?, ?)")
            params.extend(after)
    where = f" where {' and '.join(clauses)}" if clauses else ""
    order = "sequence" if sort.key == "time" else f"{expression} {direction}, sequence"
    sql = (f"select {_COLUMNS} from {_source_for_severity_floor(flt, sort)}{where}"
           f" order by {order} {direction} limit ?")
    return [_row(r) for r in conn.execute(sql, [*params, limit])]


def _text_page_by_time(conn: sqlite3.Connection, flt: AlertFilter, sort: AlertSort, after: tuple[Any, int] | None,
                       limit: int) -> list[AlertRow]:
    """Free text, newest first: FTS5 streams matches in rowid order and the scan stops after one page,
    instead of collecting every match (all of them, for a word most alerts contain) and sorting."""
    clauses, params = _where(flt, with_text=False, table="a.", latest_by_index=False)
    clauses.insert(0, "alerts_fts match ?")
    params.insert(0, fts_query(flt.text))
    if after is not None:
        clauses.append(f"f.rowid {'<' if sort.descending else '>'} ?")
        params.append(after[0])
    direction = "desc" if sort.descending else "asc"
    sql = (f"select {_JOINED_COLUMNS} from alerts_fts f join alerts a on a.rowid = f.rowid"
           f" where {' and '.join(clauses)} order by f.rowid {direction} limit ?")
    return [_row(r) for r in conn.execute(sql, [*params, limit])]


def alert_count(conn: sqlite3.Connection, flt: AlertFilter, cap: int | None = COUNT_CAP) -> int:
    """How many alerts match; with free text, at most `cap` + 1 (more means "over cap")."""
    query = fts_query(flt.text)
    if query and cap is not None:
        clauses, params = _where(flt, with_text=False, table="a.", latest_by_index=False)
        if not clauses or clauses == ["+a.latest = 1"]:
            sql = "select count(*) from (select 1 from alerts_fts where alerts_fts match ? limit ?)"
            matches = int(conn.execute(sql, [query, cap + 1]).fetchone()[0])
            if not clauses:
                return matches
            # Superseded incident states are few: count the matches among them (the latest index finds them)
            # and take them off, instead of joining every match to its row to test `latest`.
            superseded = int(conn.execute(
                "select count(*) from alerts where latest = 0 and rowid in"
                " (select rowid from alerts_fts where alerts_fts match ?)", [query]).fetchone()[0])
            if matches <= cap or superseded == 0:
                return matches - superseded
        # FTS5 drives: the matches are streamed and the count stops at the cap.
        sql = (f"select count(*) from (select 1 from alerts_fts f join alerts a on a.rowid = f.rowid"
               f" where alerts_fts match ? and {' and '.join(clauses)} limit ?)")
        return int(conn.execute(sql, [query, *params, cap + 1]).fetchone()[0])
    clauses, params = _where(flt)
    where = f" where {' and '.join(clauses)}" if clauses else ""
    return int(conn.execute(f"select count(*) from alerts{where}", params).fetchone()[0])


@dataclass(frozen=True)
class _Positions:
    """The matching alerts as index entries only: SQLite walks the (column, sequence) index, or the sequence
    index for time (rowid order is sequence order), or FTS5's rowids, and never reads an alert record."""

    source: str  # from ...
    clauses: list[str]
    params: list[Any]
    rowid: str  # the rowid column of `source`
    time: str  # the column time order follows in `source`

    def select(self, extra: str = "") -> str:
        clauses = [*self.clauses, extra] if extra else self.clauses
        return f"select {self.rowid} from {self.source}" + (f" where {' and '.join(clauses)}" if clauses else "")

    def order(self, sort: AlertSort) -> str:
        direction = "desc" if sort.descending else "asc"
        if sort.key == "time":
            return f"{self.time} {direction}"
        return f"{SORT_KEYS[sort.key]} {direction}, sequence {direction}"


def _positions(flt: AlertFilter, sort: AlertSort) -> _Positions:
    query = fts_query(flt.text)
    if sort.key == "time" and query:
        clauses, params = _where(flt, with_text=False, table="a.", latest_by_index=False)
        if not clauses:
            return _Positions("alerts_fts", ["alerts_fts match ?"], [query], "rowid", "rowid")
        return _Positions("alerts_fts f join alerts a on a.rowid = f.rowid", ["alerts_fts match ?", *clauses],
                          [query, *params], "f.rowid", "f.rowid")
    clauses, params = _where(flt)
    return _Positions(_source_for_severity_floor(flt, sort), clauses, params, "rowid", "sequence")


def _source_for_severity_floor(flt: AlertFilter, sort: AlertSort) -> str:
    """A severity floor alone, ordered by another column: SQLite would take every alert above the floor from
    the severity index and sort them all (a second, a million alerts in) before counting an offset. Walking
    the sort order's own index and testing each row's severity reaches the first pages in milliseconds and a
    deep offset no slower (bench/gui_alerts.py). Only for the floor: an equality filter (status, rule,
    model) or a time range is better served by its own index, and can be too selective to walk past."""
    lone_floor = (flt.min_severity > 0 and not (flt.every_update or flt.statuses or flt.rule or flt.model
                                                 or flt.since or flt.until or fts_query(flt.text)))
    # (ordered by severity, the floor is a range of the order's own index: SQLite needs no help)
    return f"alerts indexed by {review_schema.latest_index(sort.key)}" if lone_floor and sort.key != "severity" \
        else "alerts"


def alert_page_at(conn: sqlite3.Connection, flt: AlertFilter, sort: AlertSort, offset: int,
                  limit: int = 200) -> list[AlertRow]:
    """Up to `limit` alerts from position `offset` (0 = first) in `sort` order: jump anywhere in the list.

    The OFFSET is counted over index entries only (_Positions), which costs tens of milliseconds even a
    million rows in, where counting over the table's own rows costs seconds; only the page's rows are
    then read. Measured in bench/gui_alerts.py.
    """
    positions = _positions(flt, sort)
    sql = (f"select {_COLUMNS} from alerts where rowid in"
           f" ({positions.select()} order by {positions.order(sort)} limit ? offset ?)")
    rows = [_row(r) for r in conn.execute(sql, [*positions.params, limit, max(offset, 0)])]
    rows.sort(key=lambda r: (r.sort_value(sort.key), r.sequence), reverse=sort.descending)
    return rows


def alert_position(conn: sqlite3.Connection, flt: AlertFilter, sort: AlertSort, alert_id: str) -> int | None:
    """Where an alert stands in `sort` order among the alerts matching `flt` (None: it does not match)."""
    clauses, params = _where(flt)
    found = conn.execute(f"select {_COLUMNS} from alerts where {' and '.join(['id = ?', *clauses])}",
                         [alert_id, *params]).fetchone()
    if found is None:
        return None
    row = _row(found)
    positions = _positions(flt, sort)
    ahead = ">" if sort.descending else "<"  # the rows that come before it in this order
    if sort.key != "time":
        condition, key = f"({SORT_KEYS[sort.key]}, sequence) {ahead} (?, ?)", [row.sort_value(sort.key), row.sequence]
    else:
        condition, key = f"{positions.time} {ahead} ?", [row.sequence if positions.time == "sequence" else row.rowid]
    sql = f"select count(*) from ({positions.select(condition)})"
    return int(conn.execute(sql, [*positions.params, *key]).fetchone()[0])


def alerts_after(conn: sqlite3.Connection, sequence: int, flt: AlertFilter, limit: int = 10_000) -> list[AlertRow]:
    """Alerts stored after `sequence` that match the filter, newest first (live updates).

    Starts from the newest rows (sequence index, or FTS5 from a rowid), never from the set of all matches.
    """
    # (min(rowid) would walk the table by rowid; the sequence index finds the first new row directly)
    found = conn.execute("select rowid from alerts where sequence > ? order by sequence limit 1",
                         [sequence]).fetchone()
    if found is None:
        return []
    first = found[0]
    if fts_query(flt.text):
        clauses, params = _where(flt, with_text=False, table="a.", latest_by_index=False)
        clauses[0:0] = ["alerts_fts match ?", "f.rowid >= ?"]
        params[0:0] = [fts_query(flt.text), first]
        sql = (f"select {_JOINED_COLUMNS} from alerts_fts f join alerts a on a.rowid = f.rowid"
               f" where {' and '.join(clauses)} order by f.rowid desc limit ?")
    else:
        clauses, params = _where(flt, latest_by_index=False)
        clauses.append("rowid >= ?")
        params.append(first)
        sql = f"select {_COLUMNS} from alerts where {' and '.join(clauses)} order by rowid desc limit ?"
    return [_row(r) for r in conn.execute(sql, [*params, limit])]


def alerts_of_user(conn: sqlite3.Connection, user: str, limit: int = 500) -> list[AlertRow]:
    """The newest alerts about one user's processes (`process.user`), for a user who may not read the
    database itself (system mode, not an admin): the agent serves them through its control socket."""
    clauses, params = _where(AlertFilter())
    clauses.append(f"{review_schema.PROCESS_USER} = ?")
    sql = (f"select {_COLUMNS} from alerts indexed by {review_schema.PROCESS_USER_INDEX}"
           f" where {' and '.join(clauses)} order by sequence desc limit ?")
    return [_row(r) for r in conn.execute(sql, [*params, user, limit])]


def alert_by_id(conn: sqlite3.Connection, alert_id: str) -> AlertRow | None:
    row = conn.execute(f"select {_COLUMNS} from alerts where id = ?", [alert_id]).fetchone()
    return _row(row) if row else None


def incident_alerts(conn: sqlite3.Connection, alert_id: str) -> list[AlertRow]:
    """Every stored state of the incident `alert_id` belongs to (any of its rows), oldest first."""
    rows = conn.execute(f"select {_COLUMNS} from alerts where incident = (select incident from alerts where id = ?)"
                        " order by rowid", [alert_id])
    return [_row(r) for r in rows]


def latest_alert_records(conn: sqlite3.Connection, *, since: datetime | None = None, limit: int | None = None,
                         every_update: bool = False) -> list[dict[str, Any]]:
    """Stored alert records oldest first (the newest `limit`), each incident once in its latest state,
    with `incident` and `updates` added (`weightwarden alerts`)."""
    clauses = [] if every_update else ["latest = 1"]
    params: list[Any] = []
    if since is not None:
        clauses.append("time >= ?")
        params.append(format_time(since))
    where = f" where {' and '.join(clauses)}" if clauses else ""
    params.append(-1 if limit is None else limit)
    rows = conn.execute(f"select record, incident, updates from (select record, incident, updates, sequence"
                        f" from alerts{where} order by sequence desc limit ?) order by sequence", params)
    return [{**json.loads(record), "incident": incident, "updates": updates or 0} for record, incident, updates in rows]


def alert_rules(conn: sqlite3.Connection) -> list[str]:
    """Distinct rule ids by hopping through the rule index: one seek per rule, not a scan of every alert."""
    rows = conn.execute(
        "with recursive r(rule) as (select min(rule_id) from alerts union all"
        " select (select min(rule_id) from alerts where rule_id > r.rule) from r where r.rule is not null)"
        " select rule from r where rule is not null")
    return [row[0] for row in rows]


def max_alert_sequence(conn: sqlite3.Connection) -> int:
    return int(conn.execute("select coalesce(max(sequence), 0) from alerts").fetchone()[0])


def reviews(conn: sqlite3.Connection, alert_id: str) -> list[dict[str, Any]]:
    """Reviews of the alert's whole incident (a review of an earlier state still applies), oldest first."""
    cursor = conn.execute("select id, time, alert_id, action, status, text, uid, user from alert_reviews"
                          " where alert_id in (select id from alerts where incident ="
                          " (select incident from alerts where id = ?)) order by rowid", [alert_id])
    return [_review(r) for r in cursor]


def reviews_after(conn: sqlite3.Connection, rowid: int) -> tuple[int, list[dict[str, Any]]]:
    """Reviews recorded after `rowid`, and the new high-water rowid (live status updates)."""
    rows = conn.execute("select rowid, id, time, alert_id, action, status, text, uid, user from alert_reviews"
                        " where rowid > ? order by rowid", [rowid]).fetchall()
    return (rows[-1][0] if rows else rowid), [_review(r[1:]) for r in rows]


def last_review_rowid(conn: sqlite3.Connection) -> int:
    return int(conn.execute("select coalesce(max(rowid), 0) from alert_reviews").fetchone()[0])


def _review(r: Sequence[Any]) -> dict[str, Any]:
    return {"id": r[0], "time": r[1], "alert_id": r[2], "action": r[3], "status": r[4], "text": r[5],
            "uid": r[6], "user": r[7]}


def add_review(conn: sqlite3.Connection, alert_id: str, action: str, *, uid: int, user: str,
               text: str = "") -> dict[str, Any]:
    """Record a justification or a status change (in the caller's transaction); KeyError if no such alert."""
    if action not in REVIEW_ACTIONS:
        raise ValueError(f"unknown review action {action!r}")
    if conn.execute("select 1 from alerts where id = ?", [alert_id]).fetchone() is None:
        raise KeyError(alert_id)
    status = REVIEW_ACTIONS[action]
    review = {"id": new_id(), "time": format_time(utc_now()), "alert_id": alert_id, "action": action,
              "status": status, "text": text, "uid": uid, "user": user}
    conn.execute("insert into alert_reviews (id, time, alert_id, action, status, text, uid, user)"
                 " values (:id, :time, :alert_id, :action, :status, :text, :uid, :user)", review)
    if status is not None:  # the status is the incident's: every stored state of it shows the same
        conn.execute("update alerts set status = ? where incident = (select incident from alerts where id = ?)",
                     [status, alert_id])
    return review


# ------------------------------------------------------------------ events, inventory, overview


def events_by_id(conn: sqlite3.Connection, ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = conn.execute("select record from events where id in (select value from json_each(?))"
                        " order by sequence", [json.dumps(list(ids))])
    return [json.loads(r[0]) for r in rows]


def events_for_paths(conn: sqlite3.Connection, paths: Sequence[str], limit: int = 200) -> list[dict[str, Any]]:
    """Events about any of the paths (lineage of a copy: created, moved, deleted), oldest first."""
    rows = conn.execute("select record from (select record, sequence from events where path in"
                        " (select value from json_each(?)) order by sequence desc limit ?) order by sequence",
                        [json.dumps(list(paths)), limit])
    return [json.loads(r[0]) for r in rows]


def model_summaries(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """One row per logical model in the inventory, with what the models view shows."""
    rows = conn.execute(
        "select model, group_concat(distinct format), sum(size), count(*), min(path), max(last_seen),"
        " max(coalesce(json_extract(details, '$.canary'), 0)), max(json_extract(details, '$.hf_repo'))"
        " from model_files where present = 1 group by model order by model").fetchall()
    summaries = []
    for model, formats, size, files, first_path, last_seen, canary, public_repo in rows:
        copies = conn.execute("select count(*) from alerts where coalesce(model, '') = ? and rule_id = ?"
                              " and latest = 1",
                              [model or "", "model-copy"]).fetchone()[0]
        activity = conn.execute("select max(time) from events where model = ?", [model]).fetchone()[0]
        summaries.append({
            "model": model, "formats": sorted(set((formats or "").split(","))), "size": size or 0,
            "files": files, "location": os.path.dirname(first_path or ""), "last_seen": last_seen,
            "last_activity": activity, "canary": bool(canary), "public_repo": public_repo, "copies": copies,
        })
    return summaries


def alert_histogram(conn: sqlite3.Connection, since: datetime, bucket: str) -> list[tuple[str, int, int]]:
    """(bucket, alerts, high-severity alerts) since a time; bucket is "hour" or "day"."""
    width = 13 if bucket == "hour" else 10
    rows = conn.execute(f"select substr(time, 1, {width}) b, count(*), sum(severity >= 7) from alerts"
                        " where time >= ? and latest = 1 group by b order by b", [format_time(since)])
    return [(r[0], r[1], r[2] or 0) for r in rows]


def _first_sequence_since(conn: sqlite3.Connection, since: datetime) -> int | None:
    row = conn.execute("select sequence from alerts where time >= ? order by time limit 1",
                       [format_time(since)]).fetchone()
    return None if row is None else int(row[0])


def top_alert_rules(conn: sqlite3.Connection, since: datetime, limit: int = 5) -> list[tuple[str, int]]:
    """Counted per rule over the (rule_id, sequence) index: a range count per rule, not a scan by time."""
    first = _first_sequence_since(conn, since)
    if first is None:
        return []
    counts = [(rule, int(conn.execute("select count(*) from alerts where rule_id = ? and sequence >= ? and latest = 1",
                                      [rule, first]).fetchone()[0])) for rule in alert_rules(conn)]
    return sorted([c for c in counts if c[1]], key=lambda c: (-c[1], c[0]))[:limit]


def top_alert_processes(conn: sqlite3.Connection, since: datetime, limit: int = 5) -> list[tuple[str, int]]:
    rows = conn.execute("select coalesce(json_extract(record, '$.process.name'), '(unknown)') p, count(*) n"
                        " from alerts where time >= ? and latest = 1 group by p order by n desc limit ?",
                        [format_time(since), limit])
    return [(r[0], r[1]) for r in rows]


def host_events(conn: sqlite3.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The latest agent health records (starts, stops, sensor health), newest first."""
    rows = conn.execute("select record from events where category = 'host' order by sequence desc limit ?",
                        [limit])
    return [json.loads(r[0]) for r in rows]


def event_count_since(conn: sqlite3.Connection, since: datetime) -> int:
    return int(conn.execute("select count(*) from events where time >= ?", [format_time(since)]).fetchone()[0])


class AlertReview:
    """The review API bound to one Store's connection and lock (`Store.review`)."""

    def __init__(self, conn: sqlite3.Connection, lock: Any, *, read_only: bool) -> None:
        self._conn = conn
        self._lock = lock
        self._read_only = read_only

    def data_version(self) -> int:
        """Changes whenever another connection commits: a cheap "anything new?" poll for readers."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def alert_page(self, flt: AlertFilter, sort: AlertSort, *, after: tuple[Any, int] | None = None,
                   limit: int = 200) -> list[AlertRow]:
        with self._lock:
            return alert_page(self._conn, flt, sort, after=after, limit=limit)

    def alert_count(self, flt: AlertFilter) -> int:
        with self._lock:
            return alert_count(self._conn, flt)

    def alert_page_at(self, flt: AlertFilter, sort: AlertSort, offset: int, limit: int = 200) -> list[AlertRow]:
        with self._lock:
            return alert_page_at(self._conn, flt, sort, offset, limit)

    def alert_position(self, flt: AlertFilter, sort: AlertSort, alert_id: str) -> int | None:
        with self._lock:
            return alert_position(self._conn, flt, sort, alert_id)

    def alerts_after(self, sequence: int, flt: AlertFilter, limit: int = 10_000) -> list[AlertRow]:
        with self._lock:
            return alerts_after(self._conn, sequence, flt, limit)

    def iter_alerts(self, flt: AlertFilter, sort: AlertSort, batch: int = 2000) -> Iterator[AlertRow]:
        after: tuple[Any, int] | None = None
        while True:
            page = self.alert_page(flt, sort, after=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = (page[-1].sort_value(sort.key), page[-1].sequence)

    def alerts_of_user(self, user: str, limit: int = 500) -> list[AlertRow]:
        with self._lock:
            return alerts_of_user(self._conn, user, limit)

    def alert(self, alert_id: str) -> AlertRow | None:
        with self._lock:
            return alert_by_id(self._conn, alert_id)

    def incident(self, alert_id: str) -> list[AlertRow]:
        with self._lock:
            return incident_alerts(self._conn, alert_id)

    def latest_records(self, *, since: datetime | None = None, limit: int | None = None,
                       every_update: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            return latest_alert_records(self._conn, since=since, limit=limit, every_update=every_update)

    def rules(self) -> list[str]:
        with self._lock:
            return alert_rules(self._conn)

    def max_sequence(self) -> int:
        with self._lock:
            return max_alert_sequence(self._conn)

    def reviews(self, alert_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return reviews(self._conn, alert_id)

    def reviews_after(self, rowid: int) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return reviews_after(self._conn, rowid)

    def last_review_rowid(self) -> int:
        with self._lock:
            return last_review_rowid(self._conn)

    def rejected(self, ids: Sequence[str]) -> dict[str, str]:
        """Alerts among `ids` whose row `verify` would reject (a column, the chain link, the review status):
        id -> why (store/derived.check_rows)."""
        with self._lock:
            return derived.check_rows(self._conn, ids, now=utc_now())

    def add_review(self, alert_id: str, action: str, *, uid: int, user: str, text: str = "") -> dict[str, Any]:
        if self._read_only:
            raise PermissionError("read-only store")
        with self._lock, self._conn:
            return add_review(self._conn, alert_id, action, uid=uid, user=user, text=text)

    def events_by_id(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        with self._lock:
            return events_by_id(self._conn, ids)

    def events_for_paths(self, paths: Sequence[str], limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            return events_for_paths(self._conn, paths, limit)

    def model_summaries(self) -> list[dict[str, Any]]:
        with self._lock:
            return model_summaries(self._conn)

    def alert_histogram(self, since: datetime, bucket: str) -> list[tuple[str, int, int]]:
        with self._lock:
            return alert_histogram(self._conn, since, bucket)

    def top_rules(self, since: datetime, limit: int = 5) -> list[tuple[str, int]]:
        with self._lock:
            return top_alert_rules(self._conn, since, limit)

    def top_processes(self, since: datetime, limit: int = 5) -> list[tuple[str, int]]:
        with self._lock:
            return top_alert_processes(self._conn, since, limit)

    def host_events(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            return host_events(self._conn, limit)

    def event_count_since(self, since: datetime) -> int:
        with self._lock:
            return event_count_since(self._conn, since)
