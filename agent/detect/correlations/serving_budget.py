"""serving-budget: one remote peer asks a protected model's server for far more than a user of it would.

A replica is trained from answers: what leaves is answer bytes, and the tell is volume or a burst of
short requests. Counted per server and peer (serving-traffic events, kernel counters): answer bytes in
the last hour and day, connections within the burst window. Loopback peers (the machine's own users and
tools) are counted but not judged unless `loopback` is 1; peers in the allowlist (`allow.destinations` of
the rule or [detect] allow_destinations: an address glob or a network like 10.0.0.0/8) never are.
"""

from __future__ import annotations

import fnmatch
import ipaddress

from weightwarden.agent.alert_evidence import ServingExtractionEvidence
from weightwarden.agent.detect.correlations.base import Correlation, Parameter, Situation, Values, Verdict
from weightwarden.agent.detect.serving_volume import PeerVolume
from weightwarden.agent.events import Destination
from weightwarden.agent.serving.reach import is_loopback


def peer_allowed(peer: str, entries: tuple[str, ...]) -> bool:
    """An allowlist entry matches a peer as an address glob or as a network (CIDR)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        address = None
    for entry in entries:
        if fnmatch.fnmatchcase(peer, entry):
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


class ServingBudget(Correlation):
    kind = "serving-budget"
    counts = ("per model server and remote peer: answer bytes sent in the last hour and day, and connections "
              "accepted within the burst window (kernel socket counters, final counts of short connections)")
    decides = ("alerts when a peer outside the allowlist (and not loopback, unless `loopback: 1`) exceeds a "
               "budget; one incident per server and peer, updated at each further multiple of the budget "
               "(up to four)")
    parameters = (
        Parameter("bytes_per_hour", "integer", 268435456.0, "answer bytes one peer may receive in an hour",
                  low=1.0, setting="serving_bytes_per_hour"),
        Parameter("bytes_per_day", "integer", 1073741824.0, "answer bytes one peer may receive in a day", low=1.0,
                  setting="serving_bytes_per_day"),
        Parameter("burst_connections", "integer", 1000.0,
                  "connections one peer may open within burst_window", low=1.0, setting="serving_burst_connections"),
        Parameter("burst_window", "duration", 60.0, "the window of the burst rule", low=1.0, high=3600.0),
        Parameter("loopback", "integer", 0.0, "1: judge loopback peers too", high=1.0),
    )

    def decide(self, situation: Situation, values: Values) -> Verdict | None:
        details = situation.event.details
        server, peer = details.get("server") or {}, str((details.get("peer") or {}).get("address") or "")
        if not peer or (is_loopback(peer) and not values["loopback"]):
            return None
        if peer_allowed(peer, situation.allow.destinations):
            return None
        volume = situation.tree.serving.get(f"{server.get('key')}>{peer}") or PeerVolume()
        now = situation.now
        hour, _ = volume.within(now, 3600.0)
        day, _ = volume.within(now, 86400.0)
        _, burst = volume.within(now, values["burst_window"])
        ratios = {"hour": hour / values["bytes_per_hour"], "day": day / values["bytes_per_day"],
                  "burst": burst / values["burst_connections"]}
        exceeded = tuple(name for name, ratio in ratios.items() if ratio >= 1.0)
        if not exceeded:
            return None
        _, answer, connections = volume.latest()
        process = situation.event.process
        evidence = ServingExtractionEvidence(
            server=f"{server.get('address')}:{server.get('port')} (netns {server.get('netns')})",
            server_process=(f"{process.name}[{process.pid}] {process.user or ''}".strip() if process else None),
            peer=peer, peer_connections=connections, request_bytes=int(details.get("bytes_received") or 0),
            answer_bytes=answer, answer_bytes_hour=hour, answer_bytes_day=day, connections_in_burst=burst,
            budgets={k: float(v) for k, v in values.items()}, exceeded=exceeded,
            models=tuple(m["model"] for m in server.get("models") or [] if isinstance(m, dict)))
        progress = round(min(max(ratios.values()) / 4.0, 1.0), 4)
        return Verdict(evidence, Destination("network", peer, None), progress,
                       f" ({connections} connections, {answer} answer bytes to {peer}; over the {'/'.join(exceeded)} "
                       "budget)", subject=f"{server.get('key')}>{peer}")
