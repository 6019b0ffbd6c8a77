"""An alert with its evidence as HTML: shown in the detail view and saved as the incident report.

One renderer for both, so what an auditor receives is what the reviewer saw. The HTML sticks to what
QTextBrowser renders (tables, colours, bold), and prints cleanly to PDF from a browser.

It reads the alert's typed evidence (agent/alert_evidence.py, from the store's AlertRow.evidence), never
evidence keys; what it says about the rule comes from that evidence and the loaded rules in effect
(gui/rule_catalog.py), never from reading rule files itself.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from weightwarden.agent.alert_evidence import (
    AlertEvidence,
    BulkCollectionEvidence,
    CopyEvidence,
    DerivedCopyEvidence,
    EgressBudgetEvidence,
    ServingExtractionEvidence,
    StagingEvidence,
    TransferEvidence,
    atlas_ids,
    attack_ids,
)
from weightwarden.agent.detect.rules import RuleSet
from weightwarden.agent.events import format_time, parse_time, utc_now
from weightwarden.agent.store.review_queries import AlertReview, AlertRow
from weightwarden.agent.techniques import NAMES
from weightwarden.gui import severity
from weightwarden.gui.models.alerts import local_time
from weightwarden.gui.rule_catalog import rules_in_effect

LINEAGE_WINDOW_SECONDS = 24 * 3600
LINEAGE_EVENTS = 20


@dataclass(frozen=True)
class RuleInfo:
    """What the report says about the rule behind an alert."""

    id: str
    title: str
    description: str = ""
    techniques: tuple[str, ...] = ()  # MITRE ATT&CK (T...) and ATLAS (AML.T...) ids

    @property
    def attack(self) -> tuple[str, ...]:
        return attack_ids(self.techniques)

    @property
    def atlas(self) -> tuple[str, ...]:
        return atlas_ids(self.techniques)


def _named(ids: tuple[str, ...]) -> str:
    """"T1052.001 (Exfiltration over USB), AML.T0025 (...)": each id with its name where it is known."""
    return ", ".join(f"{i} ({NAMES[i]})" if i in NAMES else i for i in ids)


def rule_info(rule_id: str, evidence: AlertEvidence, rules: RuleSet) -> RuleInfo:
    """The rule as the alert recorded it (its evidence names the description and ids it was raised under),
    completed from the loaded rule (title; description and ids for records that did not carry them)."""
    rule = rules.get(rule_id)
    return RuleInfo(rule_id, rule.title if rule is not None else rule_id,
                    evidence.description or (rule.description if rule is not None else ""),
                    evidence.techniques or (rule.techniques if rule is not None else ()))


@dataclass
class AlertDetail:
    alert: AlertRow
    evidence: AlertEvidence
    rule: RuleInfo
    events: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, review: AlertReview, alert_id: str, rules: RuleSet | None = None) -> AlertDetail | None:
        """The alert, its evidence and what happened around it; `rules`: those in effect (default: built-in)."""
        alert = review.alert(alert_id)
        if alert is None:
            return None
        record, evidence = alert.record, alert.evidence
        events = {e["id"]: e for e in review.events_by_id(record.get("event_ids") or [])}
        # The incident's own timeline names its events even when the log no longer holds them.
        for entry in evidence.timeline:
            events.setdefault(entry.event_id, {"id": entry.event_id, "time": entry.time,
                                               "event": {"action": entry.action}, "message": entry.message})
        # Lineage: what happened to these paths around the alert (created, moved, deleted), nearest first.
        alert_ms = parse_time(alert.time).timestamp()
        nearby = [e for e in review.events_for_paths(record.get("paths") or [])
                  if abs(parse_time(e["time"]).timestamp() - alert_ms) <= LINEAGE_WINDOW_SECONDS]
        nearby.sort(key=lambda e: abs(parse_time(e["time"]).timestamp() - alert_ms))
        for event in nearby[:LINEAGE_EVENTS]:
            events.setdefault(event["id"], event)
        ordered = sorted(events.values(), key=lambda e: (e.get("time", ""), e.get("sequence", 0)))
        known = rules if rules is not None else rules_in_effect()
        return cls(alert, evidence, rule_info(alert.rule, evidence, known), ordered, review.reviews(alert_id))


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


def _lineage(evidence: AlertEvidence, paths: list[str]) -> tuple[list[tuple[str, str]], str]:
    """(kind, path) steps from the protected model to where its bytes went, and a note under them."""
    if isinstance(evidence, CopyEvidence):
        others = evidence.other_sources
        note = f"also matches: {', '.join(others)}" if others else ""
        return [("protected model", evidence.source_path), ("copy", evidence.copy_path)], note
    if isinstance(evidence, DerivedCopyEvidence):
        shape = "converted copy" if evidence.whole else "partial copy"
        steps = [("protected model", p) for p in evidence.source_paths] + [(shape, evidence.copy_path)]
        note = (f"{evidence.matched_tensors} of {evidence.total_tensors} tensors ({evidence.tensor_share:.0%}), "
                f"{evidence.byte_share:.0%} of the bytes of model {evidence.source_model}")
        return steps, note
    if isinstance(evidence, StagingEvidence):
        wrote = evidence.lineage.wrote or evidence.staging.output
        steps = [("read", evidence.lineage.read or "?"),
                 (f"{evidence.staging.operation or 'staged'} ({evidence.staging.tool})", wrote or "?")]
        return steps, ""
    if isinstance(evidence, TransferEvidence):
        sent = [("sent", p) for p in (evidence.transfer.sources or tuple(paths))]
        return [*sent, (f"to ({evidence.transfer.tool})", evidence.transfer.destination or "?")], ""
    if isinstance(evidence, EgressBudgetEvidence) and evidence.files:
        models = f"model{'s' if len(evidence.models) > 1 else ''} {', '.join(evidence.models)}"
        return [("read", p) for p in evidence.files], f"{models}; sent out over the connections below"
    if isinstance(evidence, EgressBudgetEvidence | BulkCollectionEvidence) and evidence.models:
        return [("model read", m) for m in evidence.models], ""
    if isinstance(evidence, ServingExtractionEvidence):
        return [("model served", m) for m in evidence.models] + [("answers to", evidence.peer)], ""
    return [("path", p) for p in paths], ""


def _fingerprints(evidence: AlertEvidence) -> list[tuple[str, object]]:
    if isinstance(evidence, CopyEvidence):
        return [("Matched on", evidence.matched_on), ("Format", evidence.format), ("Size", _size(evidence.size)),
                ("SHA-256", evidence.sha256), ("Quick fingerprint", evidence.quick_fingerprint)]
    if isinstance(evidence, DerivedCopyEvidence):
        return [("Matched on", evidence.matched_on), ("Format", evidence.format), ("Size", _size(evidence.size)),
                ("Tensors", f"{evidence.matched_tensors} of {evidence.total_tensors} ({evidence.tensor_share:.0%})"),
                ("Bytes", f"{_size(evidence.matched_bytes)} of {_size(evidence.total_bytes)} "
                          f"({evidence.byte_share:.0%})"),
                ("Similarity", f"{evidence.similarity:.2f} (sign agreement {evidence.agreement:.1%})"),
                ("Matched tensors", ", ".join(evidence.matched_names) or None),
                ("Public base", _carried(evidence)),
                ("SHA-256 of the copy", evidence.sha256)]
    return []


def _carried(evidence: DerivedCopyEvidence) -> str | None:
    """The public model the source was fine-tuned from, and how much of that fine-tune the copy carries."""
    if evidence.public_base is None:
        return None
    share = evidence.delta_share
    carried = f"; the copy carries {share:.0%} of the fine-tune" if share is not None else ""
    public = f", {evidence.public_tensors} tensors public" if evidence.public_tensors else ""
    return f"{evidence.public_base}{public}{carried}"


def _correlation(evidence: AlertEvidence) -> tuple[str, list[tuple[str, object]]] | None:
    """The section a correlation's own facts go in, if the alert came from one besides the copy rule."""
    if isinstance(evidence, EgressBudgetEvidence):
        connections = ", ".join(f"{key} ({_size(sent)})" for key, sent in evidence.connections)
        return "Egress budget", [("Protected bytes read", _size(evidence.bytes_read)),
                                 ("Sent outside the allowlist", _size(evidence.bytes_sent)),
                                 ("Budget", f"{evidence.ratio:g} of the bytes read"), ("Connections", connections)]
    if isinstance(evidence, BulkCollectionEvidence):
        return "Bulk collection", [("Distinct models", evidence.distinct_models),
                                   ("Window", f"{evidence.window_seconds:g} s"),
                                   ("Models", ", ".join(evidence.models))]
    if isinstance(evidence, ServingExtractionEvidence):
        return "Extraction through the API", [
            ("Server", evidence.server), ("Server process", evidence.server_process), ("Peer", evidence.peer),
            ("Connections", evidence.peer_connections), ("Request bytes", _size(evidence.request_bytes)),
            ("Answer bytes", _size(evidence.answer_bytes)),
            ("Answers in the last hour", _size(evidence.answer_bytes_hour)),
            ("Answers in the last day", _size(evidence.answer_bytes_day)),
            ("Connections in the burst window", evidence.connections_in_burst),
            ("Budgets exceeded", ", ".join(evidence.exceeded)),
            ("Budgets", ", ".join(f"{key} {value:g}" for key, value in sorted(evidence.budgets.items())))]
    if isinstance(evidence, TransferEvidence):
        transfer = evidence.transfer
        return "Transfer", [("Tool", transfer.tool), ("Destination", transfer.destination),
                            ("Kind", transfer.kind), ("Host", transfer.host), ("Sources", ", ".join(transfer.sources))]
    if isinstance(evidence, StagingEvidence):
        staging = evidence.staging
        return "Staging", [("Tool", staging.tool), ("Operation", staging.operation), ("Output", staging.output),
                           ("Inputs", ", ".join(staging.inputs))]
    return None


def alert_html(detail: AlertDetail, *, standalone: bool = False) -> str:
    alert, record, evidence = detail.alert, detail.alert.record, detail.evidence
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
    if evidence.canary:
        parts.append("<p style='color:#c62828; font-weight:bold'>A planted canary (decoy) model was touched.</p>")
    kind_colours = {"alert": "#c62828", "review": "#3949ab"}
    rows = "".join(
        f"<tr><td style='color:#666; white-space:nowrap'>{_e(local_time(t))}</td>"
        f"<td style='font-weight:bold; color:{kind_colours.get(kind, '#444')}'>{_e(kind)}</td>"
        f"<td>{_e(text)}</td></tr>" for t, kind, text in timeline(detail))
    parts.append(_section("Evidence timeline", f"<table cellspacing='0' cellpadding='3'>{rows}</table>"))
    if evidence.sequence:
        steps_text = "".join(f"<li><b>{_e(s.step)}</b>: {_e(s.action)} <span style='color:#666'>({_e(s.event_id)})"
                             f"</span></li>" for s in evidence.sequence)
        parts.append(_section("Sequence", f"<ol>{steps_text}</ol>"))

    process = record.get("process") or {}
    # Ancestors come as process.parents (parent first, up to the session leader).
    ancestors = [p for p in reversed(process.get("parents") or []) if isinstance(p, dict)]
    chain = ancestors + ([process] if process else [])
    tree = (f"<p style='color:#666'>process tree {_e(evidence.process_tree)}</p>"
            if evidence.process_tree else "")
    if chain:
        lines = "".join(
            f"<tr><td>{'&nbsp;' * 4 * depth}{'└ ' if depth else ''}<b>{_e(p.get('name') or '?')}</b></td>"
            f"<td>pid {_e(p.get('pid'))}</td><td>{_e(p.get('user') or p.get('uid') or '')}</td>"
            f"<td style='font-family:monospace'>{_e(p.get('command_line') or p.get('executable') or '')}</td></tr>"
            for depth, p in enumerate(chain))
        parts.append(_section("Process tree", f"<table cellspacing='0' cellpadding='3'>{lines}</table>{tree}"))
    else:
        parts.append(_section("Process tree", "<p style='color:#888'>not attributed (the file sensor alone "
                                              "cannot see which process wrote a file; needs the access sensor)</p>"))

    lineage, note = _lineage(evidence, list(record.get("paths") or []))
    steps = "".join(f"<tr><td style='color:#666'>{'↳ ' if i else ''}{_e(kind)}</td>"
                    f"<td style='font-family:monospace'>{_e(path)}</td></tr>" for i, (kind, path) in enumerate(lineage))
    more = f"<p style='color:#666'>{_e(note)}</p>" if note else ""
    parts.append(_section("File lineage", f"<table cellspacing='0' cellpadding='3'>{steps}</table>{more}"))

    dest = record.get("destination") or {}
    parts.append(_section("Destination", _kv([("Kind", dest.get("kind")), ("Address", dest.get("address")),
                                              ("Port", dest.get("port")), ("Path", dest.get("path"))])))
    if isinstance(evidence, EgressBudgetEvidence) and evidence.model_bytes > 0:
        parts.append(_section("Egress progress", _progress(evidence.bytes_sent, evidence.model_bytes)))
    correlation = _correlation(evidence)
    if correlation is not None:
        parts.append(_section(correlation[0], _kv(correlation[1])))
    parts.append(_section("Fingerprints", _kv(_fingerprints(evidence))))
    rule = detail.rule
    ids = [f"<b>ATT&amp;CK:</b> {_e(_named(rule.attack))}" if rule.attack else "",
           f"<b>ATLAS:</b> {_e(_named(rule.atlas))}" if rule.atlas else ""]
    tactics = f"<p>{' &nbsp; '.join(i for i in ids if i)}</p>" if rule.techniques else ""
    parts.append(_section(f"Rule: {rule.title}", f"<p>{_e(rule.description)}</p>{tactics}"))
    justifications = [r for r in detail.reviews if r["action"] == "justify"]
    if justifications:
        items = "".join(f"<li><b>{_e(r['user'])}</b> ({_e(local_time(r['time']))}): {_e(r['text'])}</li>"
                        for r in justifications)
        parts.append(_section("Justifications", f"<ul>{items}</ul>"))
    if evidence.other:  # keys of an older record that no evidence type names
        parts.append(_section("Other evidence", _kv(sorted(evidence.other.items()))))
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
