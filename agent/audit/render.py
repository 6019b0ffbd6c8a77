"""An AuditReport as a text table, a self-contained HTML page, and a PDF rendered from that same HTML.

Paths in the report are already display text (agent/events.py display_path: non-UTF-8 bytes and control
characters escaped); the HTML escapes every value once more for markup (`<script>` in a file name stays
text). The PDF is Qt's rendering of the HTML (QTextDocument into a QPdfWriter), so both say the same.
"""

from __future__ import annotations

import html
import os
from typing import Any

from weightwarden.agent.audit.policy_column import allow_text, grant_text, policy_text
from weightwarden.agent.audit.report import FLAGS, HIGH_RISK, AuditReport, FileAudit


def _who(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return str(entry["name"]) if entry.get("name") is not None else str(entry["id"])


def _acl(file: FileAudit) -> str:
    return ",".join(f"{e['tag']}:{e['name'] if e['name'] is not None else (e['id'] if e['id'] is not None else '')}"
                    f":{e['effective']}" for e in file.acl) or "-"


def _readers(file: FileAudit) -> str:
    readers = file.readers
    if not readers["count"]:
        return "-"
    more = f" (+{readers['count'] - len(readers['names'])} more)" if readers["truncated"] else ""
    return ",".join(readers["names"]) + more


def text_rows(report: AuditReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for file in report.files:
        if file.status == "missing":
            rows.append(("MISSING", "-", "-", "-", "-", "-", "-", str(len(file.copies)), policy_text(file.policy),
                         file.path))
            continue
        path = file.path + (f"  [{file.error}]" if file.error else "")
        rows.append((file.mode or "-", f"{_who(file.owner)}:{_who(file.group)}", _acl(file), file.place or "-",
                     ",".join(file.flags) or "-", str(file.readers["count"]), _readers(file), str(len(file.copies)),
                     policy_text(file.policy), path))
    return rows


HEADERS = ("MODE", "OWNER:GROUP", "ACL", "PLACE", "FLAGS", "READERS", "WHO CAN READ", "COPIES", "POLICY", "PATH")


def summary_line(report: AuditReport) -> str:
    summary = report.summary
    found = ", ".join(f"{flag} {n}" for flag, n in summary["flags"].items() if n) or "no findings"
    return (f"{summary['files']} protected model files ({summary['missing']} missing): {found}; "
            f"{summary['high_risk']} at high risk")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def to_html(report: AuditReport) -> str:
    summary = report.summary
    flag_rows = "".join(f"<tr><td>{_e(flag)}{' (high risk)' if flag in HIGH_RISK else ''}</td>"
                        f"<td align='right'>{summary['flags'][flag]}</td></tr>" for flag in FLAGS)
    rows = []
    for file in report.files:
        copies = "<br>".join(f"{_e(c.time)} {_e(c.destination_kind or '')} {_e(c.copy_path)}" for c in file.copies)
        flags = ", ".join(f"<b style='color:#c62828'>{_e(f)}</b>" if f in HIGH_RISK else _e(f) for f in file.flags)
        status = _e(file.status) + (f"<br>{_e(file.error)}" if file.error else "")
        readers = _e(", ".join(file.readers["names"]))
        if file.readers["truncated"]:
            readers += f" <i>(+{file.readers['count'] - len(file.readers['names'])} more)</i>"
        rows.append(
            f"<tr><td>{_e(file.path)}<br><span style='color:#666'>{_e(file.model)} ({_e(file.format)})</span></td>"
            f"<td>{status}</td><td>{_e(file.mode or '')}</td><td>{_e(_who(file.owner))}:{_e(_who(file.group))}</td>"
            f"<td>{_e(_acl(file))}</td><td>{_e(file.place or '')}</td><td>{flags}</td>"
            f"<td>{f'{n}: {readers}' if (n := file.readers['count']) else ('-' if file.mode is None else 'none')}"
            f"</td><td>{copies}</td><td>{_policy_html(file)}</td></tr>")
    head = "".join(f"<th align='left'>{_e(h)}</th>" for h in
                   ("File", "Status", "Mode", "Owner:group", "ACL", "Place", "Flags", "Who can read", "Copies seen",
                    "Access policy"))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Weightwarden audit</title></head>"
        "<body style='font-family:sans-serif; font-size:9pt'>"
        f"<h2>Weightwarden audit of {_e(report.host)}</h2><p>{_e(report.to_dict()['generated'])}: "
        f"{_e(summary_line(report))}</p>"
        "<h3>Summary</h3><table cellspacing='0' cellpadding='3' border='1'>"
        f"<tr><td>files</td><td align='right'>{summary['files']}</td></tr>"
        f"<tr><td>missing</td><td align='right'>{summary['missing']}</td></tr>{flag_rows}</table>"
        "<h3>Files</h3><table cellspacing='0' cellpadding='3' border='1' width='100%'>"
        f"<tr>{head}</tr>{''.join(rows)}</table>"
        f"{_serving_html(report)}"
        "<p style='color:#666'>Who can read: local accounts the file's mode bits and ACL, and those of every "
        "folder above it, let read it (root reads everything and is left out). Access policy: the policy "
        "that governs the model (in enforce mode it refuses every other open; in monitor mode it only reports "
        "them), who it lets open it, and the active time-boxed grants; none: no policy governs it.</p>"
        "</body></html>\n")


def _serving_html(report: AuditReport) -> str:
    serving = report.serving
    rows = "".join(f"<tr><td>{_e(', '.join(s.models))}</td><td>{_e(s.process)} (pid {s.pid}, {_e(s.user)})</td>"
                   f"<td>{_e(s.where)}</td><td>{_e(s.reach)}</td><td>{_e(s.protocol or 'not known')}</td>"
                   f"<td>{'<b style=color:#c62828>' if s.exposed else ''}{_e(s.authentication)}"
                   f"{'</b>' if s.exposed else ''}</td></tr>" for s in serving.servers)
    found = "".join(f"<li>{_e(f.time)} [{f.severity}] {_e(f.message)}</li>" for f in serving.findings)
    now = rows or "<tr><td colspan='6'>none" + ("" if serving.agent_running else
                                              " known: the agent is not running") + "</td></tr>"
    return ("<h3>Model servers</h3><table cellspacing='0' cellpadding='3' border='1'><tr><th>Model</th>"
            "<th>Server</th><th>Listens on</th><th>Reach</th><th>Protocol</th><th>Authentication</th></tr>"
            f"{now}</table><p>Exposure findings on record: {len(serving.findings)}</p>"
            f"{'<ul>' + found + '</ul>' if found else ''}")


def _policy_html(file: FileAudit) -> str:
    policy = file.policy
    if policy is None:
        return "none"
    where = f"{os.path.basename(policy['file'])}:{policy['line']}"
    allowed = "<br>".join(_e(allow_text(e)) for e in policy["allow"]) or "nobody"
    granted = "<br>".join(f"grant {_e(grant_text(g))}" for g in policy["grants"])
    return (f"<b>{_e(policy['id'])}</b> {_e(policy['mode'])} <span style='color:#666'>{_e(where)}</span><br>"
            f"{allowed}{'<br>' + granted if granted else ''}")


class PdfUnavailableError(RuntimeError):
    """No Qt here: the headless weightwarden-agent package renders HTML, not PDF."""


def write_pdf(html_text: str, path: str) -> None:
    """Render the HTML into a PDF with Qt; offscreen when there is no display."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:  # Qt comes with the app (weightwarden-app, or the `app` extra); a headless agent has none
        from PySide6.QtCore import QMarginsF
        from PySide6.QtGui import QGuiApplication, QPageLayout, QPageSize, QPdfWriter, QTextDocument
    except ImportError:
        raise PdfUnavailableError("PDF is rendered with Qt, which comes with the desktop app: install the "
                                  "weightwarden-app package (pip: weightwarden[app]), or use --html") from None

    app = QGuiApplication.instance() or QGuiApplication([])
    writer = QPdfWriter(path)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageOrientation(QPageLayout.Orientation.Landscape)
    writer.setPageMargins(QMarginsF(10, 10, 10, 10), QPageLayout.Unit.Millimeter)
    writer.setTitle("Weightwarden audit")
    document = QTextDocument()
    document.setHtml(html_text)
    document.print_(writer)
    del writer
    del app
