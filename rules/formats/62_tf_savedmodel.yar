// TensorFlow SavedModel. saved_model.pb is a SavedModel protobuf: schema version 1 (08 01) then the
// first MetaGraphDef (field 2, tag 0x12). The variables' tensor bundle index (variables.index, and the
// .index of checkpoints) is a LevelDB-format table: it starts with its first block entry, the empty key
// (00 00), a one-byte value length and a BundleHeaderProto (tag 0x08 = num_shards); its last 8 bytes are
// the table magic 57 fb 80 8b 24 75 47 db, which the check reads (LevelDB files end the same way, so a
// sibling .data-* shard or saved_model.pb must confirm it).

rule tf_saved_model_pb
{
    meta:
        format = "tf-savedmodel"
        description = "SavedModel protobuf: saved_model_schema_version 1, then a MetaGraphDef"
        reference = "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/core/protobuf/saved_model.proto"

    condition:
        uint16(0) == 0x0108 and uint8(2) == 0x12 and file_size >= 16
}

rule tf_tensor_bundle_index
{
    meta:
        format = "tf-savedmodel"
        description = "Tensor bundle index: table whose first entry is the empty key with a BundleHeaderProto"
        reference = "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/core/util/tensor_bundle/tensor_bundle.cc"

    condition:
        uint16(0) == 0 and uint8(2) >= 2 and uint8(2) < 0x80 and uint8(3) == 0x08 and file_size >= 56
}
