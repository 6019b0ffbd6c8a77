"""MITRE ATT&CK and ATLAS technique ids as SIEM records carry them: framework, technique, sub-technique, name.

The detection rules name their techniques by id only (rules/detections/*.yml `techniques:`). A record
gives the name too where it is known: the table below holds the names of the ids the built-in rules use
(ATT&CK Enterprise and ATLAS, as MITRE publishes them); an id it does not know (a user's rule) is sent
with its id alone. A sub-technique (T1052.001) is also reported under its technique (T1052), the way ECS
(threat.technique.subtechnique) and OCSF (attack.sub_technique) nest them.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTACK = "MITRE ATT&CK"
ATLAS = "MITRE ATLAS"

NAMES = {
    # ATT&CK Enterprise
    "T1005": "Data from Local System",
    "T1027": "Obfuscated Files or Information",
    "T1039": "Data from Network Shared Drive",
    "T1041": "Exfiltration Over C2 Channel",
    "T1048": "Exfiltration Over Alternative Protocol",
    "T1052": "Exfiltration Over Physical Medium",
    "T1052.001": "Exfiltration over USB",
    "T1070": "Indicator Removal",
    "T1074": "Data Staged",
    "T1074.001": "Local Data Staging",
    "T1078": "Valid Accounts",
    "T1078.003": "Local Accounts",
    "T1083": "File and Directory Discovery",
    "T1119": "Automated Collection",
    "T1537": "Transfer Data to Cloud Account",
    "T1560": "Archive Collected Data",
    "T1560.001": "Archive via Utility",
    "T1562": "Impair Defenses",
    "T1562.001": "Disable or Modify Tools",
    "T1565": "Data Manipulation",
    "T1565.001": "Stored Data Manipulation",
    "T1567": "Exfiltration Over Web Service",
    "T1567.002": "Exfiltration to Cloud Storage",
    # ATLAS
    "AML.T0024": "Exfiltration via ML Inference API",
    "AML.T0024.002": "Extract ML Model",
    "AML.T0025": "Exfiltration via Cyber Means",
    "AML.T0035": "ML Artifact Collection",
    "AML.T0040": "ML Model Inference API Access",
}


@dataclass(frozen=True, slots=True)
class Technique:
    framework: str  # ATTACK | ATLAS
    id: str  # the technique (T1052, AML.T0025)
    name: str | None
    sub_id: str | None = None  # the sub-technique (T1052.001), when the rule named one
    sub_name: str | None = None


def technique(identifier: str) -> Technique:
    framework = ATLAS if identifier.startswith("AML.") else ATTACK
    base, dot, _sub = identifier.partition(".") if framework == ATTACK else (identifier, "", "")
    if framework == ATLAS and identifier.count(".") == 2:  # AML.T0000.000: an ATLAS sub-technique
        base = identifier.rsplit(".", 1)[0]
        dot = "."
    if dot:
        return Technique(framework, base, NAMES.get(base), identifier, NAMES.get(identifier))
    return Technique(framework, identifier, NAMES.get(identifier))


def techniques(identifiers: tuple[str, ...]) -> list[Technique]:
    return [technique(i) for i in identifiers]
