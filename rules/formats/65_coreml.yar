// CoreML .mlmodel: a protobuf Model starting with specificationVersion (field 1, varint) and a
// description (field 2); the model itself sits in a type field numbered 200 or more. ONNX starts alike,
// so this rule comes after the onnx one and the coreml check requires the type field.

rule coreml
{
    meta:
        format = "coreml"
        description = "CoreML Model protobuf: specificationVersion varint then the description field"
        reference = "https://github.com/apple/coremltools/blob/main/mlmodel/format/Model.proto"

    condition:
        uint8(0) == 0x08 and uint8(1) >= 1 and uint8(1) <= 0x7F and uint8(2) == 0x12 and file_size >= 8
}
