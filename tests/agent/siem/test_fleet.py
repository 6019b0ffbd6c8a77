"""Fleet correlations (siem/sigma/fleet): loaded and converted by pySigma (Splunk and ES|QL take correlation
rules; Lucene takes their base rules), the base rules run against osmem-server and grouped as the
correlation says; the Splunk saved searches name every fleet case."""

from __future__ import annotations

import configparser
from collections import defaultdict
from typing import Any

import pytest

from tests.agent.siem.conftest import Loaded
from tests.agent.siem.corpus import INDEX, SIEM

sigma_collection = pytest.importorskip("sigma.collection", reason="pySigma is in the test extra")
from sigma.backends.elasticsearch import ESQLBackend, LuceneBackend  # noqa: E402
from sigma.backends.splunk import SplunkBackend  # noqa: E402
from sigma.correlations import SigmaCorrelationRule  # noqa: E402
from sigma.processing.pipeline import ProcessingPipeline  # noqa: E402
from sigma.rule import SigmaRule  # noqa: E402

FLEET = SIEM / "sigma" / "fleet"


def fleet() -> Any:
    return sigma_collection.SigmaCollection.load_ruleset([str(FLEET)])


def test_the_fleet_rules_load_with_their_correlations_resolved() -> None:
    rules = fleet()
    correlations = [r for r in rules.rules if isinstance(r, SigmaCorrelationRule)]
    assert {c.name for c in correlations} == {"weightwarden_same_model_on_two_hosts",
                                             "weightwarden_user_alerts_on_several_hosts"}
    for correlation in correlations:
        assert correlation.type.name == "VALUE_COUNT" and correlation.condition.fieldref == "host.name"
        (reference,) = correlation.rules
        assert isinstance(reference.rule, SigmaRule)
        assert (reference.rule.logsource.product, reference.rule.logsource.service) == ("weightwarden", "ecs")


@pytest.mark.parametrize("backend", [SplunkBackend, ESQLBackend])
def test_the_correlations_convert(backend: Any) -> None:
    queries = backend(ProcessingPipeline()).convert(fleet())
    assert len(queries) == 2
    by_hash, by_user = queries
    assert "file.hash.sha256" in by_hash and "host.name" in by_hash and ">= 2" in by_hash
    assert "user.name" in by_user and "host.name" in by_user


def _base_query(file_name: str) -> str:
    """A base rule on its own (in the fleet collection it is only the correlation's input: generate: false)."""
    (query,) = LuceneBackend(ProcessingPipeline()).convert(
        sigma_collection.SigmaCollection.load_ruleset([str(FLEET / file_name)]))
    return str(query)


def _groups(loaded: Loaded, query: str, group: str) -> dict[str, int]:
    """The correlation in OpenSearch terms: the base rule's query, hosts counted per group-by value."""
    answer = loaded.cluster.call(f"/{INDEX}/_search", "POST", {
        "size": 0, "query": {"query_string": {"query": query}},
        "aggs": {"groups": {"terms": {"field": group, "size": 1000},
                            "aggs": {"hosts": {"cardinality": {"field": "host.name"}}}}}})
    return {b["key"]: b["hosts"]["value"] for b in answer["aggregations"]["groups"]["buckets"]}


def _expected(loaded: Loaded, keep: Any, group: Any) -> dict[str, int]:
    hosts: dict[str, set[str]] = defaultdict(set)
    for doc in loaded.documents.values():
        if keep(doc) and group(doc) is not None:
            hosts[group(doc)].add(doc["host"]["name"])
    return {key: len(names) for key, names in hosts.items()}


def test_same_model_on_two_hosts_in_real_documents(loaded: Loaded) -> None:
    actions = {"model-discovered", "model-created", "model-modified", "model-moved", "model-opened", "model-read",
               "model-held", "model-written"}
    found = _groups(loaded, _base_query("10-model-prints-seen.yml"), "file.hash.sha256")
    expected = _expected(loaded, lambda d: d["event"]["kind"] == "event" and d["event"]["action"] in actions,
                         lambda d: d.get("file", {}).get("hash", {}).get("sha256"))
    assert found == expected
    flagged = {key for key, hosts in found.items() if hosts >= 2}
    assert flagged == {"e3" * 32}  # the model every host has; each host's own model is on one host only
    assert len([key for key, hosts in found.items() if hosts == 1]) >= 6


def test_one_users_alerts_on_several_hosts_in_real_documents(loaded: Loaded) -> None:
    found = _groups(loaded, _base_query("20-agent-alert.yml"), "user.name")
    expected = _expected(loaded, lambda d: d["event"]["kind"] == "alert", lambda d: d.get("user", {}).get("name"))
    assert found == expected and found["ana"] >= 2


def test_splunk_saved_searches_cover_the_fleet_cases() -> None:
    conf = configparser.ConfigParser(interpolation=None, strict=True)
    conf.read(SIEM / "splunk" / "savedsearches.conf")
    names = conf.sections()
    for wanted in ("silent for more than three heartbeats", "checkpoint never arrived", "same protected model",
                   "one user's alerts on several hosts"):
        assert any(wanted in name for name in names), wanted
    for name in names:
        search = conf[name]["search"]
        assert search.startswith("sourcetype=weightwarden:cef") and conf[name]["cron_schedule"]
    silent = next(conf[n]["search"] for n in names if "silent" in n)
    assert "act=heartbeat" in silent and "3*60" in silent
    checkpoint = next(conf[n]["search"] for n in names if "checkpoint" in n)
    assert "act=chain-checkpoint" in checkpoint and "2*300" in checkpoint
