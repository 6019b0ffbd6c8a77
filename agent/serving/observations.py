"""What the serving sensor reports (frozen dataclasses, one vocabulary with the pipeline and the app)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from weightwarden.agent.events import ProcessInfo


@dataclass(frozen=True, slots=True)
class ServedModel:
    model: str  # the inventory's model name
    path: str  # the file, as shown
    mapped: bool  # memory-mapped (else only open)


@dataclass(frozen=True, slots=True)
class Server:
    """A listening socket held by a process that has protected models loaded."""

    netns: int
    address: str
    port: int
    reach: str  # serving/reach.py: loopback | all-interfaces | lan | container-bridge
    pid: int
    process: ProcessInfo | None
    models: tuple[ServedModel, ...]
    protocol: str | None = None  # serving/probe.py: ollama | openai | tgi | triton | http | None
    authenticated: bool | None = None  # None: not known (nothing answered the loopback probe)
    probe: str = ""  # what the probe saw, in words

    @property
    def key(self) -> str:
        return f"{self.netns}/{self.address}:{self.port}"

    @property
    def exposed(self) -> bool:
        """Reachable from elsewhere and not known to ask for credentials (the exposure finding)."""
        return self.reach != "loopback" and self.authenticated is not True

    def summary(self) -> dict[str, Any]:
        """The server as events, the status snapshot and the audit report show it."""
        return {"key": self.key, "netns": self.netns, "address": self.address, "port": self.port,
                "reach": self.reach, "pid": self.pid, "protocol": self.protocol,
                "authenticated": self.authenticated, "exposed": self.exposed, "probe": self.probe,
                "process": self.process.name if self.process else None,
                "user": self.process.user if self.process else None,
                "models": [asdict(m) for m in self.models]}


@dataclass(frozen=True, slots=True)
class ServingStarted:
    server: Server


@dataclass(frozen=True, slots=True)
class ServingStopped:
    server: Server


@dataclass(frozen=True, slots=True)
class PeerTraffic:
    """What one remote peer has asked of one server since the agent first saw it (cumulative, from the
    kernel's tcp_info counters; closed connections with their final counts)."""

    server: Server
    peer: str
    connections: int  # accepted from the peer
    open: int  # of which still open
    bytes_received: int  # request bytes from the peer
    bytes_sent: int  # answer bytes to the peer
