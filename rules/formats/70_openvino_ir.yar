// OpenVINO IR: an XML file whose root element is <net name=... version=...>. The weights live in the
// .bin beside it, which only the .xml identifies.

rule openvino_ir
{
    meta:
        format = "openvino-ir"
        description = "OpenVINO IR XML: <?xml declaration and a <net> root element near the start"
        reference = "https://docs.openvino.ai/2024/documentation/openvino-ir-format.html"

    strings:
        $xml = "<?xml"
        $net = "<net "

    condition:
        $xml at 0 and $net in (0..4096)
}
