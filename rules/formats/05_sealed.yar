// Weightwarden's own sealed container (`weightwarden seal`): magic "WWSEAL" 00 01, then a u32 big-endian
// header length N (at most 16 MiB) and N bytes of JSON that open with "{". The structural check reads the
// header and checks that the file is exactly as long as the header says.

rule sealed
{
    meta:
        format = "sealed"
        description = "Weightwarden sealed file: WWSEAL magic, version 1, JSON header length, JSON object"
        reference = "docs/sealing.md"

    condition:
        uint32be(0) == 0x57575345 and uint16be(4) == 0x414C and uint16be(6) == 0x0001 and
        uint32be(8) >= 2 and uint32be(8) <= 16777216 and
        12 + uint32be(8) <= file_size and
        uint8(12) == 0x7B
}
