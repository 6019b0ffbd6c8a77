"""Rule loading reports every problem with file and line, in one pass; `rules check` prints them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from tests.agent.cli.helpers import run_cli
from weightwarden.agent import canary
from weightwarden.agent.config import DetectSection
from weightwarden.agent.detect.durations import parse_duration
from weightwarden.agent.detect.policy import settings_from_config
from weightwarden.agent.detect.rules import load_rules

BAD = """\
id: Bad_ID
title: ""
severity: 12
techniques: [T99, AML.T0025]
condition:
  process.nme: firefox
  event.action|like: x
  details.bytes_sent|gt: lots
bogus: 1
allow:
  processes: [{executable: /x, sha256: nothex}]
  hosts: [a]
---
id: ok-rule
title: fine
severity: 3
correlate: {kind: egress-budget, ratio: -1, speed: 3}
condition: {event.action: model-read}
window: soon
sequence:
  within: 1m
  steps: [{name: a, condition: {event.action: model-read}}]
"""


def test_every_problem_has_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BAD)
    (tmp_path / "syntax.yml").write_text("id: x\n  title: [unclosed\n")
    rules = load_rules([str(tmp_path)])
    found = {(Path(p.file).name, p.line, p.message.split(" (")[0]) for p in rules.problems}
    assert rules.rules == ()
    expected = {
        ("bad.yml", 1, "id 'Bad_ID' must be lowercase letters, digits and dashes"),
        ("bad.yml", 2, "title must be non-empty text"),
        ("bad.yml", 3, "severity must be a whole number 0-10, got 12"),
        ("bad.yml", 4, "'T99' is not an ATT&CK"),
        ("bad.yml", 6, "unknown field 'process.nme'"),
        ("bad.yml", 7, "unknown operator 'like' in 'event.action|like'"),
        ("bad.yml", 8, "details.bytes_sent|gt: takes one number"),
        ("bad.yml", 9, "unknown key 'bogus'"),
        ("bad.yml", 11, "allow.processes: sha256 must be 64 hex digits"),
        ("bad.yml", 12, "unknown allowlist 'hosts'"),
        ("bad.yml", 17, "egress-budget takes no parameter 'speed'"),
        ("bad.yml", 17, "egress-budget: ratio must be above 0"),
        ("bad.yml", 19, "window must be a duration like 30s, 10m or 2h, got 'soon'"),
        ("bad.yml", 22, "sequence needs steps: a list of at least two {name, condition}"),
        ("syntax.yml", 2, "YAML syntax: mapping values are not allowed here"),
    }
    assert {(f, line, m[:40]) for f, line, m in found} == {(f, line, m[:40]) for f, line, m in expected}
    assert all(str(p).startswith(p.file) for p in rules.problems)


def test_duplicate_ids_name_the_first(tmp_path: Path) -> None:
    rule = "id: twice\ntitle: t\nseverity: 1\ncondition: {event.action: model-read}\n"
    (tmp_path / "a.yml").write_text(rule)
    (tmp_path / "b.yml").write_text("# second\n" + rule)
    rules = load_rules([str(tmp_path)])
    assert [r.id for r in rules.rules] == ["twice"]
    (problem,) = rules.problems
    assert (Path(problem.file).name, problem.line) == ("b.yml", 2) and "a.yml:1" in problem.message


def test_sequences_fire_in_order_within_their_window(tmp_path: Path) -> None:
    from weightwarden.agent.detect.engine import DetectionEngine
    from weightwarden.agent.detect.replay import event_from

    (tmp_path / "seq.yml").write_text(
        "id: read-then-send\ntitle: read then send\nseverity: 7\nsequence:\n  within: 1m\n  steps:\n"
        "    - {name: read, condition: {event.action: model-read}}\n"
        "    - {name: send, condition: {event.action: network-connection, details.bytes_sent|gte: 100}}\n")
    rules = load_rules([str(tmp_path)])
    assert rules.problems == ()
    read = {"action": "model-read", "path": "/m/a", "model": "a", "process": {"name": "x"}}
    send = {"action": "network-connection", "address": "1.2.3.4", "port": 1, "bytes_sent": 500,
            "process": {"name": "x"}}

    def run(*items: dict[str, object]) -> list[str]:
        engine = DetectionEngine(rules)
        found = []
        for item in items:
            event = event_from(item)
            assert not hasattr(event, "rule_id")
            found += [a.rule_id for a in engine.process(event)]  # type: ignore[arg-type]
        return found

    assert run({**read, "at": 0}, {**send, "at": 30}) == ["read-then-send"]
    assert run({**send, "at": 0}, {**read, "at": 1}) == []
    assert run({**read, "at": 0}, {**send, "at": 90}) == []
    assert run({**read, "at": 0}, {**send, "at": 5, "process": {"name": "y", "session": 2}}) == []


def test_durations() -> None:
    assert [parse_duration(v) for v in ("90", 90, "500ms", "10m", "2h", "x", -1)] == [
        90.0, 90.0, 0.5, 600.0, 7200.0, None, None]


def test_rules_check_command(tmp_path: Path) -> None:
    ok = run_cli("rules", "check")
    assert ok.returncode == 0 and "rules in" in ok.stdout and ok.stdout.strip().endswith("ok")
    (tmp_path / "bad.yml").write_text(BAD)
    bad = run_cli("rules", "check", str(tmp_path / "bad.yml"))
    assert bad.returncode == 1
    assert f"{tmp_path / 'bad.yml'}:6: rule Bad_ID: unknown field 'process.nme'" in bad.stderr
    listing = run_cli("rules", "list", "--json")
    ids = {json.loads(line)["id"] for line in listing.stdout.splitlines()}
    assert {"canary-model-accessed", "model-egress-budget", "transfer-tool-sent-model"} <= ids


def test_config_settings() -> None:
    section = DetectSection(allow_processes=("/usr/bin/restic@sha256:" + "AB" * 32, "/opt/x/*"),
                            allow_destinations=("s3://acme/*",), egress_ratio=0.8)
    settings = settings_from_config(section)
    assert settings.allow.processes[0].sha256 == "ab" * 32 and settings.allow.processes[1].sha256 is None
    assert settings.egress_ratio == 0.8 and settings.allow.destinations == ("s3://acme/*",)


def test_canary_is_a_valid_unique_safetensors_and_registered(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = canary.plant(str(tmp_path / "models" / "internal-7b"), str(data))
    second = canary.plant(str(tmp_path / "models" / "other.safetensors"), str(data))
    tensors = load_file(first.path)  # the real library reads what we wrote
    assert tensors["model.embed_tokens.weight"].shape == (32000, 256)
    assert tensors["model.layers.1.mlp.down_proj.weight"].dtype == np.float16
    assert abs(float(tensors["model.layers.0.self_attn.q_proj.weight"].astype(np.float32).std()) - 0.02) < 0.002
    assert first.sha256 != second.sha256
    assert {c.path for c in canary.load_registry(str(data))} == {first.path, second.path}
    assert {c.path for c in canary.Canaries(str(data))().canaries} == {first.path, second.path}
    result = run_cli("canary", "plant", str(tmp_path / "cli.safetensors"),
                     env={"WEIGHTWARDEN_DATA_DIR": str(data)})
    assert result.returncode == 0 and "planted" in result.stdout
    again = run_cli("canary", "plant", str(tmp_path / "cli.safetensors"), env={"WEIGHTWARDEN_DATA_DIR": str(data)})
    assert again.returncode == 2 and "already exists" in again.stderr
