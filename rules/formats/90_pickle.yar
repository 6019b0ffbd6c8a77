// Generic pickle, protocol 2..5 (PROTO opcode 0x80 then the protocol byte). Two bytes are a weak
// signature: the pickle check walks the opcodes. Last in order, so specific pickle-based formats
// (pytorch-legacy) win.

rule pickle
{
    meta:
        format = "pickle"
        description = "Python pickle stream, protocol 2..5 (PROTO opcode at 0)"
        reference = "https://github.com/python/cpython/blob/main/Lib/pickletools.py"

    condition:
        uint8(0) == 0x80 and uint8(1) >= 2 and uint8(1) <= 5 and file_size >= 3
}
