"""The rule fixtures (tests/agent/detect/fixtures/*.yml) run through the real glue: config -> settings -> engine.

A case's `settings:` is a [detect] table: written to a config file, read by `load_config`, turned into the
engine's settings by `settings_from_config`, as the agent does. `rule_edit:` edits a built-in rule file's
text the way a rule author would (`{file: 50_egress_budget.yml, replace: {"ratio: 0.5": "ratio: 0.9"}}`)
and loads the rules with it in place of the original. Shared by test_fixtures.py and the app's round trip
(tests/gui/test_rule_round_trip.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from weightwarden.agent.config import load_config
from weightwarden.agent.detect.copy import CopyCandidate
from weightwarden.agent.detect.engine import DetectionEngine, DetectSettings
from weightwarden.agent.detect.policy import settings_from_config
from weightwarden.agent.detect.replay import LineageStep, event_from
from weightwarden.agent.detect.rules import RuleSet, builtin_rule_files, load_rules
from weightwarden.agent.events import Alert

FIXTURES = Path(__file__).parent / "fixtures"
BUILTIN = load_rules()


def cases() -> Iterator[tuple[str, dict[str, Any]]]:
    """(fixture file stem: case name, case) for every case of every fixture file."""
    for path in sorted(FIXTURES.glob("*.yml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            yield f"{path.stem}: {case['name']}", case


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def detect_settings(table: Mapping[str, Any], workdir: Path) -> DetectSettings:
    """The engine's settings for a [detect] table, through the agent's own config path."""
    config = workdir / "config.toml"
    config.write_text("[detect]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in table.items()))
    return settings_from_config(load_config(config, mode="user").detect)


def rules_of(case: Mapping[str, Any], workdir: Path) -> RuleSet:
    rules = BUILTIN
    edit = case.get("rule_edit")
    if edit is not None:
        files = builtin_rule_files()
        (original,) = [f for f in files if Path(f).name == edit["file"]]
        text = Path(original).read_text()
        for old, new in edit["replace"].items():
            assert old in text, f"{edit['file']} no longer says {old!r}: update the fixture"
            text = text.replace(old, new)
        edited = workdir / "rules" / edit["file"]
        edited.parent.mkdir(exist_ok=True)
        edited.write_text(text)
        rules = load_rules([str(edited) if f == original else f for f in files])
        assert rules.problems == (), rules.problems
    if "rules" in case:
        rules = RuleSet(tuple(r for r in rules.rules if r.id in case["rules"]), ())
    return rules


def run_case(case: Mapping[str, Any], workdir: Path) -> list[Alert]:
    """The alerts the real engine raises for a case's events (and copies), in order."""
    canaries = case.get("canaries", [])
    hashes = case.get("exe_sha256", {})
    tools = case.get("tool_sha256", {})  # SHA-256 -> tool name: the installed tools the agent hashed
    engine = DetectionEngine(rules_of(case, workdir), detect_settings(case.get("settings", {}), workdir),
                             canaries=lambda: canaries, exe_sha256=hashes.get, tool_hashes=lambda: tools)
    alerts: list[Alert] = []
    states: dict[str, str] = {}  # lineage outputs: what the file pipeline made of each
    for raw in case["events"]:
        item = event_from(raw)
        if isinstance(item, LineageStep):
            alerts.extend(item.apply(engine.lineage, states))
        elif isinstance(item, CopyCandidate):
            alerts.extend(a for a in [engine.copy(item)] if a is not None)
        else:
            alerts.extend(engine.process(item))
    return alerts
