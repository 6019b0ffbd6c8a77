// ONNX has no magic: a ModelProto starts with ir_version (field 1, varint, tag 0x08), then usually
// producer_name (0x12) ... graph (0x3a). CoreML .mlmodel starts the same way; the onnx check
// requires the graph field and rejects CoreML's type fields (>= 200).

rule onnx
{
    meta:
        format = "onnx"
        description = "ONNX ModelProto: ir_version varint then a known top-level field tag"
        reference = "https://github.com/onnx/onnx/blob/main/onnx/onnx.in.proto"

    condition:
        uint8(0) == 0x08 and
        // ir_version is a small one-byte varint (1..127).
        uint8(1) >= 1 and uint8(1) <= 0x7F and
        // Next tag: producer_name, producer_version, domain, model_version, doc_string or graph.
        (uint8(2) == 0x12 or uint8(2) == 0x1A or uint8(2) == 0x22 or
         uint8(2) == 0x28 or uint8(2) == 0x32 or uint8(2) == 0x3A) and
        file_size >= 8
}
