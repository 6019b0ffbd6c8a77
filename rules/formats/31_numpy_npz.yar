// numpy.savez / savez_compressed write a zip whose members are all <name>.npy.
// Same candidate condition as pytorch-zip; the zip check decides which one (if any) it is.

rule numpy_npz
{
    meta:
        format = "numpy-npz"
        description = "Zip local file header at 0: candidate NumPy .npz archive (member names decide)"
        reference = "https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html"

    condition:
        uint32(0) == 0x04034B50 and file_size >= 30
}
