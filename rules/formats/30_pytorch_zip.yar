// torch.save (zip serialization, torch >= 1.6) and TorchScript archives are zip files.
// The rule sees only a bounded window, so it cannot list members: any zip starting with a local
// file header is a candidate, and the zip check decides from the central directory
// (single prefix folder with data.pkl and version).

rule pytorch_zip
{
    meta:
        format = "pytorch-zip"
        description = "Zip local file header at 0: candidate PyTorch zip checkpoint (member layout decides)"
        reference = "https://github.com/pytorch/pytorch/blob/main/caffe2/serialize/inline_container.h"

    condition:
        uint32(0) == 0x04034B50 and file_size >= 30
}
