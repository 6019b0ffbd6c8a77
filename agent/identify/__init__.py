"""Content-based identification of model files.

YARA rules (rules/formats/*.yar) look at a bounded window of the file (the head, plus the tail of zips) and
name candidate formats; a structural check per format family confirms or rejects each candidate. File
names and extensions never decide.

    identifier = Identifier()
    result = identifier.identify_path("/models/weights.bin")   # Identification | None
"""

from weightwarden.agent.identify.identification import Identification
from weightwarden.agent.identify.identifier import Identifier
from weightwarden.agent.identify.yara_rules import FormatRules, RuleLoadError, load_format_rules

__all__ = ["FormatRules", "Identification", "Identifier", "RuleLoadError", "load_format_rules"]
