"""Paddle 3 PIR programs (`inference.json`) and their parameters (`inference.pdiparams`).

The files are built per the layout paddle 3.3 writes (model_dirs.paddle_pir_program); where paddlepaddle is
installed, the last test also has paddle.jit.save write a real pair (in a subprocess: paddle starts threads
and warns at import). paddlepaddle is not a test dependency (about 200 MB).
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.identify import model_dirs
from tests.agent.identify.found_details import details_of, subset
from tests.agent.identify.pread_log import PreadLog
from weightwarden.agent.identify import Identifier
from weightwarden.agent.identify.companions import companion_paths

PROGRAM = {"format": "paddle", "role": "program", "representation": "pir", "pir_version": 4, "trainable": True,
           "parameters_seen": 2, "op_types": ["data", "matmul", "add", "relu", "fetch"]}




@pytest.mark.parametrize("readable", [False, True], ids=["compact", "indented"])
@pytest.mark.parametrize("name", ["inference.json", "model.pdmodel", "notes.txt", "blob"])
def test_a_pir_program_is_found_by_content(identifier: Identifier, tmp_path: Path, name: str,
                                           readable: bool) -> None:
    model_dirs.paddle_pir_program(tmp_path / name, readable=readable)

    subset(identifier.identify_path(str(tmp_path / name)), PROGRAM | {"operators_seen": 5})


def test_parameters_are_identified_through_their_pir_program(identifier: Identifier, tmp_path: Path) -> None:
    program, parameters = model_dirs.paddle_pir_pair(tmp_path)

    subset(identifier.identify_path(str(parameters)), {"format": "paddle", "role": "parameters",
                                                       "part_of": "inference.json"})
    found = identifier.identify_path(str(program))
    assert found is not None
    assert companion_paths(str(program), found) == [str(parameters)]


def test_parameters_beside_a_json_that_is_no_program_are_not_a_model(identifier: Identifier,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "inference.json").write_text(json.dumps({"base_code": {"magic": "pir"}, "other": 1}))
    model_dirs.paddle_pdiparams(tmp_path / "inference.pdiparams")

    assert identifier.identify_path(str(tmp_path / "inference.pdiparams")) is None


def test_a_program_larger_than_the_window_is_judged_on_the_window(tmp_path: Path, pread_log: PreadLog) -> None:
    model_dirs.paddle_pir_program(tmp_path / "inference.json", extra_ops=2000)
    small = Identifier(window_bytes=16 << 10, tail_bytes=0)

    found = small.identify_path(str(tmp_path / "inference.json"))

    subset(found, {"format": "paddle", "representation": "pir"})
    assert 0 < details_of(found)["operators_seen"] < 2000  # type: ignore[operator]
    assert pread_log.requested <= 16 << 10


LOOKALIKES = {
    "config": json.dumps({"architectures": ["BertModel"], "hidden_size": 768}),
    "other_magic": json.dumps({"base_code": {"magic": "mlir", "version": 1}, "program": {"regions": []}}),
    "no_program": json.dumps({"base_code": {"magic": "pir", "version": 1}, "weights": {"regions": []}}),
    "version_not_a_number": json.dumps({"base_code": {"magic": "pir", "version": "4"}, "program": {"regions": []}}),
    "version_huge": json.dumps({"base_code": {"magic": "pir", "version": 1 << 62}, "program": {"regions": []}}),
    "nested_base_code": json.dumps({"base_code": {"magic": "pir", "x": {}}, "program": {"regions": []}}),
    "bad_json": '{"base_code": {"magic": "pir", "version": 4,,}, "program": {"regions": [',
    "cut_in_base_code": '{"base_code":{"magic":"pir","trainable":tr',
    "endless_base_code": '{"base_code":{"magic":"pir"' + " " * 100_000,
    "garbage": "{" + "\x00\xff" * 5000,
}


@pytest.mark.parametrize("text", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_json_that_is_not_a_pir_program_is_not_a_model(identifier: Identifier, tmp_path: Path, text: str) -> None:
    (tmp_path / "inference.json").write_bytes(text.encode("utf-8", "surrogateescape"))

    assert identifier.identify_path(str(tmp_path / "inference.json")) is None


def test_a_program_cut_short_is_still_named_by_its_opening(identifier: Identifier, tmp_path: Path) -> None:
    """A truncated copy still carries the program's header (what was taken is what counts)."""
    model_dirs.paddle_pir_program(tmp_path / "full.json")
    data = (tmp_path / "full.json").read_bytes()
    (tmp_path / "cut.json").write_bytes(data[:200])

    subset(identifier.identify_path(str(tmp_path / "cut.json")), {"format": "paddle", "representation": "pir"})


_WRITE_WITH_PADDLE = """
import sys, warnings
warnings.simplefilter("ignore")
import paddle
layer = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.ReLU())
layer.eval()
paddle.jit.save(layer, sys.argv[1], input_spec=[paddle.static.InputSpec([None, 4], "float32", "x")])
"""


@pytest.mark.skipif(importlib.util.find_spec("paddle") is None, reason="paddlepaddle is not installed")
def test_the_pair_paddle_jit_save_writes_is_one_model(identifier: Identifier, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", _WRITE_WITH_PADDLE, str(tmp_path / "inference")], check=True,
                   capture_output=True, timeout=240)

    subset(identifier.identify_path(str(tmp_path / "inference.json")),
           {"format": "paddle", "representation": "pir", "parameters_seen": 2})
    subset(identifier.identify_path(str(tmp_path / "inference.pdiparams")),
           {"format": "paddle", "role": "parameters", "part_of": "inference.json"})


_DESC = bytes([0x08, 0x05, 0x10, 0x08, 0x10, 0x04])  # TensorDesc: FP32, dims [8, 4]
PARAMETER_STREAMS = {
    "stream_version": (struct.pack("<IQIi", 7, 0, 0, len(_DESC)) + _DESC, "tensor stream version 7"),
    "lod_levels_huge": (struct.pack("<IQ", 0, 1 << 60), f"LoD level count {1 << 60}"),
    "lod_level_length_huge": (struct.pack("<IQQ", 0, 1, 1 << 62), f"LoD level of {1 << 62} bytes"),
    "tensor_version": (struct.pack("<IQIi", 0, 0, 3, len(_DESC)) + _DESC, "tensor version 3"),
    "desc_size_huge": (struct.pack("<IQIi", 0, 0, 0, 0x7FFFFFFF), "tensor description of 2147483647 bytes"),
    "desc_size_negative": (struct.pack("<IQIi", 0, 0, 0, -1), "tensor description of -1 bytes"),
    "desc_garbage": (struct.pack("<IQIi", 0, 0, 0, 4) + b"\xff\xff\xff\xff", "tensor description is not a TensorDesc"),
    "cut_in_header": (struct.pack("<IQ", 0, 0)[:10], "the file ends inside the first tensor header"),
}


@pytest.mark.parametrize(("stream", "issue"), PARAMETER_STREAMS.values(), ids=PARAMETER_STREAMS.keys())
def test_garbled_parameters_still_count_and_say_what_is_wrong(identifier: Identifier, tmp_path: Path,
                                                              pread_log: PreadLog, stream: bytes, issue: str) -> None:
    """Named by their program, the parameters are part of the model whatever they hold (a garbled copy must
    not hide): the issue travels with them, and reading it costs a bounded read."""
    model_dirs.paddle_pir_program(tmp_path / "inference.json")
    (tmp_path / "inference.pdiparams").write_bytes(stream + b"\0" * (1 << 20))
    if issue.startswith("the file ends"):
        (tmp_path / "inference.pdiparams").write_bytes(stream)

    subset(identifier.identify_path(str(tmp_path / "inference.pdiparams")),
           {"format": "paddle", "role": "parameters", "malformed": issue})
    assert max(length for _, length in pread_log.calls) <= 1 << 20


def test_parameters_with_lod_levels_read_as_written(identifier: Identifier, tmp_path: Path) -> None:
    model_dirs.paddle_pir_program(tmp_path / "inference.json")
    lod = struct.pack("<Q", 16) + struct.pack("<QQ", 0, 8)  # one level: offsets [0, 8]
    (tmp_path / "inference.pdiparams").write_bytes(struct.pack("<IQ", 0, 1) + lod + struct.pack("<Ii", 0, len(_DESC))
                                                   + _DESC + b"\0" * 128)

    details = details_of(identifier.identify_path(str(tmp_path / "inference.pdiparams")))
    assert details["role"] == "parameters" and "malformed" not in details
