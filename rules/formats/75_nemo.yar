// NVIDIA NeMo `.nemo`: a tar archive (ustar magic at 257) holding model_config.yaml and
// model_weights.ckpt. The tar check walks the member headers.

rule nemo
{
    meta:
        format = "nemo"
        description = "Tar archive (ustar at 257): candidate NeMo checkpoint (member names decide)"
        reference = "https://docs.nvidia.com/nemo-framework/user-guide/latest/nemotoolkit/core/core.html"

    strings:
        $ustar = "ustar"

    condition:
        $ustar at 257 and file_size >= 1024
}
