"""Rule `model-copy`: a new file whose content matches a protected model is a copy of it.

The quick fingerprint (size + sampled blocks) lets this fire the moment a copy lands; the SHA-256, when
already known, is reported as confirmation. Severity grows with how far the destination is from the
source's home: a temporary folder is a classic staging place for exfiltration.

A file with other bytes can still be a copy: converted to another container, re-sharded, cast to another
float dtype, or holding only some tensors. Tensor fingerprints recognise it (`detect_derived_copy`); the
alert then names the source model and the share of its tensors and bytes that the new file holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from weightwarden.agent.events import Alert, Destination, ModelFile
from weightwarden.agent.inventory import TensorMatch

RULE_ID = "model-copy"
SEVERITY_BY_DESTINATION = {"temporary": 6, "local": 5}


@dataclass(frozen=True, slots=True)
class CopyCandidate:
    """A new model file and the protected files it matches: byte-identical sources first, else tensor matches."""

    new: ModelFile
    sources: tuple[ModelFile, ...] = ()
    derived: tuple[TensorMatch, ...] = ()
    destination_kind: str = "local"
    event_ids: tuple[str, ...] = ()


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


def detect_derived_copy(new: ModelFile, matches: list[TensorMatch], destination_kind: str,
                        event_ids: tuple[str, ...] = ()) -> Alert | None:
    """An alert for a file holding tensors of a protected model, or None when none matched."""
    if not matches:
        return None
    best = matches[0]
    tensor_share, byte_share = round(best.tensor_share, 4), round(best.byte_share, 4)
    whole = best.matched_tensors == best.total_tensors
    how = "all" if whole else f"{best.matched_tensors} of {best.total_tensors}"
    return Alert(
        rule_id=RULE_ID,
        title=f"{'Converted' if whole else 'Partial'} copy of protected model {best.model}",
        severity=SEVERITY_BY_DESTINATION.get(destination_kind, 5),
        message=(f"{new.path} ({new.format}) holds {how} tensors of model {best.model} "
                 f"({tensor_share:.0%} of its tensors, {byte_share:.0%} of its bytes)"),
        paths=(*best.source_paths[:4], new.path),
        model=best.model,
        destination=Destination(kind=destination_kind, path=new.path),
        evidence={
            "source_model": best.model,
            "source_paths": list(best.source_paths[:20]),
            "copy_path": new.path,
            "format": new.format,
            "size": new.size,
            "matched_on": "tensor_fingerprints",
            "matched_tensors": best.matched_tensors,
            "total_tensors": best.total_tensors,
            "tensor_share": tensor_share,
            "matched_bytes": best.matched_bytes,
            "total_bytes": best.total_bytes,
            "byte_share": byte_share,
            "element_share": round(best.matched_elements / best.total_elements, 4) if best.total_elements else 0.0,
            "sha256": new.sha256,
            "other_models": [m.model for m in matches[1:5]],
        },
        event_ids=event_ids,
    )
