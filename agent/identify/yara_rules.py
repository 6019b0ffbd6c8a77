"""Compile the format rules (package data `weightwarden.rules/formats/*.yar`) once; match them on a window.

Rules only propose candidates; structural checks decide. Their order matters: the first confirmed
candidate wins, so specific formats must come before generic ones (pytorch-legacy before pickle). Files are
compiled in file-name order (hence the numeric prefixes) and rules within a file in declaration order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import yara

RULES_PACKAGE = "weightwarden.rules"
FORMATS_FOLDER = "formats"
# Declared at compile time so rules may use it; every match passes the real size. YARA's own `filesize`
# is only the window's length.
_COMPILE_EXTERNALS = {"file_size": 0}


class RuleLoadError(Exception):
    """A format rule file failed to compile or lacks its `format` meta. Names the file."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


@dataclass(frozen=True)
class RuleSource:
    name: str  # file name, e.g. "10_safetensors.yar"; also the error location
    text: str


class FormatRules:
    """Compiled format rules and the `format` id and position of each rule.

    Immutable after construction. yara-python (4.5) creates a scanner per `match` call and sets the
    externals on it, so one compiled object serves every thread.
    """

    def __init__(self, compiled: yara.Rules, formats: dict[tuple[str, str], tuple[int, str]]) -> None:
        self._compiled = compiled
        # (namespace, rule identifier) -> (position in rule order, format id)
        self._formats = formats

    @property
    def formats(self) -> list[str]:
        """Every format id the rules can propose, in rule order, without repeats."""
        ordered = sorted(self._formats.values())
        return list(dict.fromkeys(format_id for _, format_id in ordered))

    def match(self, window: bytes, file_size: int) -> list[str]:
        """Candidate format ids for a file whose bounded window is `window`, in rule order."""
        matches = self._compiled.match(data=window, externals={"file_size": file_size})
        hits = sorted(self._formats[(match.namespace, match.rule)] for match in matches)
        return list(dict.fromkeys(format_id for _, format_id in hits))


def read_rule_sources(folder: Traversable | None = None) -> list[RuleSource]:
    """The *.yar files of `folder` (default: the packaged formats folder), sorted by file name."""
    if folder is None:
        folder = resources.files(RULES_PACKAGE).joinpath(FORMATS_FOLDER)
    entries = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".yar")),
                     key=lambda entry: entry.name)
    return [RuleSource(entry.name, entry.read_text(encoding="utf-8")) for entry in entries]


def compile_format_rules(sources: Iterable[RuleSource]) -> FormatRules:
    """Compile `sources` into one rule set. Raises RuleLoadError naming the first file that is wrong."""
    sources = list(sources)
    formats: dict[tuple[str, str], tuple[int, str]] = {}
    namespaces: dict[str, str] = {}
    for source in sources:
        # Each file is compiled on its own first: yara reports errors in a `sources` batch by line only,
        # without saying which file the line belongs to.
        namespace = source.name.removesuffix(".yar")
        compiled = _compile({namespace: source.text}, source.name)
        for rule in compiled:
            format_id = rule.meta.get("format")
            if not isinstance(format_id, str) or not format_id:
                raise RuleLoadError(source.name, f"rule {rule.identifier!r} has no `format` meta")
            formats[(namespace, rule.identifier)] = (len(formats), format_id)
        namespaces[namespace] = source.text
    if not formats:
        raise RuleLoadError(f"{RULES_PACKAGE}/{FORMATS_FOLDER}", "no format rules found")
    return FormatRules(_compile(namespaces, "format rules"), formats)


@functools.cache
def load_format_rules() -> FormatRules:
    """The packaged format rules, compiled once per process (the compiled object is immutable)."""
    return compile_format_rules(read_rule_sources())


def _compile(sources: dict[str, str], where: str) -> yara.Rules:
    try:
        # Warnings (e.g. a string that slows scanning) are errors: rules run on every file event.
        return yara.compile(sources=sources, externals=_COMPILE_EXTERNALS, error_on_warning=True)
    except yara.Error as error:
        raise RuleLoadError(where, str(error)) from error
