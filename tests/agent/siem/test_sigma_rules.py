"""`weightwarden rules export --sigma DIR`: the rules as Sigma, converted by pySigma's own backends (Lucene for
Elasticsearch and OpenSearch, Splunk SPL), and the Lucene queries run against osmem-server loaded with the
agent's real ECS documents: each query matches exactly the events the rule's condition matches (the ones
the engine alerted on among them), and none of the quiet ones."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agent.siem.conftest import Loaded
from tests.agent.siem.corpus import SIEM
from weightwarden.agent.cli.main import main
from weightwarden.agent.detect.engine import JUDGED_ACTIONS
from weightwarden.agent.detect.fields import event_fields
from weightwarden.agent.detect.rules import Rule, builtin_rule_files, load_rules
from weightwarden.agent.events import Event
from weightwarden.agent.siem.sigma import SIGMA_NAMESPACE, Exported, Skipped, export, level

sigma_collection = pytest.importorskip("sigma.collection", reason="pySigma is in the test extra")
from sigma.backends.elasticsearch import LuceneBackend  # noqa: E402
from sigma.backends.opensearch import OpensearchLuceneBackend  # noqa: E402
from sigma.backends.splunk import SplunkBackend  # noqa: E402
from sigma.processing.pipeline import ProcessingPipeline  # noqa: E402

BUILTIN = load_rules()
SHIPPED = SIEM / "sigma" / "rules"

# Rules written for this test: every operator of the condition language on fields the ECS record carries,
# nested any/all/not, and the rule allowlists the export translates. Values in the case the events use
# (Lucene keyword fields compare case-sensitively: docs/siem.md).
OPERATOR_RULES = """
id: ops-in-startswith
title: in and startswith
severity: 5
condition:
  event.action|in: [model-read, model-opened, model-held]
  file.path|startswith: [/home/ana/, /m/]
  process.name|in: [cp, scp, rsync, tar, gpg, firefox]
---
id: ops-not-any-exists
title: not, any, exists
severity: 6
condition:
  event.action|in: [model-read, model-held, model-opened]
  model|exists: true
  not:
    any:
      - process.executable|startswith: [/usr/lib/, /bin/]
      - process.user: root
      - all: [{process.name: python3}, {file.size|lt: 1000}]
---
id: ops-numbers
title: numbers
severity: 9
condition:
  event.action: network-connection
  details.bytes_sent|gte: 1048576
  not: {details.bytes_sent|gt: 900000000}
---
id: ops-endswith-contains-glob
title: endswith, contains, glob
severity: 3
condition:
  any:
    - file.name|endswith: [.gguf, .zip]
    - process.command_line|contains: [upload, " s3 "]
  file.path|glob: ["/home/*", "/m/?.safetensors", "/media/*"]
---
id: ops-allow
title: allowlists
severity: 7
condition: {event.action|in: [model-read, model-held], model|exists: true}
allow: {users: [svc-eval], paths: ["/m/*"]}
---
id: ops-exists-false-and-eq-number
title: exists false, numbers as values
severity: 1
condition:
  event.action: model-read
  process.executable|exists: true
  process.ppid|exists: false
  file.size: [100, 5000000]
"""


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "ops.yml"
    path.write_text(OPERATOR_RULES)
    return path


def exported(rules: tuple[Rule, ...], builtin: bool = True) -> list[Exported]:
    return [e for e in (export(r, builtin=builtin) for r in rules) if isinstance(e, Exported)]


def collection(results: list[Exported]) -> Any:
    return sigma_collection.SigmaCollection.from_yaml("\n---\n".join(yaml.safe_dump(e.sigma) for e in results))


def test_every_rule_is_exported_or_named_with_why() -> None:
    results = [export(rule, builtin=True) for rule in BUILTIN.rules]
    skipped = {r.rule.id: r.reason for r in results if isinstance(r, Skipped)}
    done = {r.rule.id for r in results if isinstance(r, Exported)}
    assert done | set(skipped) == {r.id for r in BUILTIN.rules}
    assert {"evidence-tampered", "access-denied", "access-would-deny", "access-break-glass-open",
            "access-fail-open"} <= done
    assert "process.tree.names" in skipped["unexpected-app-opened-model"]
    assert "canary" in skipped["canary-model-accessed"]
    assert "process tree" in skipped["staged-model-sent"] and "process tree" in skipped["bulk-model-collection"]
    assert all(len(reason) > 30 for reason in skipped.values())


def test_what_sigma_cannot_say_the_same_way_is_not_exported(tmp_path: Path) -> None:
    path = tmp_path / "odd.yml"
    path.write_text("""
id: odd-regex
title: r
severity: 5
condition: {process.name|re: ["^python[0-9.]*$"]}
---
id: odd-glob-class
title: g
severity: 5
condition: {file.path|glob: ["/m/[ab].gguf"]}
---
id: odd-allow-process
title: p
severity: 5
condition: {event.action: model-read}
allow: {processes: [{executable: /usr/bin/rsync}]}
---
id: odd-allow-destination
title: d
severity: 5
condition: {event.action: network-connection}
allow: {destinations: ["10.0.0.*"]}
---
id: odd-detail-not-indexed
title: n
severity: 5
condition: {details.access.mode: mmap}
""")
    rules = load_rules([str(path)])
    assert rules.problems == ()
    reasons = {r.id: export(r) for r in rules.rules}
    assert all(isinstance(result, Skipped) for result in reasons.values())
    text = {key: result.reason for key, result in reasons.items() if isinstance(result, Skipped)}
    assert "regular expression" in text["odd-regex"]
    assert "character class" in text["odd-glob-class"]
    assert "real program" in text["odd-allow-process"]
    assert "destination" in text["odd-allow-destination"]
    assert "not indexed" in text["odd-detail-not-indexed"]


def test_sigma_metadata_id_level_tags_logsource() -> None:
    rules = exported(BUILTIN.rules)
    loaded = collection(rules)
    assert len(loaded.rules) == len(rules) >= 5
    for result, rule in zip(rules, loaded.rules, strict=True):
        assert str(rule.id) == str(uuid.uuid5(SIGMA_NAMESPACE, result.rule.id))
        assert rule.title == result.rule.title and rule.description
        assert rule.level.name.lower() == level(result.rule.severity)
        assert (rule.logsource.product, rule.logsource.service) == ("weightwarden", "ecs")
        assert rule.status.name.lower() == "test"
        wanted = {("atlas." if t.startswith("AML.") else "attack.") + t.lower() for t in result.rule.techniques}
        assert {f"{tag.namespace}.{tag.name}" for tag in rule.tags} == wanted
    tampered = next(r for r in loaded.rules if r.title == BUILTIN.get("evidence-tampered").title)  # type: ignore[union-attr]
    assert {f"{t.namespace}.{t.name}" for t in tampered.tags} == {"attack.t1070", "attack.t1565.001"}
    assert [level(s) for s in (0, 2, 4, 6, 9)] == ["informational", "low", "medium", "high", "critical"]


def test_ids_are_stable_across_exports() -> None:
    first = [e.sigma["id"] for e in exported(BUILTIN.rules)]
    again = [e.sigma["id"] for e in exported(load_rules().rules)]
    assert first == again and len(set(first)) == len(first)


@pytest.mark.parametrize("backend", [LuceneBackend, OpensearchLuceneBackend, SplunkBackend])
def test_every_exported_rule_converts(backend: Any, tmp_path: Path) -> None:
    rules = exported(BUILTIN.rules) + exported(load_rules([str(rules_file(tmp_path))]).rules, builtin=False)
    queries = backend(ProcessingPipeline()).convert(collection(rules))
    assert len(queries) == len(rules)
    assert all(isinstance(q, str) and "event.kind" in q for q in queries)


def test_the_shipped_sigma_rules_are_the_export(tmp_path: Path) -> None:
    """siem/sigma/rules is `weightwarden rules export --sigma` of the built-in rules, as they are now."""
    out = tmp_path / "sigma"
    assert main(["rules", "export", "--sigma", str(out), *builtin_rule_files()]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(p.name for p in SHIPPED.iterdir())
    stale = [name for name in written if (out / name).read_text() != (SHIPPED / name).read_text()]
    assert stale == [], "run: weightwarden rules export --sigma siem/sigma/rules"
    readme = (out / "README.md").read_text()
    assert "## Not exported" in readme and "canary-model-accessed:" in readme


def test_export_reports_rule_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("id: Bad Id\ntitle: x\nseverity: 11\ncondition: {event.action: a}\n")
    assert main(["rules", "export", "--sigma", str(tmp_path / "out"), str(bad), str(rules_file(tmp_path))]) == 1
    captured = capsys.readouterr()
    assert "bad.yml:1" in captured.err and "6 of 6 rules exported" in captured.out
    assert (tmp_path / "out" / "ops-numbers.yml").exists()


def _condition_matches(rule: Rule, record: Any) -> bool:
    return (isinstance(record, Event) and record.action in JUDGED_ACTIONS and rule.condition(event_fields(record))
            and not _allowed(rule, record))


def _allowed(rule: Rule, event: Event) -> bool:
    import fnmatch
    user = event.process.user if event.process else None
    path = event.file.path if event.file else None
    return bool(user and user in rule.allow.users) or bool(
        path and any(fnmatch.fnmatchcase(path, glob) for glob in rule.allow.paths))


@pytest.mark.parametrize("backend", [OpensearchLuceneBackend, LuceneBackend])
def test_lucene_queries_match_what_the_rules_match_in_real_documents(loaded: Loaded, backend: Any,
                                                                    tmp_path: Path) -> None:
    builtin = exported(BUILTIN.rules)
    ours = exported(load_rules([str(rules_file(tmp_path))]).rules, builtin=False)
    assert len(ours) == 6, "every operator rule must be exportable"
    queries = backend(ProcessingPipeline()).convert(collection(builtin + ours))
    quiet_somewhere = 0
    for result, query in zip(builtin + ours, queries, strict=True):
        hits = loaded.cluster.search(query)
        wanted = {rid for rid, (record, _host) in loaded.records.items() if _condition_matches(result.rule, record)}
        assert hits == wanted, f"{result.rule.id}: {query}"
        assert hits, f"{result.rule.id}: no fixture event matches; the comparison proves nothing"
        alerted = {eid for case in loaded.cases for alert in case.alerts if alert.rule_id == result.rule.id
                   for eid in alert.event_ids}
        assert alerted <= hits, f"{result.rule.id}: events the engine alerted on that the query misses"
        quiet = {rid for case in loaded.cases for e in case.events if e.action in JUDGED_ACTIONS
                 for rid in [e.id]} - hits
        quiet_somewhere += bool(quiet)
    assert quiet_somewhere == len(builtin + ours)


def test_every_builtin_exported_rule_alerts_in_some_fixture(loaded: Loaded) -> None:
    fired = {alert.rule_id for case in loaded.cases for alert in case.alerts}
    assert {e.rule.id for e in exported(BUILTIN.rules)} <= fired


def test_export_replaces_its_earlier_files_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sigma"
    assert main(["rules", "export", "--sigma", str(out), str(rules_file(tmp_path))]) == 0
    assert (out / "ops-numbers.yml").exists()
    (out / "someone-elses.yml").write_text("title: not ours\n")
    only = tmp_path / "one.yml"
    only.write_text("id: only-one\ntitle: t\nseverity: 2\ncondition: {event.action: model-read}\n")
    assert main(["rules", "export", "--sigma", str(out), str(only)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "only-one.yml", "someone-elses.yml"]
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["rules", "export", "--sigma", str(blocked), str(only)]) == 2
    assert "cannot write into" in capsys.readouterr().err
