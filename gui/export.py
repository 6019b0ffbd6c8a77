"""Export: the filtered alerts as CSV or JSON lines, and one alert as an HTML incident report.

Exports stream page by page from the store, so exporting a million alerts takes bounded memory.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from weightwarden.agent.detect.rules import RuleSet
from weightwarden.agent.store.review_queries import AlertFilter, AlertReview, AlertSort
from weightwarden.gui.models.alerts import destination_text, process_text
from weightwarden.gui.report import AlertDetail, alert_html

CSV_COLUMNS = ("id", "time", "severity", "rule", "title", "model", "status", "process", "destination", "message",
               "paths")


# A spreadsheet reads a cell that starts with one of these as a formula (CSV injection: `=HYPERLINK(...)`,
# `@SUM(...)`, `-2+3+cmd|' /C calc'!A0`; tab and CR are how a leading `=` slips past naive checks). Paths,
# titles and process names are chosen by whoever names a file or a program, so such a cell gets a leading
# apostrophe (OWASP "CSV Injection"): shown as text, the apostrophe itself hidden by the spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """The cell as text a spreadsheet never evaluates; numbers (our own) stay numbers."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def export_csv(review: AlertReview, flt: AlertFilter, sort: AlertSort, path: str | Path) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for alert in review.iter_alerts(flt, sort):
            record = alert.record
            row = [alert.id, alert.time, alert.severity, alert.rule, alert.title, alert.model or "",
                   alert.status, process_text(record), destination_text(record),
                   record.get("message", ""), " | ".join(record.get("paths", []))]
            writer.writerow([spreadsheet_safe(cell) for cell in row])
            count += 1
    return count


def export_json(review: AlertReview, flt: AlertFilter, sort: AlertSort, path: str | Path) -> int:
    """JSON lines: each alert's record (the `weightwarden alerts --json` shape) with its current status."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for alert in review.iter_alerts(flt, sort):
            handle.write(json.dumps({**alert.record, "status": alert.status}, sort_keys=True) + "\n")
            count += 1
    return count


def export_incident(review: AlertReview, alert_id: str, path: str | Path, rules: RuleSet | None = None) -> bool:
    """The incident report as HTML, or as PDF when the path ends in .pdf (A4, rendered by Qt); `rules`: the
    rules in effect (default: the built-in ones)."""
    detail = AlertDetail.load(review, alert_id, rules)
    if detail is None:
        return False
    page = alert_html(detail, standalone=True)
    if str(path).lower().endswith(".pdf"):
        _write_pdf(page, str(path))
    else:
        Path(path).write_text(page, encoding="utf-8")
    return True


def _write_pdf(page: str, path: str) -> None:
    from PySide6.QtGui import QPageSize, QPdfWriter, QTextDocument

    writer = QPdfWriter(path)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setResolution(150)
    document = QTextDocument()
    document.setHtml(page)
    document.print_(writer)
