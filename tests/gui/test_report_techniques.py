"""The incident report names the ATT&CK/ATLAS techniques of the rule behind an alert, also for a rule that is
the second of two in a user's rule file ([detect] rule_paths), read through the agent's own rule loader."""

from __future__ import annotations

import html
from pathlib import Path

from weightwarden.agent.config import load_config
from weightwarden.agent.detect.engine import DetectionEngine
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ProcessInfo
from weightwarden.agent.store import Store
from weightwarden.gui.export import export_incident
from weightwarden.gui.rule_catalog import rules_in_effect

TWO_RULES = """id: site-model-listed
title: Site rule one
description: A model file opened by the lister.
severity: 4
techniques: [T1083]
condition:
  event.action|in: [model-opened]
  process.name|in: [site-lister]
window: 10m
---
id: site-model-to-usb
title: Site rule two
description: A model file read by the site's USB copier.
severity: 7
techniques: [T1052.001, AML.T0025]
condition:
  event.action|in: [model-read]
  process.name|in: [site-usb-copier]
window: 10m
"""


def test_the_report_shows_the_techniques_of_the_second_rule_of_a_user_file(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules" / "site.yml"
    rule_file.parent.mkdir()
    rule_file.write_text(TWO_RULES)
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[detect]\nrule_paths = ["{rule_file}"]\n')
    rules = rules_in_effect(load_config(config_path, mode="user"))
    assert rules.get("site-model-listed") is not None and rules.get("site-model-to-usb") is not None

    read = Event(Action.MODEL_READ, Category.FILE, "site-usb-copier read model.safetensors",
                 file=FileInfo(path="/models/llama/model.safetensors", size=4096), model="llama",
                 process=ProcessInfo(pid=321, name="site-usb-copier", executable="/usr/local/bin/site-usb-copier",
                                     user="ana", uid=1000, bytes_read=4096))
    raised = [a for a in DetectionEngine(rules).process(read) if isinstance(a, Alert)]
    alert = next(a for a in raised if a.rule_id == "site-model-to-usb")
    assert alert.evidence.techniques == ("T1052.001", "AML.T0025")  # as the rule declared them

    database = tmp_path / "data" / "weightwarden.db"
    database.parent.mkdir()
    store = Store(database)
    store.write(raised)
    store.close()
    reader = Store(database, read_only=True)
    try:
        assert export_incident(reader.review, alert.id, tmp_path / "report.html", rules)
    finally:
        reader.close()
    report = html.unescape((tmp_path / "report.html").read_text())
    assert "Rule: Site rule two" in report
    assert "ATT&CK:</b> T1052.001 (Exfiltration over USB)" in report
    assert "ATLAS:</b> AML.T0025 (Exfiltration via Cyber Means)" in report
