// PaddlePaddle. The inference program (.pdmodel) is a ProgramDesc protobuf: field 1 (blocks) holds
// block 0, which opens with idx = 0 (08 00) and parent_idx = -1 (10 + a ten-byte varint). Saved state
// dicts (.pdparams) are pickles carrying the name table key "StructuredToParameterName@@"; this rule
// file comes before the generic pickle rule so they are named paddle. Parameters (.pdiparams) have no
// signature and are identified through their .pdmodel or PIR .json.

rule paddle_program
{
    meta:
        format = "paddle"
        description = "Paddle ProgramDesc: block 0 with idx 0 and parent_idx -1"
        reference = "https://github.com/PaddlePaddle/Paddle/blob/develop/paddle/fluid/framework/framework.proto"

    strings:
        $block0 = { 0A [1-5] 08 00 10 FF FF FF FF FF FF FF FF FF 01 }

    condition:
        $block0 at 0
}

rule paddle_parameters
{
    meta:
        format = "paddle"
        description = "paddle.save state dict: a pickle with the StructuredToParameterName@@ name table"
        reference = "https://github.com/PaddlePaddle/Paddle/blob/develop/python/paddle/framework/io.py"

    strings:
        $table = "StructuredToParameterName@@"

    condition:
        uint8(0) == 0x80 and uint8(1) >= 2 and uint8(1) <= 5 and $table
}

rule paddle_pir_program
{
    meta:
        format = "paddle"
        description = "Paddle 3 PIR program (.json): base_code first, with magic \"pir\""
        reference = "https://github.com/PaddlePaddle/Paddle/tree/develop/paddle/fluid/pir/serialize_deserialize"

    strings:
        $opening = /\{\s{0,64}"base_code"\s{0,64}:\s{0,64}\{/
        $magic = /"magic"\s{0,64}:\s{0,64}"pir"/

    condition:
        $opening at 0 and $magic in (0..1024)
}
