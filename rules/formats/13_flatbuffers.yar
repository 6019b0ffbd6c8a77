// FlatBuffer model files: u32 root table offset at 0, then the 4-byte file identifier at offset 4.
// TFLite uses "TFL3", ExecuTorch programs "ET12". Same layout family, told apart by the identifier;
// the flatbuffer check follows the root offset to a sane table and vtable.

rule tflite
{
    meta:
        format = "tflite"
        description = "TensorFlow Lite flatbuffer: identifier TFL3 at offset 4"
        reference = "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/compiler/mlir/lite/schema/schema.fbs"

    condition:
        uint32(4) == 0x334C4654 and file_size >= 16
}

rule executorch
{
    meta:
        format = "executorch"
        description = "ExecuTorch program flatbuffer: identifier ET12 at offset 4"
        reference = "https://github.com/pytorch/executorch/blob/main/schema/program.fbs"

    condition:
        uint32(4) == 0x32315445 and file_size >= 16
}
