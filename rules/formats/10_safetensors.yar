// safetensors: u64 little-endian header length N, then N bytes of JSON that open with "{".
// Candidate only: the structural check parses the JSON and checks the tensor offsets.
// The file name prefix (10_) orders the rules: specific formats before generic ones (pickle last).

rule safetensors
{
    meta:
        format = "safetensors"
        description = "safetensors: u64 LE JSON header length (<= 100,000,000) then a JSON object"
        reference = "https://github.com/huggingface/safetensors#format"

    condition:
        // The high half of N is 0 for any header the reference parser accepts (N <= 100,000,000).
        uint32(4) == 0 and
        uint32(0) >= 2 and uint32(0) <= 100000000 and
        // The whole header must fit in the real file (YARA's filesize is only the window).
        8 + uint32(0) <= file_size and
        // JSON object, possibly after space padding; the check walks past the spaces.
        (uint8(8) == 0x7B or uint8(8) == 0x20)
}
