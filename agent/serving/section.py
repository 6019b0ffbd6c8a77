"""The "serving" section of the agent's status snapshot: the typed contract between the serving sensor
(which writes it) and its readers (`weightwarden status`, `weightwarden models`, the audit report, the
app's Models view)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from weightwarden.agent.cli.output import human_size
from weightwarden.agent.serving.observations import Server

PEERS_LISTED = 50


@dataclass(frozen=True, slots=True)
class PeerRow:
    peer: str
    connections: int
    open: int
    bytes_received: int
    bytes_sent: int


@dataclass(frozen=True, slots=True)
class ServerRow:
    key: str
    address: str
    port: int
    reach: str
    pid: int
    process: str | None
    user: str | None
    protocol: str | None
    authenticated: bool | None
    exposed: bool
    probe: str
    models: tuple[str, ...]
    paths: tuple[str, ...]
    peers: tuple[PeerRow, ...] = ()
    peer_count: int = 0

    @property
    def where(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    @property
    def authentication(self) -> str:
        return {True: "asks for credentials", False: "NO authentication", None: "authentication not known"}[
            self.authenticated]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"], out["paths"] = list(self.models), list(self.paths)
        out["peers"] = [asdict(p) for p in self.peers]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ServerRow:
        def whole(value: Any) -> int:
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) else None

        peers = tuple(PeerRow(str(p.get("peer", "")), whole(p.get("connections")), whole(p.get("open")),
                              whole(p.get("bytes_received")), whole(p.get("bytes_sent")))
                      for p in raw.get("peers") or [] if isinstance(p, Mapping))
        authenticated = raw.get("authenticated")
        return cls(str(raw.get("key", "")), str(raw.get("address", "")), whole(raw.get("port")),
                   str(raw.get("reach", "")), whole(raw.get("pid")), text(raw.get("process")), text(raw.get("user")),
                   text(raw.get("protocol")), authenticated if isinstance(authenticated, bool) else None,
                   bool(raw.get("exposed")), str(raw.get("probe", "")),
                   tuple(str(m) for m in raw.get("models") or []), tuple(str(p) for p in raw.get("paths") or []),
                   peers, whole(raw.get("peer_count")))


def row_of(server: Server, peers: list[PeerRow]) -> ServerRow:
    """A server's row, its peers by answer bytes (the most first)."""
    process = server.process
    ranked = sorted(peers, key=lambda p: -p.bytes_sent)
    return ServerRow(server.key, server.address, server.port, server.reach, server.pid,
                     process.name if process else None, process.user if process else None, server.protocol,
                     server.authenticated, server.exposed, server.probe,
                     tuple(dict.fromkeys(m.model for m in server.models)), tuple(m.path for m in server.models),
                     tuple(ranked[:PEERS_LISTED]), len(peers))


def servers_in(snapshot: Mapping[str, Any] | None) -> list[ServerRow]:
    """The servers a status snapshot lists (none when the agent has no serving sensor)."""
    section = (snapshot or {}).get("serving") or {}
    return [ServerRow.from_dict(raw) for raw in section.get("servers") or [] if isinstance(raw, Mapping)]


def serving_lines(servers: list[ServerRow]) -> list[str]:
    """The serving section as `status` and `models` print it."""
    if not servers:
        return ["serving:   no protected model is served by a listening process"]
    lines = [f"serving:   {len(servers)} servers of protected models"]
    for server in servers:
        lines.append(f"  {', '.join(server.models)}: {server.process or '?'} (pid {server.pid}, {server.user or '?'}) "
                     f"on {server.where}; reach {server.reach}; {server.protocol or 'protocol not known'}; "
                     f"{server.authentication}" + ("  <- EXPOSED" if server.exposed else ""))
        for peer in server.peers[:10]:
            lines.append(f"    peer {peer.peer}: {peer.connections} connections ({peer.open} open), "
                         f"{human_size(peer.bytes_received)} in, {human_size(peer.bytes_sent)} out")
        if server.peer_count > 10:
            lines.append(f"    ... and {server.peer_count - 10} more peers")
    return lines
