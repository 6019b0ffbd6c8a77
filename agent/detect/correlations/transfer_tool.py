"""transfer-tool: a transfer tool (scp, rsync, rclone, aws s3, gsutil, azcopy, curl, hf upload, git push...)
opened a protected model, and its command line names where the bytes go (agent/detect/transfer.py)."""

from __future__ import annotations

from weightwarden.agent.alert_evidence import TransferEvidence, TransferFacts
from weightwarden.agent.detect.correlations.base import Correlation, Situation, Values, Verdict
from weightwarden.agent.events import Destination


class TransferTool(Correlation):
    kind = "transfer-tool"
    counts = "nothing: it reads the transfer parsed from the process's command line (`transfer.*`)"
    decides = ("alerts when the command line names a destination; the rule's allowlist (and [detect] "
               "allow_destinations) is checked against it")

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        transfer = situation.transfer
        if transfer is None or not transfer.destination:
            return None
        facts = TransferFacts(transfer.tool, transfer.destination, transfer.kind, transfer.host, transfer.sources)
        return Verdict(TransferEvidence(transfer=facts),
                       Destination(transfer.kind, transfer.host, path=transfer.destination))
