"""The audit of what a store knows: its inventory, its model-copy alerts, the access policy and grants.

One glue for `weightwarden audit` and the app's Audit view, so both show the same report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from weightwarden.agent.access.grants import GrantBook
from weightwarden.agent.access.policy import load_policies
from weightwarden.agent.audit.report import AuditReport, audit
from weightwarden.agent.audit.serving import EXPOSURE_RULES, ServingAudit, findings_of
from weightwarden.agent.cli.status_cmd import STATUS_KEY, staleness
from weightwarden.agent.serving.section import servers_in
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertSort


def audit_store(store: Store, data_dir: str, policy_paths: Iterable[str] | None = None) -> AuditReport:
    """`policy_paths`: access policy files or folders (None: the installed ones, as the agent loads them)."""
    files = store.model_files()
    # by the rule's index (review queries), not a read of every alert: a store may hold millions
    every_copy = AlertFilter(rule="model-copy", every_update=True)
    copies = [row.record for row in store.review.iter_alerts(every_copy, AlertSort("time", descending=False))]
    # the grants file is root's in system mode: an admin's report shows it (the decision trusts only its own)
    book = GrantBook(data_dir, trusted_owners=(0, os.geteuid()))
    report = audit(files, copies, policies=load_policies(policy_paths), grants=book.grants())
    report.serving = serving_audit(store)
    return report


def serving_audit(store: Store) -> ServingAudit:
    """Model servers now (the running agent's status snapshot) and the exposure findings on record."""
    raw = store.state(STATUS_KEY)
    snapshot = json.loads(raw) if raw else None
    running = snapshot is not None and not staleness(snapshot)[0]
    findings = []
    for rule in EXPOSURE_RULES:
        rows = store.review.iter_alerts(AlertFilter(rule=rule), AlertSort("time", descending=False))
        findings += findings_of(row.record for row in rows)
    findings.sort(key=lambda f: f.time)
    return ServingAudit(servers_in(snapshot) if running else [], running, findings)
