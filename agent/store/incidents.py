"""One alert per incident: the schema that lets readers list the latest state of each incident.

The detection engine records an update of an incident as a new alert (append-only, hash-chained: an
incident's history cannot be rewritten) whose evidence names the first alert (`evidence.incident`).
Migration 0008 gives every alert row its `incident` and `updates` (generated from the record, so the
agent's write path is unchanged) and a `latest` flag, 1 only on the newest row of its incident, kept by
an insert trigger. `latest` lives outside the chained `record`, like `status`.

An update inherits the incident's review status (acknowledged stays acknowledged while an upload goes
on), unless it raises the severity: an escalation is open again.
"""

from __future__ import annotations

import sqlite_utils

_INCIDENT = "coalesce(json_extract(new.record, '$.evidence.incident'), new.id)"


def alert_incidents(db: sqlite_utils.Database) -> None:
    db.execute("alter table alerts add column incident text"
               " as (coalesce(json_extract(record, '$.evidence.incident'), id)) virtual")
    db.execute("alter table alerts add column updates integer"
               " as (coalesce(json_extract(record, '$.evidence.updates'), 0)) virtual")
    db.execute("alter table alerts add column latest integer not null default 1")
    db.execute("create index alerts_incident on alerts(incident)")
    db.execute("update alerts set latest = 0 where rowid < (select max(b.rowid) from alerts b"
               " where b.incident = alerts.incident)")
    # Listing the latest rows walks (latest, sequence); counting them is a range of that index.
    db.execute("create index alerts_latest_sequence on alerts(latest, sequence)")
    # The full-text index only holds these four columns: re-indexing a record whenever its status or
    # `latest` flag changes cost time, and re-indexing a row inside its own insert trigger corrupts FTS5.
    db.execute('drop trigger if exists "alerts_au"')
    db.execute('''
        create trigger "alerts_au" after update of "rule_id", "title", "model", "record" on "alerts" begin
            insert into "alerts_fts" ("alerts_fts", rowid, "rule_id", "title", "model", "record")
                values ('delete', old.rowid, old."rule_id", old."title", old."model", old."record");
            insert into "alerts_fts" (rowid, "rule_id", "title", "model", "record")
                values (new.rowid, new."rule_id", new."title", new."model", new."record");
        end
    ''')
    db.execute(f"""
        create trigger alerts_incident_insert after insert on alerts when {_INCIDENT} != new.id begin
            update alerts set status = coalesce((select case when new.severity > p.severity then 'open'
                                                            else p.status end
                                                from alerts p where p.incident = {_INCIDENT}
                                                and p.rowid < new.rowid order by p.rowid desc limit 1),
                                               new.status)
             where rowid = new.rowid;
            update alerts set latest = 0 where incident = {_INCIDENT} and rowid < new.rowid and latest = 1;
        end
    """)
