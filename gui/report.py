"""An alert with its evidence as HTML: shown in the detail view and saved as the incident report.

One renderer for both, so what an auditor receives is what the reviewer saw. The HTML sticks to what
QTextBrowser renders (tables, colours, bold), and prints cleanly to PDF from a browser.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.events import format_time, parse_time, utc_now
from weightwarden.agent.store.review_queries import AlertReview, AlertRow
from weightwarden.gui import severity
from weightwarden.gui.models.alerts import local_time

LINEAGE_WINDOW_SECONDS = 24 * 3600
LINEAGE_EVENTS = 20

# What a rule means, for rules whose description is not in a detection file yet.
BUILTIN_RULES: dict[str, dict[str, Any]] = {
    "model-copy": {
        "title": "Copy of a protected model",
        "description": "A new file's content matches a protected model (quick fingerprint, confirmed by "
                       "SHA-256 when known): the model was copied, renamed across devices, or staged for "
                       "exfiltration. Severity grows with how far the destination is from the model's home.",
        "attack": ["T1005 Data from Local System", "T1074.001 Local Data Staging"],
        "atlas": ["AML.T0035 ML Artifact Collection", "AML.T0025 Exfiltration via Cyber Means"],
    },
}


def rule_info(rule_id: str) -> dict[str, Any]:
    """The rule's description and ATT&CK/ATLAS ids from rules/detections/*.yml, else the built-in notes."""
    found = _detection_file_rule(rule_id)
    return found or BUILTIN_RULES.get(rule_id, {"title": rule_id, "description": "", "attack": [], "atlas": []})


def _detection_file_rule(rule_id: str) -> dict[str, Any] | None:
    try:
        from importlib.resources import files

        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return None
    folder = files("weightwarden.rules") / "detections"
    if not folder.is_dir():
        return None
    for entry in folder.iterdir():
        if not entry.name.endswith((".yml", ".yaml")):
            continue
        try:
            data = yaml.safe_load(entry.read_text())
        except Exception:  # a broken rule file is the rule linter's business, not the viewer's
            continue
        if isinstance(data, dict) and data.get("id") == rule_id:
            tags = [str(t) for t in data.get("tags", []) or []]
            return {"title": data.get("title", rule_id), "description": data.get("description", ""),
                    "attack": list(data.get("attack", []) or [t for t in tags if t.upper().startswith("T")]),
                    "atlas": list(data.get("atlas", []) or [t for t in tags if t.upper().startswith("AML")])}
    return None


@dataclass
class AlertDetail:
    alert: AlertRow
    events: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    rule: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, review: AlertReview, alert_id: str) -> AlertDetail | None:
        alert = review.alert(alert_id)
        if alert is None:
            return None
        record = alert.record
        events = {e["id"]: e for e in review.events_by_id(record.get("event_ids") or [])}
        # Lineage: what happened to these paths around the alert (created, moved, deleted), nearest first.
        alert_ms = parse_time(alert.time).timestamp()
        nearby = [e for e in review.events_for_paths(record.get("paths") or [])
                  if abs(parse_time(e["time"]).timestamp() - alert_ms) <= LINEAGE_WINDOW_SECONDS]
        nearby.sort(key=lambda e: abs(parse_time(e["time"]).timestamp() - alert_ms))
        for event in nearby[:LINEAGE_EVENTS]:
            events.setdefault(event["id"], event)
        ordered = sorted(events.values(), key=lambda e: (e.get("time", ""), e.get("sequence", 0)))
        return cls(alert, ordered, review.reviews(alert_id), rule_info(alert.rule))


def timeline(detail: AlertDetail) -> list[tuple[str, str, str]]:
    """(time, what, text) entries: the events behind the alert, the alert, then what people did."""
    entries = [(e.get("time", ""), (e.get("event") or {}).get("action", "event"), e.get("message", ""))
               for e in detail.events]
    entries.append((detail.alert.time, "alert", f"{detail.alert.rule}: {detail.alert.record.get('message', '')}"))
    for r in detail.reviews:
        text = f"{r['action']} by {r['user']} (uid {r['uid']})" + (f": {r['text']}" if r.get("text") else "")
        entries.append((r["time"], "review", text))
    return sorted(entries, key=lambda e: e[0])


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _kv(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><td style='color:#666; padding-right:14px'>{_e(k)}</td><td>{_e(v)}</td></tr>"
                    for k, v in rows if v not in (None, "", [], {}))
    return f"<table cellspacing='0' cellpadding='3'>{cells}</table>" if cells else "<p style='color:#888'>none</p>"


def _section(title: str, body: str) -> str:
    return f"<h3 style='color:#333; margin-top:16px; margin-bottom:4px'>{_e(title)}</h3>{body}"


def _size(value: object) -> str:
    if not isinstance(value, int):
        return "" if value is None else str(value)
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if number < 1024 or unit == "TiB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return str(value)


def _progress(sent: int, total: int) -> str:
    share = max(0.0, min(1.0, sent / total)) if total else 0.0
    done, rest = max(1, round(share * 100)), max(1, 100 - round(share * 100))
    return (f"<table width='100%' cellspacing='0' cellpadding='0'><tr>"
            f"<td width='{done}%' style='background-color:#ef6c00'>&nbsp;</td>"
            f"<td width='{rest}%' style='background-color:#eceff1'>&nbsp;</td></tr></table>"
            f"<p>{_size(sent)} of {_size(total)} sent ({share:.0%})</p>")


def alert_html(detail: AlertDetail, *, standalone: bool = False) -> str:
    alert, record = detail.alert, detail.alert.record
    evidence: dict[str, Any] = record.get("evidence") or {}
    band, colour = severity.band(alert.severity)
    status_colour = severity.STATUS_COLOURS.get(alert.status, "#333")
    parts = [
        f"<table cellspacing='0' cellpadding='4'><tr>"
        f"<td style='background-color:{colour}; color:white; font-weight:bold'>&nbsp;{alert.severity} {band}&nbsp;</td>"
        f"<td style='font-size:16pt; font-weight:bold'>&nbsp;{_e(alert.title)}</td></tr></table>",
        f"<p>{_e(record.get('message'))}</p>",
        _kv([("Rule", alert.rule), ("Status", alert.status), ("Time", local_time(alert.time)),
             ("Model", alert.model), ("Alert id", alert.id)]).replace(
            f"<td>{_e(alert.status)}</td>",
            f"<td style='color:{status_colour}; font-weight:bold'>{_e(alert.status)}</td>", 1),
    ]
    kind_colours = {"alert": "#c62828", "review": "#3949ab"}
    rows = "".join(
        f"<tr><td style='color:#666; white-space:nowrap'>{_e(local_time(t))}</td>"
        f"<td style='font-weight:bold; color:{kind_colours.get(kind, '#444')}'>{_e(kind)}</td>"
        f"<td>{_e(text)}</td></tr>" for t, kind, text in timeline(detail))
    parts.append(_section("Evidence timeline", f"<table cellspacing='0' cellpadding='3'>{rows}</table>"))

    process = record.get("process") or {}
    # Ancestors come as process.parents (parent first, up to the session leader); older records and some
    # rules put them in evidence.process_tree (root first).
    ancestors = list(reversed(process.get("parents") or [])) or evidence.get("process_tree", [])
    chain = [p for p in ancestors if isinstance(p, dict)] + ([process] if process else [])
    if chain:
        lines = "".join(
            f"<tr><td>{'&nbsp;' * 4 * depth}{'└ ' if depth else ''}<b>{_e(p.get('name') or '?')}</b></td>"
            f"<td>pid {_e(p.get('pid'))}</td><td>{_e(p.get('user') or p.get('uid') or '')}</td>"
            f"<td style='font-family:monospace'>{_e(p.get('command_line') or p.get('executable') or '')}</td></tr>"
            for depth, p in enumerate(chain))
        parts.append(_section("Process tree", f"<table cellspacing='0' cellpadding='3'>{lines}</table>"))
    else:
        parts.append(_section("Process tree", "<p style='color:#888'>not attributed (the file sensor alone "
                                              "cannot see which process wrote a file; needs the access sensor)</p>"))

    lineage: list[tuple[str, str]] = []
    if evidence.get("source_path"):
        lineage.append(("protected model", evidence["source_path"]))
    for step in evidence.get("lineage", []) or []:
        if isinstance(step, dict) and step.get("path"):
            lineage.append((str(step.get("kind", "derived")), step["path"]))
    if evidence.get("copy_path"):
        lineage.append(("copy", evidence["copy_path"]))
    if not lineage:
        lineage = [("path", p) for p in record.get("paths", [])]
    steps = "".join(f"<tr><td style='color:#666'>{'↳ ' if i else ''}{_e(kind)}</td>"
                    f"<td style='font-family:monospace'>{_e(path)}</td></tr>" for i, (kind, path) in enumerate(lineage))
    others = evidence.get("other_sources") or []
    more = f"<p style='color:#666'>also matches: {_e(', '.join(others))}</p>" if others else ""
    parts.append(_section("File lineage", f"<table cellspacing='0' cellpadding='3'>{steps}</table>{more}"))

    dest = record.get("destination") or {}
    parts.append(_section("Destination", _kv([("Kind", dest.get("kind")), ("Address", dest.get("address")),
                                              ("Port", dest.get("port")), ("Path", dest.get("path"))])))
    sent, total = evidence.get("bytes_sent"), evidence.get("bytes_total") or evidence.get("size")
    if isinstance(sent, int) and isinstance(total, int):
        parts.append(_section("Egress progress", _progress(sent, total)))
    parts.append(_section("Fingerprints", _kv([
        ("Matched on", evidence.get("matched_on")), ("Format", evidence.get("format")),
        ("Size", _size(evidence.get("size"))), ("SHA-256", evidence.get("sha256")),
        ("Quick fingerprint", evidence.get("quick_fingerprint")),
        ("Tensor fingerprint", evidence.get("tensor_fingerprint"))])))
    rule = detail.rule
    ids = ", ".join([*rule.get("attack", []), *rule.get("atlas", [])])
    tactics = f"<p><b>ATT&amp;CK / ATLAS:</b> {_e(ids)}</p>" if ids else ""
    parts.append(_section(f"Rule: {rule.get('title') or alert.rule}",
                          f"<p>{_e(rule.get('description'))}</p>{tactics}"))
    justifications = [r for r in detail.reviews if r["action"] == "justify"]
    if justifications:
        items = "".join(f"<li><b>{_e(r['user'])}</b> ({_e(local_time(r['time']))}): {_e(r['text'])}</li>"
                        for r in justifications)
        parts.append(_section("Justifications", f"<ul>{items}</ul>"))
    shown = {"source_path", "copy_path", "lineage", "process_tree", "other_sources", "matched_on", "format", "size",
             "sha256", "quick_fingerprint", "tensor_fingerprint", "bytes_sent", "bytes_total"}
    rest = [(k, v) for k, v in sorted(evidence.items()) if k not in shown]
    if rest:
        parts.append(_section("Other evidence", _kv(rest)))
    body = "\n".join(parts)
    if not standalone:
        return body
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Weightwarden incident report: {_e(alert.title)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#1a1a1a}"
        "td{vertical-align:top} h3{border-bottom:1px solid #ddd}"
        "@media print{body{margin:0} h3{break-after:avoid}}</style></head><body>"
        f"<h1>Incident report</h1><p style='color:#666'>Weightwarden, generated {_e(format_time(utc_now()))}</p>"
        f"{body}</body></html>")
