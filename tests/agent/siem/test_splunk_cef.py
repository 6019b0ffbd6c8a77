"""siem/splunk: the transforms' regular expressions (PCRE constructs Python's re shares) take apart the CEF
the agent really writes (agent/forward/cef.py), hostile names included; props.conf reads the time from rt."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from tests.agent.forward.conftest import hostile_records
from tests.agent.siem.conftest import Loaded
from tests.agent.siem.corpus import SIEM
from weightwarden.agent.forward import cef
from weightwarden.agent.forward.fields import flatten


def conf(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Splunk keys are case-sensitive
    parser.read(Path(SIEM / "splunk" / name))
    return parser


TRANSFORMS = conf("transforms.conf")
HEADER = re.compile(TRANSFORMS["weightwarden_cef_header"]["REGEX"])
PAIRS = re.compile(TRANSFORMS["weightwarden_cef_extension"]["REGEX"])


def test_every_cef_field_is_extracted_as_cef_wrote_it(loaded: Loaded) -> None:
    records = [record for record, _host in loaded.records.values()] + hostile_records()
    assert len(records) > 200
    for record in records:
        flat = flatten(record.kind, record.to_dict())
        line = "<134>1 2026-11-29T12:00:00.000Z ws-001 weightwarden 42 - - " + cef.render(flat, "ws-001")
        header = HEADER.search(line)
        assert header is not None, line
        assert header[5] == cef.escape_header(flat.signature[:1023])
        assert header[6] == cef.escape_header(flat.name[: cef.NAME_LIMIT]) and int(header[7]) == flat.severity
        pairs = cef.extension_pairs(flat, "ws-001")
        if " ".join(f"{k}={cef.escape_extension(v)}" for k, v in pairs) != header[8]:
            pairs = cef._fit(pairs, cef.MAX_EXTENSION_BYTES)  # the record's longest values were cut to fit 8 KiB
        got = [(m[1], m[2]) for m in PAIRS.finditer(header[8])]
        assert got == [(key, cef.escape_extension(value)) for key, value in pairs]


def test_props_read_the_record_time_from_rt() -> None:
    props = conf("props.conf")["weightwarden:cef"]
    assert props["TIME_FORMAT"] == "%s%3N" and props["TIME_PREFIX"] == r"\srt="
    assert props["REPORT-weightwarden_cef"] == "weightwarden_cef_header, weightwarden_cef_extension"
    assert TRANSFORMS["weightwarden_cef_extension"]["SOURCE_KEY"] == "cef_extension"
