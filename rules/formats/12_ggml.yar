// Legacy GGML files (before GGUF): the magic is a native u32, so on disk it reads reversed:
// "lmgg" (unversioned ggml), "fmgg" (ggmf), "tjgg" (ggjt), "algg" (LoRA adapter), and llama.cpp's
// session/state files "nsgg" / "qsgg" (cached prompts: sensitive too). Real files never contain "GGML".
// whisper.cpp still writes "lmgg" for all its models (whisper, parakeet, the silero VAD and speaker
// models); the structural check tells them apart by the header that follows (ggml_check.py).

rule ggml
{
    meta:
        format = "ggml"
        description = "Legacy GGML model, LoRA or llama.cpp session file: reversed native u32 magic"
        reference = "https://github.com/ggml-org/llama.cpp/blob/master/include/llama.h"

    condition:
        file_size >= 16 and
        (uint32(0) == 0x67676D6C or uint32(0) == 0x67676D66 or uint32(0) == 0x67676A74 or
         uint32(0) == 0x67676C61 or uint32(0) == 0x6767736E or uint32(0) == 0x67677371)
}
