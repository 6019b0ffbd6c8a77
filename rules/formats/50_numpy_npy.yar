// NumPy .npy: "\x93NUMPY", format version 1..3, then a little-endian header length.

rule numpy_npy
{
    meta:
        format = "numpy-npy"
        description = "NumPy .npy array: magic \\x93NUMPY and format version 1..3"
        reference = "https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html"

    strings:
        $magic = { 93 4E 55 4D 50 59 }

    condition:
        $magic at 0 and uint8(6) >= 1 and uint8(6) <= 3 and file_size >= 10
}
