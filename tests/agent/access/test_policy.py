"""Policy files: every kind of mistake says its file and line; a good file loads; a bad one keeps the old."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightwarden.agent.access.policy import AccessPolicies, builtin_policy_files, load_policies

GOOD = """\
id: llama
applies_to:
  models: [llama-3-8b]
  paths: [/srv/models/llama/*]
mode: enforce
allow:
  - users: [ana]
    groups: [ml]
    programs:
      - {executable: /usr/bin/python3*, sha256: %s}
      - {interpreter: python, script: /srv/train/*.py}
    parents: [/usr/bin/bash]
    services: [train@*.service]
    access: read-write
""" % ("ab" * 32)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_good_policy_loads(tmp_path: Path) -> None:
    loaded = load_policies([str(write(tmp_path, "good.yml", GOOD))])
    assert loaded.problems == ()
    policy = loaded.policies[0]
    assert (policy.id, policy.mode, policy.models) == ("llama", "enforce", ("llama-3-8b",))
    entry = policy.allow[0]
    assert entry.access == "read-write" and entry.programs[0].sha256 == "ab" * 32 and entry.line == 7
    assert entry.programs[1].interpreter == "python"


def test_the_shipped_policies_load() -> None:
    loaded = load_policies(builtin_policy_files())
    assert loaded.problems == () and loaded.policies


@pytest.mark.parametrize(("text", "line", "words"), [
    ("id: a-b\napplies_to: {models: [m]}\nallow: []\ncolour: red\n", 4, "unknown key 'colour'"),
    ("id: a-b\napplies_to: {models: [m]}\nmode: block\nallow: []\n", 3, "unknown mode 'block'"),
    ("id: a-b\napplies_to: {models: m}\nallow: []\n", 2, "applies_to.models must be a list"),
    ("id: a-b\napplies_to: {models: [m]}\nallow:\n  - users: ana\n", 4, "allow.users must be a list"),
    ("id: a-b\napplies_to: {models: [m]}\nallow:\n  - programs:\n      - executable: /bin/x\n        sha256: 12ab\n",
     6, "sha256 must be 64 hex digits"),
    ("id: a-b\napplies_to: {models: [m]}\nallow:\n  - programs:\n      - sha256: %s\n" % ("0" * 64), 5,
     "quote it"),
    ("id: a-b\napplies_to: {models: [m]}\nallow:\n  - access: execute\n", 4, "access must be one of"),
    ("id: a-b\napplies_to: {models: [m]}\nallow:\n  - programs: [{path: /bin/x}]\n", 4, "unknown key 'path'"),
    ("id: a-b\napplies_to: {models: [m], paths: [relative/*]}\nallow: []\n", 2, "must be an absolute path"),
    ("id: A B\napplies_to: {models: [m]}\nallow: []\n", 1, "lowercase letters"),
    ("id: a-b\nallow: []\n", 1, "missing required key 'applies_to'"),
    ("id: a-b\napplies_to: {models: [m]\nallow: []\n", 3, "YAML syntax"),
])
def test_each_mistake_names_its_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, "bad.yml", text)
    loaded = load_policies([str(path)])
    assert loaded.policies == ()
    assert any(p.file == str(path) and p.line == line and words in p.message for p in loaded.problems), \
        [str(p) for p in loaded.problems]
    assert f"{path}:{line}:" in "\n".join(str(p) for p in loaded.problems)


def test_every_problem_of_a_file_is_listed_in_one_pass(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yml", "id: a-b\napplies_to: {models: [m]}\nmode: nope\nallow:\n  - access: x\n"
                                      "    users: [ana]\nextra: 1\n")
    lines = sorted(p.line or 0 for p in load_policies([str(path)]).problems)
    assert lines == [3, 5, 7]


def test_duplicate_ids_and_overlaps_are_refused_with_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yml", "id: one\napplies_to: {models: [m]}\nallow: []\n")
    second = write(tmp_path, "b.yml", "id: one\napplies_to: {models: [n]}\nallow: []\n---\n"
                                      "id: two\napplies_to: {models: [m]}\nallow: []\n")
    loaded = load_policies([str(first), str(second)])
    assert [p.id for p in loaded.policies] == ["one"] and loaded.policies[0].path == str(first)
    text = "\n".join(str(p) for p in loaded.problems)
    assert f"{second}:1: policy one: duplicate policy id (first at {first}:1)" in text
    assert f"{second}:5: policy two: model 'm' is also named by policy one ({first}:1)" in text


def test_the_most_specific_policy_governs(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", "id: broad\napplies_to: {paths: ['/srv/*']}\nallow: []\n---\n"
                                    "id: narrow\napplies_to: {paths: ['/srv/models/llama/*']}\nallow: []\n---\n"
                                    "id: named\napplies_to: {models: [llama]}\nallow: []\n")
    loaded = load_policies([str(path)])
    assert loaded.problems == ()
    assert loaded.applying("/srv/models/llama/a.safetensors", "llama").id == "named"  # type: ignore[union-attr]
    assert loaded.applying("/srv/models/llama/a.safetensors", None).id == "narrow"  # type: ignore[union-attr]
    assert loaded.applying("/srv/other/b.gguf", None).id == "broad"  # type: ignore[union-attr]
    assert loaded.applying("/home/x/b.gguf", None) is None


def test_a_malformed_file_is_refused_whole_and_the_previous_policy_stays(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", GOOD)
    policies = AccessPolicies([str(tmp_path)])
    assert policies.current.get("llama") is not None
    path.write_text(GOOD.replace("mode: enforce", "mode: enforced"))
    reloaded = policies.reload()
    assert any(p.line == 5 and "unknown mode" in p.message for p in reloaded.problems)
    kept = reloaded.get("llama")
    assert kept is not None and kept.mode == "enforce"
    path.write_text(GOOD.replace("mode: enforce", "mode: monitor"))
    assert policies.reload().get("llama").mode == "monitor"  # type: ignore[union-attr]
