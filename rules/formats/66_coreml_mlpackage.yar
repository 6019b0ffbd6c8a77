// CoreML .mlpackage directory: its Manifest.json (JSON) names the package's items and the root model,
// written by coremltools under com.apple.CoreML. The check parses the manifest; the identifier then
// requires the root model item under Data/ beside it.

rule coreml_mlpackage_manifest
{
    meta:
        format = "coreml"
        description = "CoreML .mlpackage Manifest.json: itemInfoEntries and rootModelIdentifier"
        reference = "https://apple.github.io/coremltools/docs-guides/source/convert-to-ml-program.html"

    strings:
        $entries = "\"itemInfoEntries\""
        $root = "\"rootModelIdentifier\""
        $apple = "com.apple.CoreML"

    condition:
        (uint8(0) == 0x7B or uint8(0) == 0x20 or uint8(0) == 0x0A or uint8(0) == 0x0D or uint8(0) == 0x09) and
        $entries and $root and $apple and file_size < 1048576
}
