"""Schema for reviewing alerts in the app: full-text search, sort indexes, and the review log.

Referenced from `migrations.MIGRATIONS`; like every migration these are never edited once released.
"""

from __future__ import annotations

import sqlite_utils

from weightwarden.agent.store.sql import run_script

# What free text searches: the rule, the title, the model, and the whole record (message, paths,
# process, destination, evidence). Triggers keep the index current as the agent inserts alerts.
ALERT_FTS_COLUMNS = ["rule_id", "title", "model", "record"]


def alert_search(db: sqlite_utils.Database) -> None:
    """FTS5 over alerts plus the indexes that keyset paging by each sortable column needs."""
    # The external-content FTS5 table and its triggers, named as sqlite-utils' enable_fts named them when
    # this migration used it (alerts_fts, alerts_ai/_ad/_au): 0008 replaces alerts_au by that name.
    run_script(db,
        """
        CREATE VIRTUAL TABLE "alerts_fts" USING FTS5 (
            "rule_id", "title", "model", "record",
            tokenize='unicode61',
            content="alerts"
        );
        CREATE TRIGGER "alerts_ai" AFTER INSERT ON "alerts" BEGIN
          INSERT INTO "alerts_fts" (rowid, "rule_id", "title", "model", "record")
            VALUES (new.rowid, new."rule_id", new."title", new."model", new."record");
        END;
        CREATE TRIGGER "alerts_ad" AFTER DELETE ON "alerts" BEGIN
          INSERT INTO "alerts_fts" ("alerts_fts", rowid, "rule_id", "title", "model", "record")
            VALUES ('delete', old.rowid, old."rule_id", old."title", old."model", old."record");
        END;
        CREATE TRIGGER "alerts_au" AFTER UPDATE ON "alerts" BEGIN
          INSERT INTO "alerts_fts" ("alerts_fts", rowid, "rule_id", "title", "model", "record")
            VALUES ('delete', old.rowid, old."rule_id", old."title", old."model", old."record");
          INSERT INTO "alerts_fts" (rowid, "rule_id", "title", "model", "record")
            VALUES (new.rowid, new."rule_id", new."title", new."model", new."record");
        END;
        INSERT INTO "alerts_fts" ("alerts_fts") VALUES ('rebuild');
        """
    )
    db.execute("create index if not exists alerts_severity_sequence on alerts(severity, sequence)")
    db.execute("create index if not exists alerts_status_sequence on alerts(status, sequence)")
    db.execute("create index if not exists alerts_rule_sequence on alerts(rule_id, sequence)")
    db.execute("create index if not exists alerts_model_sequence on alerts(coalesce(model, ''), sequence)")
    db.execute("create index if not exists events_model_time on events(model, time)")


def alert_reviews(db: sqlite_utils.Database) -> None:
    """Append-only log of what people did with an alert: justifications and status changes.

    `uid` is the peer uid the agent's control socket authenticated (SO_PEERCRED), never a claimed one.
    """
    run_script(db,
        """
        CREATE TABLE "alert_reviews" (
           "id" TEXT PRIMARY KEY,
           "time" TEXT,
           "alert_id" TEXT,
           "action" TEXT,
           "status" TEXT,
           "text" TEXT,
           "uid" INTEGER,
           "user" TEXT
        );
        CREATE INDEX "idx_alert_reviews_alert_id" ON "alert_reviews" ("alert_id");
        """
    )


def lineage_index(db: sqlite_utils.Database) -> None:
    """Events by path: the detail view's file lineage (what happened to a copy's paths) without a scan."""
    db.execute("create index if not exists events_path on events(path)")


def latest_index(sort_key: str) -> str:
    """The (latest, column, sequence) index of a sort key of review_queries.SORT_KEYS; time order is the
    (latest, sequence) index of migration 0008."""
    return "alerts_latest_sequence" if sort_key == "time" else f"alerts_latest_{sort_key}_sequence"


def review_indexes(db: sqlite_utils.Database) -> None:
    """(latest, column, sequence) per sortable column: the app's table jumps to any position by counting an
    OFFSET over index entries alone (review_queries.alert_page_at); without `latest` in the index every
    entry counted would cost a read of its alert row (seconds a million rows in, not milliseconds).
    And alerts by the user of their process: a non-admin's own alerts (review_queries.alerts_of_user)."""
    for name, expression in (("severity", "severity"), ("status", "status"), ("rule", "rule_id"),
                             ("model", "coalesce(model, '')")):
        db.execute(f"create index if not exists {latest_index(name)}"
                   f" on alerts(latest, {expression}, sequence)")
    db.execute(f"create index if not exists {PROCESS_USER_INDEX} on alerts({PROCESS_USER}, sequence)")


PROCESS_USER = "json_extract(record, '$.process.user')"
PROCESS_USER_INDEX = "alerts_process_user_sequence"
