// Legacy torch.save (_use_new_zipfile_serialization=False): a pickle chain whose first object is the
// magic number 0x1950a86a20f9469cfc6c. These 15 bytes (PROTO 2, LONG1 of 10 bytes, STOP) are unique,
// so this rule must come before the generic pickle rule.

rule pytorch_legacy
{
    meta:
        format = "pytorch-legacy"
        description = "Legacy PyTorch checkpoint: pickled magic number 0x1950a86a20f9469cfc6c"
        reference = "https://github.com/pytorch/pytorch/blob/main/torch/serialization.py"

    strings:
        $magic = { 80 02 8A 0A 6C FC 9C 46 F9 20 6A A8 50 19 2E }

    condition:
        $magic at 0
}
