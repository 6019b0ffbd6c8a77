"""The end of a discovery pass, on the dispatcher's thread: one `discovery-finished` event for the whole
pass (not one per folder), and the files discovery had found that a complete pass no longer meets are gone.

The models a pass finds arrive before this, as ScanFound (agent/pipeline/files.py, FilePipeline.found).
"""

from __future__ import annotations

from datetime import datetime

from weightwarden.agent.discovery.observations import DiscoveryDone
from weightwarden.agent.events import Action, Category, Event, Record, display_path
from weightwarden.agent.pipeline.inventory_upkeep import InventoryUpkeep


def discovery_finished(upkeep: InventoryUpkeep, done: DiscoveryDone, at: datetime) -> list[Record]:
    records: list[Record] = []
    if done.complete:  # a resumed pass met only part of the tree in this run: nothing can be called gone
        for root in done.roots:
            for model in upkeep.inventory.under(display_path(root)):
                provenance = model.provenance
                if provenance is not None and provenance.found_by == "discovery" and model.path not in done.seen:
                    records += upkeep.gone(model.path, False, reason="missing at discovery pass", at=at)
    records.append(Event(
        Action.DISCOVERY_FINISHED, Category.FILE,
        f"discovery pass {done.pass_number}: {done.files} files, {done.models} model files under "
        f"{len(done.roots)} roots",
        details={"pass": done.pass_number, "roots": [display_path(r) for r in done.roots], "files": done.files,
                 "models": done.models, "bytes_read": done.bytes_read, "cache_hits": done.cache_hits,
                 "issues": done.issues, "complete": done.complete, "seconds": round(done.seconds, 3),
                 "not_covered": list(done.not_covered)},
        time=at))
    return records
