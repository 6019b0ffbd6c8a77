// Flax checkpoints (flax.serialization): one msgpack map whose array leaves are ext values of type 1
// holding a packed (shape, dtype, bytes) triple, so an ext header with type 1 is followed by 0x93
// (fixarray of 3); huge arrays are split into maps marked __msgpack_chunked_array__. No magic: the
// check walks the map and validates the arrays.

rule flax_msgpack
{
    meta:
        format = "flax-msgpack"
        description = "msgpack map with flax ndarray ext values (type 1) or chunked-array markers"
        reference = "https://github.com/google/flax/blob/main/flax/serialization.py"

    strings:
        $ext8 = { C7 ?? 01 93 9? }
        $ext16 = { C8 ?? ?? 01 93 9? }
        $ext32 = { C9 ?? ?? ?? ?? 01 93 9? }
        $chunked = "__msgpack_chunked_array__"

    condition:
        ((uint8(0) >= 0x80 and uint8(0) <= 0x8F) or uint8(0) == 0xDE or uint8(0) == 0xDF) and any of them
}
