"""lineage: a flow of processes (a process, its children, its pipe and local-socket peers) that read a
protected model and wrote files or sent bytes amounting to `ratio` of what it read, in any shape.

Not fed events: the agent's flow tracker (agent/pipeline/flows.py) gives agent/detect/lineage.py what each
flow read and wrote or sent; the rule's `severity_by_destination` rates the alert by the most dangerous
place among the counted outputs (`network` for bytes sent).
"""

from __future__ import annotations

from weightwarden.agent.detect.correlations.base import Correlation, Parameter


class Lineage(Correlation):
    kind = "lineage"
    counts = ("per flow (processes joined by fork, pipes or local sockets): protected bytes read from each model, "
              "bytes written to each file (size at close, at most its allocated blocks) and sent on each "
              "connection; model files that are recognised copies or local models are left to model-copy")
    decides = ("alerts once the counted outputs reach `ratio` of the bytes the flow read from one model; later "
               "outputs of the flow, and of flows that read its outputs, update the same incident")
    parameters = (
        Parameter("ratio", "number", 0.5, "0.5 = half the bytes the flow read (head -c of half a model counts)",
                  low=0.0, low_exclusive=True, high=10.0, setting="lineage_ratio"),
        Parameter("min_bytes", "integer", 65536.0, "protected bytes a flow must have read before it is judged"),
    )
    on_events = False
    takes_severity_by_destination = True
