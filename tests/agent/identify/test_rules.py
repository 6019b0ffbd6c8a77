"""The format rules are data: lint them, and check how they are loaded, ordered and matched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yara

from weightwarden.agent.identify import FormatRules, Identifier, RuleLoadError, load_format_rules
from weightwarden.agent.identify.checks import CHECKS
from weightwarden.agent.identify.yara_rules import RuleSource, compile_format_rules, read_rule_sources

# The `id` column of the table in /work/shared/FORMATS.md.
FORMATS_MD_IDS = {
    "safetensors", "gguf", "ggml", "pytorch-zip", "pytorch-legacy", "torchscript", "executorch", "onnx",
    "tf-savedmodel", "tflite", "keras-h5", "keras-v3", "coreml", "numpy-npy", "numpy-npz", "pickle",
    "joblib", "flax-msgpack", "openvino-ir", "paddle", "nemo",
} | {"sealed"}  # and our own container (`weightwarden seal`, docs/sealing.md)
REPOSITORY = Path(__file__).resolve().parents[3]
REQUIRED_META = ("format", "description", "reference")
SOURCES = read_rule_sources()


@pytest.mark.parametrize("source", SOURCES, ids=[source.name for source in SOURCES])
def test_rule_file_lint(source: RuleSource) -> None:
    rules = list(yara.compile(source=source.text, externals={"file_size": 0}))

    assert rules, "a rule file holds at least one rule"
    for rule in rules:
        missing = [key for key in REQUIRED_META if not isinstance(rule.meta.get(key), str) or not rule.meta[key]]
        assert not missing, f"{source.name}: rule {rule.identifier} lacks meta {missing}"
        assert rule.meta["format"] in FORMATS_MD_IDS, f"{source.name}: unknown format {rule.meta['format']}"
        reference = rule.meta["reference"]
        assert reference.startswith("https://") or (REPOSITORY / reference).is_file(), reference


def test_each_required_family_has_a_rule_and_a_check() -> None:
    formats = load_format_rules().formats

    assert set(formats) >= {"safetensors", "gguf", "pytorch-zip", "pytorch-legacy", "onnx", "numpy-npy",
                            "numpy-npz", "pickle"}
    assert all(format_id in CHECKS for format_id in formats), "every rule is confirmed by a structural check"


def test_specific_formats_come_before_generic_pickle() -> None:
    formats = load_format_rules().formats

    assert formats.index("pytorch-legacy") < formats.index("pickle")
    assert formats[-1] == "pickle"


def test_rules_are_compiled_once() -> None:
    assert load_format_rules() is load_format_rules()


def test_match_sees_the_real_file_size_not_the_window_length() -> None:
    rules = compile_format_rules([RuleSource("big.yar", """
        rule big { meta: format = "tflite" condition: file_size > 1000 and filesize < 100 }
    """)])

    assert rules.match(b"tiny window", file_size=5000) == ["tflite"]
    assert rules.match(b"tiny window", file_size=500) == []


def test_candidates_come_in_rule_order_without_repeats() -> None:
    rules = compile_format_rules([
        RuleSource("10_a.yar", 'rule a1 { meta: format = "gguf" condition: true }'
                               'rule a2 { meta: format = "onnx" condition: true }'),
        RuleSource("20_b.yar", 'rule b1 { meta: format = "gguf" condition: true }'
                               'rule a1 { meta: format = "pickle" condition: true }'),
    ])

    assert rules.match(b"x", file_size=1) == ["gguf", "onnx", "pickle"]


def test_syntax_error_names_the_file_and_yara_message() -> None:
    good = RuleSource("10_good.yar", 'rule ok { meta: format = "gguf" condition: true }')
    bad = RuleSource("20_bad.yar", 'rule broken {\n meta: format = "gguf"\n condition: file_sise > 1 }')

    with pytest.raises(RuleLoadError) as raised:
        compile_format_rules([good, bad])

    assert raised.value.source == "20_bad.yar"
    assert "file_sise" in raised.value.message
    assert "line 3" in str(raised.value)


def test_rule_without_format_meta_is_refused() -> None:
    with pytest.raises(RuleLoadError, match=r"nameless\.yar: rule 'anon' has no `format` meta"):
        compile_format_rules([RuleSource("nameless.yar", "rule anon { condition: true }")])


def test_slow_rule_warning_is_an_error() -> None:
    slow = RuleSource("slow.yar", 'rule slow { meta: format = "gguf" strings: $a = /\\x20*\\{/ condition: $a }')

    with pytest.raises(RuleLoadError, match=r"slow\.yar: .*slow down scanning"):
        compile_format_rules([slow])


def test_rules_are_read_from_a_folder_in_file_name_order(tmp_path: Path) -> None:
    (tmp_path / "20_second.yar").write_text('rule second { meta: format = "onnx" condition: true }')
    (tmp_path / "10_first.yar").write_text('rule first { meta: format = "gguf" condition: true }')
    (tmp_path / "notes.md").write_text("not a rule")

    sources = read_rule_sources(tmp_path)

    assert [source.name for source in sources] == ["10_first.yar", "20_second.yar"]
    assert compile_format_rules(sources).formats == ["gguf", "onnx"]


def test_a_rule_without_structural_check_gives_an_unconfirmed_result(tmp_path: Path) -> None:
    # A format with no check (yet): its rule alone may only say "probably".
    rules: FormatRules = compile_format_rules([RuleSource("future.yar", """
        rule future { meta: format = "future-format" condition: uint32(4) == 0x334C4654 }
    """)])
    path = tmp_path / "model.future"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\0" * 64)

    result = Identifier(rules=rules).identify_path(str(path))

    assert result is not None
    assert (result.format, result.confirmed, result.details) == ("future-format", False, {})
