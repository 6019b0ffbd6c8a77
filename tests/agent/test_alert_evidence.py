"""Typed evidence: what the engine writes reads back as the same type; older and foreign records read too."""

from __future__ import annotations

import dataclasses
import json

import pytest

from weightwarden.agent.alert_evidence import (
    KINDS,
    AlertEvidence,
    BulkCollectionEvidence,
    CopyEvidence,
    DerivedCopyEvidence,
    EgressBudgetEvidence,
    Lineage,
    RuleMatchEvidence,
    SequenceStep,
    ServingExtractionEvidence,
    StagingEvidence,
    StagingFacts,
    TimelineEntry,
    TransferEvidence,
    TransferFacts,
    evidence_from,
)
from weightwarden.agent.events import Alert

SHARED = {"description": "why", "techniques": ("T1048", "AML.T0025"), "process_tree": "session:4", "events": 3,
          "updates": 1, "first_seen": "2026-11-29T12:00:00.000Z", "incident": "first-id", "canary": True,
          "timeline": (TimelineEntry("2026-11-29T12:00:00.000Z", "model-read", "e1", "cp read a"),),
          "sequence": (SequenceStep("staged", "model-read", "e1"), SequenceStep("sent", "network-connection", "e2"))}
EXAMPLES: list[AlertEvidence] = [
    RuleMatchEvidence(**SHARED),
    CopyEvidence(source_path="/m/a", copy_path="/tmp/a", format="safetensors", size=10, matched_on="sha256",
                 quick_fingerprint="q", sha256="ab", other_sources=("/m/b",), severity_by="destination temporary"),
    DerivedCopyEvidence(source_model="a", source_paths=("/m/a1", "/m/a2"), copy_path="/tmp/a.gguf", format="gguf",
                        size=9, matched_tensors=3, total_tensors=10, tensor_share=0.3, matched_bytes=3,
                        total_bytes=10, byte_share=0.3, element_share=0.3, sha256="cd", other_models=("b",)),
    EgressBudgetEvidence(**SHARED, bytes_sent=6, bytes_read=10, model_bytes=10, ratio=0.5, progress=0.6,
                         connections=(("1.2.3.4:443/4000", 6),), models=("a",), files=("/m/a",)),
    BulkCollectionEvidence(**SHARED, distinct_models=5, models=("a", "b", "c", "d", "e"), window_seconds=600.0),
    TransferEvidence(**SHARED, transfer=TransferFacts("scp", "h:/tmp/", "host", "h", ("/m/a",))),
    StagingEvidence(**SHARED, staging=StagingFacts("tar", "archive", "/tmp/a.tgz", ("/m",)),
                    lineage=Lineage("/m/a", "/tmp/a.tgz")),
    ServingExtractionEvidence(**SHARED, server="0.0.0.0:11434 (netns 1)", server_process="ollama[7] bo",
                              peer="203.0.113.9", peer_connections=2500, request_bytes=250000, answer_bytes=5000000,
                              answer_bytes_hour=5000000, answer_bytes_day=5000000, connections_in_burst=2500,
                              budgets={"burst_connections": 1000.0}, exceeded=("burst",), models=("llama",)),
]


def test_every_kind_has_an_example() -> None:
    assert {type(e) for e in EXAMPLES} == set(KINDS)


@pytest.mark.parametrize("evidence", EXAMPLES, ids=[type(e).__name__ for e in EXAMPLES])
def test_stored_json_reads_back_as_the_same_typed_evidence(evidence: AlertEvidence) -> None:
    stored = json.loads(json.dumps(Alert("r", "t", 5, "m", evidence=evidence).to_dict()))["evidence"]
    assert evidence_from(stored) == evidence
    assert type(evidence_from(stored)) is type(evidence)


def test_the_stored_keys_are_the_ones_records_always_had() -> None:
    egress = EXAMPLES[3].to_dict()
    assert {"bytes_sent", "bytes_read", "model_bytes", "ratio", "progress", "connections", "models", "updates",
            "incident", "timeline", "techniques", "description", "process_tree", "events", "first_seen"} <= set(egress)
    assert egress["connections"] == {"1.2.3.4:443/4000": 6}
    assert egress["timeline"] == [{"time": "2026-11-29T12:00:00.000Z", "action": "model-read", "event_id": "e1",
                                   "message": "cp read a"}]
    assert egress["sequence"] == [{"step": "staged", "action": "model-read", "event_id": "e1"},
                                  {"step": "sent", "action": "network-connection", "event_id": "e2"}]
    assert EXAMPLES[5].to_dict()["transfer"] == {"tool": "scp", "destination": "h:/tmp/", "kind": "host",
                                                 "host": "h", "sources": ["/m/a"]}
    assert EXAMPLES[6].to_dict()["lineage"] == {"read": "/m/a", "wrote": "/tmp/a.tgz"}
    # A copy is no incident of events: no counts, as copy records never had.
    assert set(EXAMPLES[1].to_dict()) == {"source_path", "copy_path", "format", "size", "matched_on",
                                          "quick_fingerprint", "sha256", "other_sources", "severity_by"}
    assert RuleMatchEvidence().to_dict() == {}


def test_an_older_record_reads_with_defaults_and_keeps_what_no_type_names() -> None:
    old = {"progress": 0.52, "updates": 0, "bytes_total": 100, "process_tree": [{"name": "bash", "pid": 1}],
           "techniques": "T1048"}
    evidence = evidence_from(old)
    assert isinstance(evidence, EgressBudgetEvidence)
    assert (evidence.progress, evidence.updates, evidence.model_bytes, evidence.process_tree) == (0.52, 0, 0, None)
    assert evidence.techniques == ()
    assert evidence.other == {"bytes_total": 100, "process_tree": [{"name": "bash", "pid": 1}], "techniques": "T1048"}
    again = evidence.to_dict()  # written back unchanged; a zero count outside an incident says nothing
    assert again == {"bytes_sent": 0, "bytes_read": 0, "model_bytes": 0, "ratio": 0.0, "progress": 0.52,
                     "connections": {}, "models": [], "files": [], **{k: v for k, v in old.items() if k != "updates"}}


def test_anything_reads_without_raising() -> None:
    assert evidence_from(None) == RuleMatchEvidence()
    assert evidence_from("text").other == {"evidence": "text"}
    assert isinstance(evidence_from({"matched_on": "sha256"}), CopyEvidence)
    assert isinstance(evidence_from({"matched_on": "tensor_fingerprints"}), DerivedCopyEvidence)
    assert isinstance(evidence_from({"distinct_models": 3}), BulkCollectionEvidence)
    assert isinstance(evidence_from({"transfer": {"tool": "scp"}}), TransferEvidence)
    assert isinstance(evidence_from({"staging": {"tool": "tar"}}), StagingEvidence)
    broken = evidence_from({"timeline": [{"time": 1}], "events": "many", "canary": "yes"})
    assert isinstance(broken, RuleMatchEvidence) and broken.timeline == () and broken.events == 1
    assert broken.other == {"timeline": [{"time": 1}], "events": "many", "canary": "yes"}


def test_an_alert_takes_typed_evidence_only() -> None:
    with pytest.raises(TypeError, match="AlertEvidence"):
        Alert("r", "t", 5, "m", evidence={"progress": 0.5})  # type: ignore[arg-type]
    alert = Alert("r", "t", 5, "m", evidence=EXAMPLES[3])
    assert dataclasses.replace(alert, evidence=RuleMatchEvidence()).to_dict()["evidence"] == {}
