"""The store's schema is literal SQL of ours, whatever sqlite-utils version is installed.

sqlite-utils 4 changed the DDL and upserts it generates; a migration that asked it for a table, an index or
the FTS triggers would give databases a schema (and trigger names) that depend on the library's version.
Every migration now runs literal SQL, so the schema a fresh database gets is exactly SCHEMA below: the CI
job at the lowest declared dependency versions runs this file too (sqlite-utils 3.x there).
"""

from __future__ import annotations

import ast
import inspect
import sqlite3
import textwrap
from pathlib import Path

import pytest

from weightwarden.agent.store import Store, migrations
from weightwarden.agent.store.sql import statements

GOLDEN = Path(__file__).with_name("schema.sql")
# What a migration may not ask sqlite-utils to generate: tables, indexes, FTS, columns, rows.
GENERATED = {"create", "create_index", "enable_fts", "add_column", "transform", "create_table", "insert",
             "insert_all", "upsert", "upsert_all", "add_foreign_key", "create_view"}


def schema(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("select type, name, tbl_name, sql from sqlite_master where sql is not null"
                            " order by rowid").fetchall()
    finally:
        conn.close()
    return "".join(f"-- {kind} {name} on {table}\n{sql};\n" for kind, name, table, sql in rows)


def test_a_new_database_gets_exactly_the_literal_schema(tmp_path: Path) -> None:
    Store(tmp_path / "weightwarden.db").close()
    assert schema(tmp_path / "weightwarden.db") == GOLDEN.read_text()


def test_no_migration_asks_the_library_for_ddl() -> None:
    for name, apply in migrations.MIGRATIONS:
        tree = ast.parse(textwrap.dedent(inspect.getsource(apply)))
        called = {node.func.attr for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
        assert called & GENERATED == set(), name
    migrate = ast.parse(textwrap.dedent(inspect.getsource(migrations.migrate)))
    assert not [node for node in ast.walk(migrate) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr in GENERATED]


def test_the_fts_triggers_have_our_names_and_keep_search_current(tmp_path: Path) -> None:
    store = Store(tmp_path / "weightwarden.db")
    try:
        triggers = {row[0] for row in store.db.execute("select name from sqlite_master where type = 'trigger'")}
        assert triggers == {"alerts_ai", "alerts_ad", "alerts_au", "alerts_incident_insert"}
        store.db.execute("insert into alerts (id, sequence, time, rule_id, severity, title, model, status,"
                         " record) values ('a1', 1, 't', 'copy-to-usb', 3, 'copied', 'llama', 'open', '{}')")
        search = "select rowid from alerts_fts where alerts_fts match ?"
        assert len(store.db.execute(search, ["usb"]).fetchall()) == 1
        store.db.execute("update alerts set title = 'exfiltrated' where id = 'a1'")
        assert store.db.execute(search, ["copied"]).fetchall() == []
        assert len(store.db.execute(search, ["exfiltrated"]).fetchall()) == 1
        store.db.execute("delete from alerts where id = 'a1'")
        assert store.db.execute(search, ["exfiltrated"]).fetchall() == []
        store.db.conn.commit()
    finally:
        store.close()


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_done(db: object) -> None:
        migrations.run_script(db, 'CREATE TABLE "half" ("x" TEXT);\nSELECT no_such_function();\n')  # type: ignore[arg-type]

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("9999_half_done", half_done)])
    with pytest.raises(Exception, match="no_such_function"):
        Store(tmp_path / "weightwarden.db")
    conn = sqlite3.connect(tmp_path / "weightwarden.db")
    try:
        assert conn.execute("select count(*) from sqlite_master where name = 'half'").fetchone() == (0,)
        names = [row[0] for row in conn.execute("select name from _migrations order by rowid")]
        assert names == [name for name, _ in migrations.MIGRATIONS if name != "9999_half_done"]
    finally:
        conn.close()


def test_statements_keep_a_trigger_body_whole() -> None:
    script = ('CREATE TABLE "t" ("a" TEXT);\nCREATE TRIGGER "t_ai" AFTER INSERT ON "t" BEGIN\n'
              '  SELECT 1;\n  SELECT 2;\nEND;\n')
    assert [s.split()[1] for s in statements(script)] == ["TABLE", "TRIGGER"]
    with pytest.raises(ValueError, match="incomplete"):
        statements('CREATE TABLE "t" ("a" TEXT)')
