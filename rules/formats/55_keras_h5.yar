// HDF5 signature (at 0, or after a user block of 512, 1024, 2048 ... bytes). Candidate for Keras H5
// models and weights; the check requires Keras' root attributes, so plain HDF5 data is rejected.

rule keras_h5
{
    meta:
        format = "keras-h5"
        description = "HDF5 file signature: candidate Keras H5 model (root attributes decide)"
        reference = "https://docs.hdfgroup.org/hdf5/develop/_f_m_t3.html"

    condition:
        file_size >= 96 and
        (uint32(0) == 0x46444889 or uint32(512) == 0x46444889 or uint32(1024) == 0x46444889 or
         uint32(2048) == 0x46444889) and
        (uint32(4) == 0x0A1A0A0D or uint32(516) == 0x0A1A0A0D or uint32(1028) == 0x0A1A0A0D or
         uint32(2052) == 0x0A1A0A0D)
}
