// Compressed joblib dumps: a zlib, gzip, bz2 or xz stream around the pickle (uncompressed joblib files
// are pickles, named joblib by the pickle check). The check inflates a bounded prefix and walks it.

rule joblib_compressed
{
    meta:
        format = "joblib"
        description = "zlib, gzip, bz2 or xz stream: candidate compressed joblib dump (the pickle inside decides)"
        reference = "https://github.com/joblib/joblib/blob/main/joblib/numpy_pickle.py"

    condition:
        file_size >= 16 and
        ((uint8(0) == 0x78 and (uint8(0) * 256 + uint8(1)) % 31 == 0) or
         uint16(0) == 0x8B1F or
         (uint16(0) == 0x5A42 and uint8(2) == 0x68) or
         uint32(0) == 0x587A37FD)
}
