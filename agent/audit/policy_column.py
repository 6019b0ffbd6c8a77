"""The audit's `policy` column: which access policy governs a model file, who it lets open it, its grants.

`policy_of(path, model, policies, grants, now)` is the JSON object the report keeps per file (None when no
policy governs it: then the file's permissions alone decide who opens it, and grants do not matter):

    id, mode             the governing policy (agent/access/policy.py's overlap rule) and monitor | enforce
    file, line           where it is written
    allow                its allow entries: {"users", "groups", "programs", "parents", "services", "access",
                         "line"}; a program is {"executable", "sha256", "interpreter", "script",
                         "script_sha256"} with only what the entry gives
    grants               the active grants covering it: {"id", "user", "program", "expires_at", "seconds_left"}

`policy_text` says the same in one line, for the text table, the HTML page and the app.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from weightwarden.agent.access.grants import Grant
from weightwarden.agent.access.policy import AllowEntry, PolicySet, glob_match


def policy_of(path: str, model: str | None, policies: PolicySet, grants: Iterable[Grant],
              now: float) -> dict[str, Any] | None:
    policy = policies.applying(path, model)
    if policy is None:
        return None
    covering = [g for g in grants if g.expires_at > now and (g.model == model or glob_match(g.model)(path))]
    return {"id": policy.id, "mode": policy.mode, "file": policy.path, "line": policy.line,
            "allow": [_entry(e) for e in policy.allow],
            "grants": [{"id": g.id, "user": g.user, "program": g.program, "expires_at": g.expires_at,
                        "seconds_left": round(g.expires_at - now)} for g in covering]}


def _entry(entry: AllowEntry) -> dict[str, Any]:
    return {"users": list(entry.users), "groups": list(entry.groups),
            "programs": [{k: v for k, v in asdict(p).items() if v is not None} for p in entry.programs],
            "parents": list(entry.parents), "services": list(entry.services), "access": entry.access,
            "line": entry.line}


def _program_text(program: dict[str, Any]) -> str:
    if program.get("script"):
        return f"{program.get('interpreter') or 'script'} {program['script']}"
    if program.get("executable"):
        pinned = " (pinned sha256)" if program.get("sha256") else ""
        return f"{program['executable']}{pinned}"
    if program.get("sha256"):
        return f"sha256:{str(program['sha256'])[:12]}..."
    return program.get("interpreter") or "any program"


def allow_text(entry: dict[str, Any]) -> str:
    """One allow entry: `ana, @ml with /usr/bin/python3 under /usr/bin/jupyter* (read)`."""
    who = ", ".join([*entry["users"], *(f"@{g}" for g in entry["groups"])]) or "anyone"
    parts = [who]
    if entry["programs"]:
        parts.append("with " + " or ".join(_program_text(p) for p in entry["programs"]))
    if entry["parents"]:
        parts.append("under " + " or ".join(entry["parents"]))
    if entry["services"]:
        parts.append("in " + " or ".join(entry["services"]))
    return " ".join(parts) + f" ({entry['access']})"


def grant_text(grant: dict[str, Any]) -> str:
    left = max(0, int(grant["seconds_left"]))
    return f"{grant['user']} ({left // 3600} h {left % 3600 // 60:02d} min left)"


def policy_text(policy: dict[str, Any] | None) -> str:
    """The column in one line: `llama-weights enforce (llama.yml:3): ana (read); grants: bob (7 h 59 min left)`."""
    if policy is None:
        return "-"
    allowed = "; ".join(allow_text(e) for e in policy["allow"]) or "nobody"
    text = f"{policy['id']} {policy['mode']} ({os.path.basename(policy['file'])}:{policy['line']}): {allowed}"
    if policy["grants"]:
        text += "; grants: " + ", ".join(grant_text(g) for g in policy["grants"])
    return text
