"""staging: an archiver, compressor, encrypter or splitter read a protected model; the output its command
line names is linked to the model (read -> write lineage), so the archive can be followed when it moves."""

from __future__ import annotations

from weightwarden.agent.alert_evidence import Lineage, StagingEvidence, StagingFacts
from weightwarden.agent.detect.correlations.base import Correlation, Situation, Values, Verdict


class Staging(Correlation):
    kind = "staging"
    counts = "nothing: it reads the archiver's output parsed from the process's command line (`staging.*`)"
    decides = ("alerts when the command line archives, compresses, encrypts or splits; the evidence links the "
               "model read to the output written")

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        staging = situation.staging
        if staging is None:
            return None
        event = situation.event
        facts = StagingFacts(staging.tool, staging.operation, staging.output, staging.inputs)
        lineage = Lineage(event.file.path if event.file else None, staging.output)
        return Verdict(StagingEvidence(staging=facts, lineage=lineage))
