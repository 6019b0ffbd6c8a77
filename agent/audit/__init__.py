"""Audits of the protected model files (`weightwarden audit`): permissions, ACLs, places, readers, copies.

acl.py decodes POSIX access ACLs and applies the kernel's access check; report.py audits the inventory's
files into an AuditReport (its JSON keys are documented there); render.py writes it as a text table, HTML
and PDF; record.py turns its summary into the `audit-summary` event the agent chains and forwards.
"""

from weightwarden.agent.audit.report import FLAGS, HIGH_RISK, AuditReport, FileAudit, audit

__all__ = ["FLAGS", "HIGH_RISK", "AuditReport", "FileAudit", "audit"]
