"""Rule `model-copy`: a new file whose content matches a protected model is a copy of it.

The quick fingerprint (size + sampled blocks) lets this fire the moment a copy lands; the SHA-256, when
already known, is reported as confirmation. A file with other bytes can still be a copy: converted to
another container, re-sharded, cast, quantised, pruned, fine-tuned further, merged with an adapter,
exported to ONNX or TorchScript, or holding only some tensors. Tensor similarity (agent/similarity)
recognises it; the alert then names the source model, the share of its private tensors and bytes that the
new file holds, how similar they are and which they are.

The inventory finds the matches and the agent names the place (detect/places.py); they come in as a
`CopyCandidate` through `DetectionEngine.copy`. The loaded copy rule (rules/detections/20_model_copy.yml)
gives the alert its id, title, description, ATT&CK/ATLAS ids and, from its severity_by_destination, its
severity: the one table of how far each kind of place is from the model's home (correlations/copy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from weightwarden.agent.alert_evidence import CopyEvidence, DerivedCopyEvidence
from weightwarden.agent.detect.correlations.copy import severity_for
from weightwarden.agent.events import Alert, Destination, ModelFile, ProcessInfo, display_path
from weightwarden.agent.similarity.matcher import TensorMatch

if TYPE_CHECKING:
    from weightwarden.agent.detect.rules import Rule

RULE_ID = "model-copy"
SOURCES_LISTED = 4  # other protected files with the same bytes, in the evidence
DERIVED_PATHS_LISTED = 20


@dataclass(frozen=True, slots=True)
class CopyCandidate:
    """A new model file and the protected models it matches, as the inventory found them.

    `sources`: protected files with the same bytes (best first); `derived`: tensor-fingerprint matches,
    used only when there are no sources; `destination_kind`: where the file is (detect/places.py);
    `process`: who wrote it, when a sensor attributed the write (the alert's process; None: unknown).
    """

    new: ModelFile
    sources: tuple[ModelFile, ...] = ()
    derived: tuple[TensorMatch, ...] = ()
    destination_kind: str = "local"
    event_ids: tuple[str, ...] = ()
    process: ProcessInfo | None = None


def copy_alert(candidate: CopyCandidate, rule: Rule) -> Alert | None:
    """The model-copy alert for a candidate under the loaded copy rule, or None when nothing matched."""
    severity, why = severity_for(rule.severity_by_destination, rule.severity, candidate.destination_kind)
    if candidate.sources:
        return _byte_copy(candidate, rule.id, rule.title, severity, why, rule.description, rule.techniques)
    if candidate.derived:
        return _derived_copy(candidate, rule.id, rule.title, severity, why, rule.description, rule.techniques)
    return None


def _byte_copy(candidate: CopyCandidate, rule_id: str, title: str, severity: int, why: str | None,
               description: str, techniques: tuple[str, ...]) -> Alert:
    new, source = candidate.new, candidate.sources[0]
    confirmed = bool(new.sha256 and new.sha256 == source.sha256)
    return Alert(
        rule_id=rule_id,
        title=f"{title}: {source.model}",
        severity=severity,
        message=f"{new.shown} is a copy of {source.shown} (model {source.model})",
        paths=(source.shown, new.shown),
        model=source.model,
        process=candidate.process,
        destination=Destination(kind=candidate.destination_kind, path=new.shown),
        evidence=CopyEvidence(
            description=description, techniques=techniques, source_path=source.shown, copy_path=new.shown,
            format=new.format, size=new.size, matched_on="sha256" if confirmed else "quick_fingerprint",
            quick_fingerprint=new.quick_fingerprint, sha256=source.sha256,
            other_sources=tuple(s.shown for s in candidate.sources[1:1 + SOURCES_LISTED]), severity_by=why),
        event_ids=candidate.event_ids,
    )


def _derived_copy(candidate: CopyCandidate, rule_id: str, title: str, severity: int, why: str | None,
                  description: str, techniques: tuple[str, ...]) -> Alert:
    new, best = candidate.new, candidate.derived[0]
    tensor_share, byte_share = round(best.tensor_share, 4), round(best.byte_share, 4)
    whole = best.matched_tensors == best.total_tensors
    how = "all" if whole else f"{best.matched_tensors} of {best.total_tensors}"
    private = "private " if best.public_tensors else ""
    carried = (f"; it carries {best.delta_share:.0%} of the fine-tune from {best.public_base}"
               if best.delta_share is not None and best.public_base else "")
    return Alert(
        rule_id=rule_id,
        # "Converted copy of protected model: llama": the kind of copy, then the rule's own title.
        title=f"{'Converted' if whole else 'Partial'} {title[:1].lower()}{title[1:]}: {best.model}",
        severity=severity,
        message=(f"{new.shown} ({new.format}) holds {how} {private}tensors of model {best.model} "
                 f"({tensor_share:.0%} of its {private}tensors, {byte_share:.0%} of their bytes; "
                 f"similarity {best.similarity:.2f}, sign agreement {best.agreement:.1%}{carried})"),
        paths=(*(display_path(p) for p in best.source_paths[:4]), new.shown),
        model=best.model,
        process=candidate.process,
        destination=Destination(kind=candidate.destination_kind, path=new.shown),
        evidence=DerivedCopyEvidence(
            description=description, techniques=techniques, source_model=best.model,
            source_paths=tuple(display_path(p) for p in best.source_paths[:DERIVED_PATHS_LISTED]),
            copy_path=new.shown, format=new.format,
            size=new.size, matched_tensors=best.matched_tensors, total_tensors=best.total_tensors,
            tensor_share=tensor_share, matched_bytes=best.matched_bytes, total_bytes=best.total_bytes,
            byte_share=byte_share,
            element_share=round(best.matched_elements / best.total_elements, 4) if best.total_elements else 0.0,
            sha256=new.sha256, other_models=tuple(m.model for m in candidate.derived[1:1 + SOURCES_LISTED]),
            severity_by=why, similarity=best.similarity, agreement=best.agreement,
            matched_names=best.matched_names, public_tensors=best.public_tensors, public_base=best.public_base,
            delta_share=best.delta_share,
            delta_z=min(best.delta_z, 1e6) if best.delta_z is not None else None),
        event_ids=candidate.event_ids,
    )
