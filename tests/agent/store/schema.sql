-- table _migrations on _migrations
CREATE TABLE "_migrations" (
   "name" TEXT PRIMARY KEY,
   "applied_at" TEXT
);
-- table events on events
CREATE TABLE "events" (
   "id" TEXT PRIMARY KEY,
   "sequence" INTEGER,
   "time" TEXT,
   "action" TEXT,
   "category" TEXT,
   "severity" INTEGER,
   "model" TEXT,
   "path" TEXT,
   "process_pid" INTEGER,
   "record" TEXT
, chain_hash text);
-- index idx_events_sequence on events
CREATE UNIQUE INDEX "idx_events_sequence" ON "events" ("sequence");
-- index idx_events_time on events
CREATE INDEX "idx_events_time" ON "events" ("time");
-- table alerts on alerts
CREATE TABLE "alerts" (
   "id" TEXT PRIMARY KEY,
   "sequence" INTEGER,
   "time" TEXT,
   "rule_id" TEXT,
   "severity" INTEGER,
   "title" TEXT,
   "model" TEXT,
   "status" TEXT,
   "record" TEXT
, chain_hash text, incident text as (coalesce(json_extract(record, '$.evidence.incident'), id)) virtual, updates integer as (coalesce(json_extract(record, '$.evidence.updates'), 0)) virtual, latest integer not null default 1);
-- index idx_alerts_sequence on alerts
CREATE UNIQUE INDEX "idx_alerts_sequence" ON "alerts" ("sequence");
-- index idx_alerts_time on alerts
CREATE INDEX "idx_alerts_time" ON "alerts" ("time");
-- index idx_alerts_rule_id on alerts
CREATE INDEX "idx_alerts_rule_id" ON "alerts" ("rule_id");
-- table model_files on model_files
CREATE TABLE "model_files" (
   "path" TEXT PRIMARY KEY,
   "path_hex" TEXT,
   "device" INTEGER,
   "inode" INTEGER,
   "size" INTEGER,
   "mtime_ns" INTEGER,
   "format" TEXT,
   "sha256" TEXT,
   "quick_fingerprint" TEXT,
   "model" TEXT,
   "details" TEXT,
   "first_seen" TEXT,
   "last_seen" TEXT,
   "present" INTEGER
, found_by text, found_where text, found_pass integer, protected integer not null default 1, protect_reason text);
-- index idx_model_files_quick_fingerprint on model_files
CREATE INDEX "idx_model_files_quick_fingerprint" ON "model_files" ("quick_fingerprint");
-- index idx_model_files_sha256 on model_files
CREATE INDEX "idx_model_files_sha256" ON "model_files" ("sha256");
-- table file_cache on file_cache
CREATE TABLE "file_cache" (
   "device" INTEGER,
   "inode" INTEGER,
   "size" INTEGER,
   "mtime_ns" INTEGER,
   "format" TEXT,
   "sha256" TEXT,
   "quick_fingerprint" TEXT,
   "details" TEXT,
   PRIMARY KEY ("device", "inode", "size", "mtime_ns")
);
-- table agent_state on agent_state
CREATE TABLE "agent_state" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
-- table alerts_fts on alerts_fts
CREATE VIRTUAL TABLE "alerts_fts" USING FTS5 (
    "rule_id", "title", "model", "record",
    tokenize='unicode61',
    content="alerts"
);
-- table alerts_fts_data on alerts_fts_data
CREATE TABLE 'alerts_fts_data'(id INTEGER PRIMARY KEY, block BLOB);
-- table alerts_fts_idx on alerts_fts_idx
CREATE TABLE 'alerts_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;
-- table alerts_fts_docsize on alerts_fts_docsize
CREATE TABLE 'alerts_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB);
-- table alerts_fts_config on alerts_fts_config
CREATE TABLE 'alerts_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID;
-- trigger alerts_ai on alerts
CREATE TRIGGER "alerts_ai" AFTER INSERT ON "alerts" BEGIN
  INSERT INTO "alerts_fts" (rowid, "rule_id", "title", "model", "record")
    VALUES (new.rowid, new."rule_id", new."title", new."model", new."record");
END;
-- trigger alerts_ad on alerts
CREATE TRIGGER "alerts_ad" AFTER DELETE ON "alerts" BEGIN
  INSERT INTO "alerts_fts" ("alerts_fts", rowid, "rule_id", "title", "model", "record")
    VALUES ('delete', old.rowid, old."rule_id", old."title", old."model", old."record");
END;
-- index alerts_severity_sequence on alerts
CREATE INDEX alerts_severity_sequence on alerts(severity, sequence);
-- index alerts_status_sequence on alerts
CREATE INDEX alerts_status_sequence on alerts(status, sequence);
-- index alerts_rule_sequence on alerts
CREATE INDEX alerts_rule_sequence on alerts(rule_id, sequence);
-- index alerts_model_sequence on alerts
CREATE INDEX alerts_model_sequence on alerts(coalesce(model, ''), sequence);
-- index events_model_time on events
CREATE INDEX events_model_time on events(model, time);
-- table alert_reviews on alert_reviews
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
-- index idx_alert_reviews_alert_id on alert_reviews
CREATE INDEX "idx_alert_reviews_alert_id" ON "alert_reviews" ("alert_id");
-- table forward_cursors on forward_cursors
CREATE TABLE "forward_cursors" (
   "destination" TEXT PRIMARY KEY,
   "sequence" INTEGER,
   "delivered_total" INTEGER,
   "delivered_at" TEXT,
   "last_error" TEXT,
   "last_error_at" TEXT,
   "dropped_total" INTEGER,
   "dead_total" INTEGER
, "budget_cursor" INTEGER, "budget_through" INTEGER, "budget_bytes" INTEGER);
-- table dead_letters on dead_letters
CREATE TABLE "dead_letters" (
   "id" INTEGER PRIMARY KEY,
   "destination" TEXT,
   "record_id" TEXT,
   "sequence" INTEGER,
   "time" TEXT,
   "reason" TEXT,
   "record" TEXT
);
-- index idx_dead_letters_destination_sequence on dead_letters
CREATE INDEX "idx_dead_letters_destination_sequence" ON "dead_letters" ("destination", "sequence");
-- table model_tensors on model_tensors
CREATE TABLE "model_tensors" (
   "path" TEXT,
   "position" INTEGER,
   "fingerprint" TEXT,
   "elements" INTEGER,
   "bytes" INTEGER,
   "informative" INTEGER, name text, block blob,
   PRIMARY KEY ("path", "position")
);
-- index idx_model_tensors_fingerprint on model_tensors
CREATE INDEX "idx_model_tensors_fingerprint" ON "model_tensors" ("fingerprint");
-- table file_cache_tensors on file_cache_tensors
CREATE TABLE "file_cache_tensors" (
   "device" INTEGER,
   "inode" INTEGER,
   "size" INTEGER,
   "mtime_ns" INTEGER,
   "tensors" TEXT,
   PRIMARY KEY ("device", "inode", "size", "mtime_ns")
);
-- index events_path on events
CREATE INDEX events_path on events(path);
-- index alerts_incident on alerts
CREATE INDEX alerts_incident on alerts(incident);
-- index alerts_latest_sequence on alerts
CREATE INDEX alerts_latest_sequence on alerts(latest, sequence);
-- trigger alerts_au on alerts
CREATE TRIGGER "alerts_au" after update of "rule_id", "title", "model", "record" on "alerts" begin
            insert into "alerts_fts" ("alerts_fts", rowid, "rule_id", "title", "model", "record")
                values ('delete', old.rowid, old."rule_id", old."title", old."model", old."record");
            insert into "alerts_fts" (rowid, "rule_id", "title", "model", "record")
                values (new.rowid, new."rule_id", new."title", new."model", new."record");
        end;
-- trigger alerts_incident_insert on alerts
CREATE TRIGGER alerts_incident_insert after insert on alerts when coalesce(json_extract(new.record, '$.evidence.incident'), new.id) != new.id begin
            update alerts set status = coalesce((select case when new.severity > p.severity then 'open'
                                                            else p.status end
                                                from alerts p where p.incident = coalesce(json_extract(new.record, '$.evidence.incident'), new.id)
                                                and p.rowid < new.rowid order by p.rowid desc limit 1),
                                               new.status)
             where rowid = new.rowid;
            update alerts set latest = 0 where incident = coalesce(json_extract(new.record, '$.evidence.incident'), new.id) and rowid < new.rowid and latest = 1;
        end;
-- index alerts_latest_severity_sequence on alerts
CREATE INDEX alerts_latest_severity_sequence on alerts(latest, severity, sequence);
-- index alerts_latest_status_sequence on alerts
CREATE INDEX alerts_latest_status_sequence on alerts(latest, status, sequence);
-- index alerts_latest_rule_sequence on alerts
CREATE INDEX alerts_latest_rule_sequence on alerts(latest, rule_id, sequence);
-- index alerts_latest_model_sequence on alerts
CREATE INDEX alerts_latest_model_sequence on alerts(latest, coalesce(model, ''), sequence);
-- index alerts_process_user_sequence on alerts
CREATE INDEX alerts_process_user_sequence on alerts(json_extract(record, '$.process.user'), sequence);
