"""The audit of what a store knows: its inventory, its model-copy alerts, the access policy and grants.

One glue for `weightwarden audit` and the app's Audit view, so both show the same report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from weightwarden.agent.access.grants import GrantBook
from weightwarden.agent.access.policy import load_policies
from weightwarden.agent.audit.report import AuditReport, audit
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
    return audit(files, copies, policies=load_policies(policy_paths), grants=book.grants())
