// Keras 3 `.keras` archives are zip files with metadata.json, config.json and model.weights.h5 at the
// top level (no prefix folder). Same candidate condition as the other zip formats: the zip check
// reads the central directory and decides.

rule keras_v3
{
    meta:
        format = "keras-v3"
        description = "Zip local file header at 0: candidate Keras 3 archive (member names decide)"
        reference = "https://github.com/keras-team/keras/blob/master/keras/src/saving/saving_lib.py"

    condition:
        uint32(0) == 0x04034B50 and file_size >= 30
}
