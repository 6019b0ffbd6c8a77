"""Property-based and hostile inputs for the parsers of the folder/pair formats: the protobuf walk, the ONNX
external-data reader, the Flax msgpack walk, the SavedModel, tensor-bundle, Paddle and .mlpackage checks.
Nothing escapes, lying counts and lengths cost nothing, and each call stays within a time budget."""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agent.identify import model_dirs
from weightwarden.agent.identify import (
    flax_msgpack_check,
    mlpackage_check,
    paddle_check,
    tf_savedmodel_check,
)
from weightwarden.agent.identify.onnx_external import external_locations
from weightwarden.agent.identify.protobuf_walk import ProtobufError, Truncated, fields

TIME_BUDGET = 1.0
SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CHECKS = [tf_savedmodel_check.check, flax_msgpack_check.check, paddle_check.check, mlpackage_check.check]


def run_checks(data: bytes) -> None:
    """Every new check over `data` as a whole file (fd -1: a bundle footer inside the window needs no read)
    and as the 256-byte window of a larger file."""
    started = time.monotonic()
    for check in CHECKS:
        for head, size in ((data, len(data)), (data[:256], max(len(data), 1 << 20))):
            try:
                found = check(-1, size, head, b"")
            except OSError:
                continue  # a footer past the window is read from the (absent) fd: the real one reads it
            assert found is None or isinstance(found, dict)
    external_locations(data)
    assert time.monotonic() - started < TIME_BUDGET


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("bundle-seeds")
    model_dirs.saved_model_pb(folder / "saved_model.pb")
    model_dirs.tensor_bundle(folder / "variables", {"a": model_dirs.WEIGHTS})
    model_dirs.flax_msgpack(folder / "flax.msgpack", chunked=True)
    model_dirs.paddle_pdmodel(folder / "m.pdmodel")
    model_dirs.paddle_pdparams(folder / "m.pdparams")
    model_dirs.mlpackage(folder / "p.mlpackage")
    onnx_path = model_dirs.onnx_with_external_data(folder / "onnx")
    return [(folder / name).read_bytes() for name in ("saved_model.pb", "variables.index", "flax.msgpack",
                                                      "m.pdmodel", "m.pdparams", "p.mlpackage/Manifest.json")] + [
        onnx_path.read_bytes()]


@SETTINGS
@given(data=st.data())
def test_mutated_bundle_files_never_raise(seeds: list[bytes], data: st.DataObject) -> None:
    mutated = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        mutated[position:position + 4] = data.draw(st.binary(min_size=1, max_size=4))
    if data.draw(st.booleans()):
        del mutated[data.draw(st.integers(0, len(mutated))):]
    run_checks(bytes(mutated))


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_protobuf_walk_raises_only_its_own_errors(data: bytes) -> None:
    try:
        for field in fields(data):
            assert 0 <= field.start <= field.end
    except (ProtobufError, Truncated):
        pass
    locations = external_locations(data)
    assert all(not location.startswith(("/", "../")) for location in locations)


msgpack_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
                           st.text(max_size=20), st.binary(max_size=40))
msgpack_values = st.recursive(msgpack_leaves, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)), max_leaves=12)
MSGPACK_SETTINGS = settings(SETTINGS, max_examples=50)


@MSGPACK_SETTINGS
@given(value=st.dictionaries(st.text(max_size=6), msgpack_values, max_size=6))
def test_plain_msgpack_data_is_never_flax(value: dict[str, Any]) -> None:
    import msgpack

    data = msgpack.packb(value, use_bin_type=True)

    assert flax_msgpack_check.check(-1, len(data), data, b"") is None


@MSGPACK_SETTINGS
@given(value=msgpack_values, ext_payload=st.binary(max_size=64), ext_type=st.sampled_from([1, 2, 3, 7]))
def test_msgpack_with_arbitrary_ext_values_never_raises(value: Any, ext_payload: bytes, ext_type: int) -> None:
    import msgpack

    data = msgpack.packb({"params": value, "x": msgpack.ExtType(ext_type, ext_payload)}, use_bin_type=True)
    run_checks(data)


HOSTILE = {
    # msgpack map32 and array32 claiming 2**32 - 1 entries, then nothing
    "map-claims-4G-entries": b"\xdf\xff\xff\xff\xff" + b"\xa1k\xc0" * 100,
    "array-claims-4G-items": b"\x81\xa1a\xdd\xff\xff\xff\xff" + b"\xc0" * 1000,
    # ext32 claiming a 4 GiB ndarray payload
    "ext-claims-4GiB": b"\x81\xa1a\xc9\xff\xff\xff\xff\x01\x93\x91\x04\xa7float32\xc6\xff\xff\xff\xf0",
    "nested-arrays": b"\x81\xa1a" + b"\x91" * 100_000,
    # a varint that never ends, and a length-delimited field claiming 2**62 bytes
    "endless-varint": b"\x08" + b"\xff" * 10_000,
    "huge-length": b"\x08\x01\x12" + b"\xff" * 8 + b"\x3f" + b"\x00" * 100,
    # a bundle index whose footer handles point far past the file
    "footer-past-end": b"\x00\x00\x06\x08\x01\x1a\x02\x08\x01" + b"\x00" * 40
                       + b"\xff\xff\xff\xff\x0f\x10\xff\xff\xff\xff\x0f\x10".ljust(40, b"\x00")
                       + struct.pack("<Q", 0xDB4775248B80FB57),
    "deep-json": b'{"itemInfoEntries":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("data", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_inputs_are_rejected_quickly(data: bytes, tmp_path: Path) -> None:
    started = time.monotonic()
    for check in CHECKS:
        assert check(-1, len(data), data, b"") is None
    assert external_locations(data) == frozenset()
    assert time.monotonic() - started < TIME_BUDGET
