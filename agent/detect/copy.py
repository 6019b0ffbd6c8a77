"""Rule `model-copy`: a new file whose content matches a protected model is a copy of it.

The quick fingerprint (size + sampled blocks) lets this fire the moment a copy lands; the SHA-256, when
already known, is reported as confirmation. Severity grows with how far the destination is from the
source's home: a temporary folder is a classic staging place for exfiltration.
"""

from __future__ import annotations

from weightwarden.agent.events import Alert, Destination, ModelFile

RULE_ID = "model-copy"
SEVERITY_BY_DESTINATION = {"temporary": 6, "local": 5}


def detect_copy(new: ModelFile, sources: list[ModelFile], destination_kind: str,
                event_ids: tuple[str, ...] = ()) -> Alert | None:
    """An alert naming the source model and the new path, or None when nothing protected matched."""
    if not sources:
        return None
    source = sources[0]
    confirmed = bool(new.sha256 and new.sha256 == source.sha256)
    return Alert(
        rule_id=RULE_ID,
        title=f"Copy of protected model {source.model}",
        severity=SEVERITY_BY_DESTINATION.get(destination_kind, 5),
        message=f"{new.path} is a copy of {source.path} (model {source.model})",
        paths=(source.path, new.path),
        model=source.model,
        destination=Destination(kind=destination_kind, path=new.path),
        evidence={
            "source_path": source.path,
            "copy_path": new.path,
            "format": new.format,
            "size": new.size,
            "matched_on": "sha256" if confirmed else "quick_fingerprint",
            "quick_fingerprint": new.quick_fingerprint,
            "sha256": source.sha256,
            "other_sources": [s.path for s in sources[1:5]],
        },
        event_ids=event_ids,
    )
