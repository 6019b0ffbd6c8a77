"""Which field of the forwarded ECS document (agent/forward/ecs.py) holds the value a rule condition reads.

A rule condition reads the engine's fields (agent/detect/fields.py); the SIEM sees the ECS document the agent
forwards. A condition field maps to an ECS field only when that document carries exactly the same value for
every event: `process.user` is `user.name`, `model` is `weightwarden.model`, `details.X` is
`weightwarden.details.X`. Fields the agent derives and never forwards (the process tree's names, the program
behind an interpreter, a parsed transfer or archiver command line, whether the file is a canary) map to
nothing, and a rule reading them cannot be exported to Sigma (agent/siem/sigma.py says which and why).

`ECS_TYPES` is the type each ECS field has in the shipped index template (siem/elastic/); the template is
checked against it (tests/agent/siem/test_template.py), so a Sigma query on a field always searches a field
the template indexes with the type the comparison needs (a range on `long`, not on a string).
"""

from __future__ import annotations

# condition field (agent/detect/condition.py KNOWN_FIELDS) -> ECS document field, for those carried exactly.
CONDITION_TO_ECS: dict[str, str] = {
    "event.action": "event.action",
    "event.category": "event.category",
    "event.severity": "event.severity",
    "event.id": "event.id",
    "model": "weightwarden.model",
    "file.path": "file.path",
    "file.name": "file.name",
    "file.size": "file.size",
    "file.sha256": "file.hash.sha256",
    "process.pid": "process.pid",
    "process.name": "process.name",
    "process.executable": "process.executable",
    "process.command_line": "process.command_line",
    "process.user": "user.name",
    "process.ppid": "process.parent.pid",
    # a connection's ends and bytes are ECS fields (agent/forward/ecs.py _network), not details
    "details.bytes_sent": "source.bytes",
    "details.bytes_received": "destination.bytes",
    "destination.address": "destination.address",
    "destination.port": "destination.port",
}

# details.* keys the template indexes (weightwarden.details is otherwise kept in _source only: its keys differ
# per kind of record, and one key may be an object in one record and text in another).
INDEXED_DETAILS: dict[str, str] = {
    "bytes_acked": "long",
    "phase": "keyword",
}

# Why a condition field the ECS document does not carry cannot be searched in the SIEM.
NOT_CARRIED: dict[str, str] = {
    "process.tree": "the process tree's key (its session) is not forwarded",
    "process.tree.names": "the names of the process's ancestors are not forwarded (only process.parent.pid)",
    "process.tree.executables": "the executables of the process's ancestors are not forwarded",
    "process.parent.name": "the parent's name is not forwarded (only process.parent.pid)",
    "process.program": "the real program (the one ld.so loads) is not forwarded",
    "process.program.name": "the real program (the one ld.so loads) is not forwarded",
    "process.interpreter": "the interpreter the agent recognised by content is not forwarded",
    "process.script": "the script an interpreter runs is not forwarded",
    "process.script.name": "the script an interpreter runs is not forwarded",
    "process.tool": "the tool the agent identified by content is not forwarded",
    "process.tool.identified_by": "the tool the agent identified by content is not forwarded",
    "canary": "whether the file is a planted canary is known to the agent only (its canary index)",
    "destination.kind": "the kind of a destination (network, removable, share) is only under weightwarden.details",
    "destination.path": "a copy's destination path is only under weightwarden.details, not indexed",
}
_DERIVED_ROOTS = {
    "transfer": "the transfer tool's command line parsed by the agent (transfer.*) is not forwarded",
    "staging": "the archiver's command line parsed by the agent (staging.*) is not forwarded",
    "tree": "per-tree state of the engine (tree.*) is not forwarded",
}

# The type of each ECS field the Sigma rules may search, in the shipped template.
ECS_TYPES: dict[str, str] = {
    "event.kind": "keyword", "event.action": "keyword", "event.category": "keyword", "event.severity": "long",
    "event.id": "keyword", "weightwarden.model": "keyword", "file.path": "keyword", "file.name": "keyword",
    "file.size": "long", "file.hash.sha256": "keyword", "process.pid": "long", "process.name": "keyword",
    "process.executable": "keyword", "process.command_line": "keyword", "user.name": "keyword",
    "process.parent.pid": "long", "host.name": "keyword", "rule.id": "keyword", "source.bytes": "long",
    "destination.bytes": "long", "destination.address": "keyword", "destination.port": "long",
    **{f"weightwarden.details.{key}": kind for key, kind in INDEXED_DETAILS.items()},
}


def ecs_field(condition_field: str) -> tuple[str | None, str]:
    """The ECS field holding a condition field's value, or None and why the SIEM cannot search it."""
    if condition_field in CONDITION_TO_ECS:
        return CONDITION_TO_ECS[condition_field], ""
    root, _, rest = condition_field.partition(".")
    if root == "details":
        if rest in INDEXED_DETAILS:
            return f"weightwarden.details.{rest}", ""
        return None, f"weightwarden.details.{rest} is not indexed by the shipped template"
    if root in _DERIVED_ROOTS:
        return None, _DERIVED_ROOTS[root]
    return None, NOT_CARRIED.get(condition_field, "the ECS record does not carry it")
