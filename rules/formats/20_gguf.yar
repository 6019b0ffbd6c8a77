// GGUF (llama.cpp): ASCII "GGUF", then a u32 version 1..3. The magic is written little-endian
// even in big-endian files, whose version therefore reads 0x03000000 here.

rule gguf
{
    meta:
        format = "gguf"
        description = "GGUF: magic GGUF and version 1..3 in either byte order"
        reference = "https://github.com/ggml-org/ggml/blob/master/docs/gguf.md"

    condition:
        uint32(0) == 0x46554747 and
        file_size >= 16 and
        ((uint32(4) >= 1 and uint32(4) <= 3) or (uint32be(4) >= 1 and uint32be(4) <= 3))
}
