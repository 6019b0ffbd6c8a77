"""Builders for the formats that are folders or file pairs: TensorFlow SavedModel and checkpoints, CoreML
.mlpackage, OpenVINO IR with weights, Paddle inference pairs and state dicts, ONNX with external data, and
Flax msgpack checkpoints.

Real libraries where they install in reasonable size: ONNX external data is written by `onnx.save_model`,
Flax checkpoints by the `msgpack` package. The others write per their published formats, because their
libraries are too large for the test environment (tensorflow ~600 MB, paddlepaddle ~150 MB, openvino
~200 MB installed, coremltools needs a macOS build for .mlpackage prediction and pulls in torch-sized
dependencies; flax needs jax + jaxlib). Each builder says which document it follows.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(8, 4)


# ---------------------------------------------------------------- protobuf wire format (for hand-built messages)

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32/int64 are written as ten-byte two's complement varints
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def pb_bytes(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


# ---------------------------------------------------------------- TensorFlow tensor bundle (variables.index)

def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    """A LevelDB table block: prefix-compressed entries, restart offsets, their count."""
    out, restarts, previous = bytearray(), [], b""
    for index, (key, value) in enumerate(entries):
        shared = 0
        if index % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:] + value
        previous = key
    restarts = restarts or [0]
    out += b"".join(struct.pack("<I", offset) for offset in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def leveldb_table(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A table file (leveldb doc/table_format.md), uncompressed as TensorFlow writes tensor bundles."""
    out = bytearray()

    def add_block(contents: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + b"\x00" + struct.pack("<I", _masked_crc(contents + b"\x00")))
        return handle

    data_handle = add_block(_block(entries))
    meta_handle = add_block(_block([]))
    index_handle = add_block(_block([(entries[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    return bytes(out + footer)


def tensor_bundle(prefix: Path, tensors: dict[str, np.ndarray], shards: int = 1) -> None:
    """`<prefix>.index` + `<prefix>.data-0000k-of-0000n` per tensor_bundle.proto / tensor_bundle.cc: the
    empty key holds a BundleHeaderProto (num_shards, version {producer 1}); each tensor's key its name and a
    BundleEntryProto (dtype DT_FLOAT = 1, shape, shard_id, offset, size, crc32c)."""
    header = pb_int(1, shards) + pb_bytes(3, pb_int(1, 1))
    entries = [(b"", header)]
    data = [bytearray() for _ in range(shards)]
    for position, name in enumerate(sorted(tensors)):
        array = np.ascontiguousarray(tensors[name], dtype=np.float32)
        shard = position % shards
        shape = b"".join(pb_bytes(2, pb_int(1, dim)) for dim in array.shape)
        raw = array.tobytes()
        entry = (pb_int(1, 1) + pb_bytes(2, shape) + (pb_int(3, shard) if shard else b"")
                 + (pb_int(4, len(data[shard])) if data[shard] else b"") + pb_int(5, len(raw))
                 + varint(6 << 3 | 5) + struct.pack("<I", _masked_crc(raw)))
        entries.append((name.encode(), entry))
        data[shard] += raw
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.index").write_bytes(leveldb_table(entries))
    for shard, contents in enumerate(data):
        Path(f"{prefix}.data-{shard:05d}-of-{shards:05d}").write_bytes(bytes(contents))


def leveldb_like(path: Path) -> None:
    """A LevelDB .ldb table (same footer magic): internal keys (user key + 8-byte sequence/type) and values."""
    entries = [(f"user:{index:04d}".encode() + struct.pack("<Q", index << 8 | 1), f"value {index}".encode())
               for index in range(20)]
    path.write_bytes(leveldb_table(entries))


def saved_model_pb(path: Path) -> None:
    """saved_model.pb per saved_model.proto / meta_graph.proto: schema version 1 and one MetaGraphDef with
    its MetaInfoDef (stripped op list, tags "serve", TensorFlow version), a GraphDef and a signature."""
    op_list = pb_bytes(1, pb_bytes(1, "VarHandleOp")) + pb_bytes(1, pb_bytes(1, "MatMul"))
    meta_info = (pb_bytes(1, "") + pb_bytes(2, op_list) + pb_bytes(4, "serve") + pb_bytes(5, "2.16.1")
                 + pb_bytes(6, "v2.16.0-rc0-18-g5bc9d26649c"))
    graph = pb_bytes(1, pb_bytes(1, "dense/kernel") + pb_bytes(2, "VarHandleOp"))
    signature = pb_bytes(1, "serving_default") + pb_bytes(2, pb_bytes(3, "tensorflow/serving/predict"))
    meta_graph = pb_bytes(1, meta_info) + pb_bytes(2, graph) + pb_bytes(5, signature)
    path.write_bytes(pb_int(1, 1) + pb_bytes(2, meta_graph))


def saved_model_dir(root: Path) -> Path:
    """A SavedModel directory: saved_model.pb, variables/variables.{index,data-00000-of-00001}, assets/."""
    root.mkdir(parents=True, exist_ok=True)
    saved_model_pb(root / "saved_model.pb")
    tensor_bundle(root / "variables" / "variables", {"dense/kernel/.ATTRIBUTES/VARIABLE_VALUE": WEIGHTS,
                                                     "dense/bias/.ATTRIBUTES/VARIABLE_VALUE": np.ones(4)})
    (root / "assets").mkdir(exist_ok=True)
    return root


def random_protobuf(path: Path) -> None:
    """A protobuf message of some other schema: the same wire format, none of the models' structures."""
    path.write_bytes(pb_int(1, 1) + pb_bytes(2, pb_bytes(7, "hello") + pb_int(9, 3)) + pb_bytes(3, b"\x00" * 64)
                     + pb_bytes(1, pb_int(1, 0) + pb_int(3, 5)))


# ---------------------------------------------------------------- Flax (msgpack)

def _flax_ndarray(array: np.ndarray) -> Any:
    import msgpack

    payload = msgpack.packb((array.shape, array.dtype.name, array.tobytes("C")), use_bin_type=True)
    return msgpack.ExtType(1, payload)


def flax_msgpack(path: Path, *, chunked: bool = False) -> None:
    """flax.serialization.to_bytes layout (flax/serialization.py): a msgpack map of the state dict whose
    arrays are ExtType(1, packb((shape, dtype name, bytes))); with `chunked`, an array split the way
    _chunk_array_leaves_in_place does for arrays over 2**30 bytes."""
    import msgpack

    kernel: Any = _flax_ndarray(WEIGHTS)
    if chunked:
        flat = WEIGHTS.reshape(-1)
        kernel = {"__msgpack_chunked_array__": True, "shape": {"0": 8, "1": 4},
                  "chunks": {str(index): _flax_ndarray(flat[index * 16:(index + 1) * 16]) for index in range(2)}}
    state = {"params": {"Dense_0": {"kernel": kernel, "bias": _flax_ndarray(np.zeros(4, np.float32))}},
             "step": msgpack.ExtType(3, msgpack.packb(("int64", np.int64(100).tobytes())))}
    path.write_bytes(msgpack.packb(state, use_bin_type=True))


def msgpack_plain_data(path: Path) -> None:
    import msgpack

    path.write_bytes(msgpack.packb({"name": "experiment-7", "scores": [0.1, 0.5, 0.9], "tags": {"a": 1},
                                    "blob": b"\x01\x93" * 40}, use_bin_type=True))


def msgpack_with_bad_ndarray(path: Path) -> None:
    """Ext type 1 whose payload lies about its size: not a Flax array."""
    import msgpack

    payload = msgpack.packb(((100, 100), "float32", b"\x00" * 16), use_bin_type=True)
    path.write_bytes(msgpack.packb({"params": msgpack.ExtType(1, payload)}, use_bin_type=True))


# ---------------------------------------------------------------- Paddle

def _var(name: str, var_type: int, dims: tuple[int, ...] = (), persistable: bool = False) -> bytes:
    tensor = pb_int(1, 5) + b"".join(pb_int(2, dim) for dim in dims)  # TensorDesc: FP32, dims
    type_message = pb_int(1, var_type) + (pb_bytes(3, pb_bytes(1, tensor)) if dims else b"")
    return pb_bytes(1, name) + pb_bytes(2, type_message) + (pb_int(3, 1) if persistable else b"")


def _op(op_type: str, inputs: dict[str, str], outputs: dict[str, str]) -> bytes:
    def slots(number: int, mapping: dict[str, str]) -> bytes:
        return b"".join(pb_bytes(number, pb_bytes(1, key) + pb_bytes(2, value)) for key, value in mapping.items())

    return slots(1, inputs) + slots(2, outputs) + pb_bytes(3, op_type)


def paddle_pdmodel(path: Path) -> None:
    """An inference ProgramDesc per framework.proto: block 0 (idx 0, parent_idx -1) with feed/fetch and a
    persistable weight, ops feed -> matmul_v2 -> fetch, and the program version."""
    variables = [_var("feed", 9), _var("fetch", 10), _var("x", 7, (1, 8)),
                 _var("linear_0.w_0", 7, (8, 4), persistable=True), _var("out", 7, (1, 4))]
    ops = (pb_bytes(4, _op("feed", {"X": "feed"}, {"Out": "x"}))
           + pb_bytes(4, _op("matmul_v2", {"X": "x", "Y": "linear_0.w_0"}, {"Out": "out"}))
           + pb_bytes(4, _op("fetch", {"X": "out"}, {"Out": "fetch"})))
    block = pb_int(1, 0) + pb_int(2, -1) + b"".join(pb_bytes(3, variable) for variable in variables) + ops
    path.write_bytes(pb_bytes(1, block) + pb_bytes(4, pb_int(1, 0)))


def paddle_pdiparams(path: Path) -> None:
    """save_combine output (paddle/fluid/framework/lod_tensor.cc SerializeToStream): per tensor u32 version,
    u64 LoD level count, u32 tensor version, i32 TensorDesc size, TensorDesc, raw data."""
    desc = pb_int(1, 5) + pb_int(2, 8) + pb_int(2, 4)
    path.write_bytes(struct.pack("<IQIi", 0, 0, 0, len(desc)) + desc + WEIGHTS.tobytes())


def paddle_pair(folder: Path, stem: str = "inference") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    program, parameters = folder / f"{stem}.pdmodel", folder / f"{stem}.pdiparams"
    paddle_pdmodel(program)
    paddle_pdiparams(parameters)
    return program, parameters


def paddle_pir_program(path: Path, *, readable: bool = False, extra_ops: int = 0) -> None:
    """Paddle 3's PIR program (paddle/fluid/pir/serialize_deserialize, what paddle.jit.save writes by default),
    with the members and op encoding paddle 3.3 writes for Linear(4, 3) + relu: "base_code" {magic "pir",
    trainable, version}, then "program" {"regions": [{"#": "region_0", "blocks": [{"#": "block_0", "args",
    "ops"}]}]}; parameters are "p" ops, other ops "<dialect>.<name>" with attributes "A", inputs "I", outputs
    "O". `readable` is the indented form (readable=True in the writer); `extra_ops` pads the program with relu
    ops so that it runs past a window."""
    def dense(shape: list[int]) -> dict[str, Any]:
        return {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, shape, "NCHW", [], 0]}

    def op(name: str, inputs: list[int], output: int, shape: list[int]) -> dict[str, Any]:
        return {"#": name, "A": [], "I": [{"%": value} for value in inputs], "O": [{"%": output, "TT": dense(shape)}],
                "OA": []}

    ops: list[dict[str, Any]] = [
        {"#": "p", "A": [0, 1, 1, "linear_0.b_0"], "DA": [], "O": {"%": 1, "TT": dense([3])}, "OA": [1, 0, 1],
         "QA": []},
        {"#": "p", "A": [0, 1, 1, "linear_0.w_0"], "DA": [], "O": {"%": 2, "TT": dense([4, 3])}, "OA": [1, 0, 1],
         "QA": []},
        {"#": "1.data", "A": [{"AT": {"#": "0.a_str", "D": "x"}, "N": "name"}], "I": [],
         "O": [{"%": 3, "TT": dense([-1, 4])}], "OA": []},
        op("1.matmul", [3, 2], 4, [-1, 3]), op("1.add", [4, 1], 5, [-1, 3]), op("1.relu", [5], 6, [-1, 3])]
    ops += [op("1.relu", [6 + k], 7 + k, [-1, 3]) for k in range(extra_ops)]
    ops.append(op("1.fetch", [6 + extra_ops], 7 + extra_ops, [-1, 3]))
    program = {"base_code": {"magic": "pir", "trainable": True, "version": 4},
               "program": {"regions": [{"#": "region_0", "blocks": [{"#": "block_0", "args": [], "ops": ops}]}]}}
    path.write_text(json.dumps(program, indent=4) if readable else json.dumps(program, separators=(",", ":")))


def paddle_pir_pair(folder: Path, stem: str = "inference") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    program, parameters = folder / f"{stem}.json", folder / f"{stem}.pdiparams"
    paddle_pir_program(program)
    paddle_pdiparams(parameters)
    return program, parameters


def paddle_pdparams(path: Path) -> None:
    """paddle.save(layer.state_dict()) (python/paddle/framework/io.py): a protocol-4 pickle of numpy arrays
    plus the StructuredToParameterName@@ name table."""
    state = {"linear.weight": WEIGHTS, "linear.bias": np.zeros(4, np.float32),
             "StructuredToParameterName@@": {"linear.weight": "linear_0.w_0", "linear.bias": "linear_0.b_0"}}
    path.write_bytes(pickle.dumps(state, protocol=4))


def pickle_with_paddle_key_but_plain_data(path: Path) -> None:
    path.write_bytes(pickle.dumps({"StructuredToParameterName@@": {"a": "b"}, "lr": 0.1}, protocol=4))


# ---------------------------------------------------------------- OpenVINO IR with weights

def openvino_pair(folder: Path, stem: str = "model", net_name: str = "tiny-linear") -> tuple[Path, Path]:
    """IR v11 (docs: openvino-ir-format): Parameter -> MatMul(Const from the .bin) -> Result; the Const's
    <data offset size> point into the .bin."""
    import xml.etree.ElementTree as ElementTree

    folder.mkdir(parents=True, exist_ok=True)
    net = ElementTree.Element("net", name=net_name, version="11")
    layers = ElementTree.SubElement(net, "layers")
    specs = [("0", "x", "Parameter", {"shape": "1,8", "element_type": "f32"}),
             ("1", "w", "Const", {"element_type": "f32", "shape": "8,4", "offset": "0",
                                 "size": str(WEIGHTS.nbytes)}),
             ("2", "y", "MatMul", {"transpose_a": "false", "transpose_b": "false"}),
             ("3", "out", "Result", {})]
    for layer_id, name, kind, data in specs:
        layer = ElementTree.SubElement(layers, "layer", id=layer_id, name=name, type=kind, version="opset1")
        if data:
            ElementTree.SubElement(layer, "data", data)
    edges = ElementTree.SubElement(net, "edges")
    for source, target in (("0", "2"), ("1", "2"), ("2", "3")):
        ElementTree.SubElement(edges, "edge", {"from-layer": source, "from-port": "0", "to-layer": target,
                                               "to-port": "0"})
    xml, weights = folder / f"{stem}.xml", folder / f"{stem}.bin"
    ElementTree.ElementTree(net).write(xml, xml_declaration=True, encoding="utf-8")
    weights.write_bytes(WEIGHTS.tobytes())
    return xml, weights


# ---------------------------------------------------------------- ONNX with external data (real onnx)

def onnx_with_external_data(folder: Path, *, one_file: bool = True, name: str = "model.onnx") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    weight = numpy_helper.from_array(WEIGHTS, name="linear_weight")
    bias = numpy_helper.from_array(np.arange(4, dtype=np.float32), name="linear_bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "linear_weight"], ["y0"]), helper.make_node("Add", ["y0", "linear_bias"],
                                                                                      ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[weight, bias])
    model = helper.make_model(graph, producer_name="weightwarden-tests",
                              opset_imports=[helper.make_opsetid("", 17)])
    path = folder / name
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=one_file,
                    location=f"{name}.data" if one_file else None, size_threshold=0)
    return path


# ---------------------------------------------------------------- CoreML .mlpackage

ROOT_ID = "6F0E9C6B-8A8C-4E7E-9A39-3C0A2A7D5B11"
WEIGHTS_ID = "1B9E8F0A-2C3D-4E5F-8A9B-0C1D2E3F4A5B"


def mlpackage(root: Path) -> Path:
    """An .mlpackage per coremltools' layout: Manifest.json (fileFormatVersion, itemInfoEntries,
    rootModelIdentifier), Data/com.apple.CoreML/model.mlmodel (a Model protobuf: specificationVersion 8,
    description, mlProgram = field 502) and weights/weight.bin (MIL blob storage v2: 64-byte header, per-blob
    metadata with the 0xDEADBEEF sentinel, 64-byte aligned data)."""
    data = root / "Data" / "com.apple.CoreML"
    (data / "weights").mkdir(parents=True, exist_ok=True)
    manifest = {"fileFormatVersion": "1.0.0", "itemInfoEntries": {
        WEIGHTS_ID: {"author": "com.apple.CoreML", "description": "CoreML Model Weights", "name": "weights",
                     "path": "com.apple.CoreML/weights"},
        ROOT_ID: {"author": "com.apple.CoreML", "description": "CoreML Model Specification",
                  "name": "model.mlmodel", "path": "com.apple.CoreML/model.mlmodel"}},
        "rootModelIdentifier": ROOT_ID}
    (root / "Manifest.json").write_text(json.dumps(manifest, indent=4))
    description = pb_bytes(1, pb_bytes(1, "x")) + pb_bytes(10, pb_bytes(1, "y"))
    program = pb_int(1, 1) + pb_bytes(2, pb_bytes(1, "main"))
    (data / "model.mlmodel").write_bytes(pb_int(1, 8) + pb_bytes(2, description) + pb_bytes(502, program))
    header = struct.pack("<II", 1, 2).ljust(64, b"\x00")
    metadata = struct.pack("<IIQQ", 0xDEADBEEF, 1, WEIGHTS.nbytes, 128).ljust(64, b"\x00")
    (data / "weights" / "weight.bin").write_bytes(header + metadata + WEIGHTS.tobytes())
    return root
