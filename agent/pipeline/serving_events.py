"""The serving sensor's observations as events (agent/serving, docs/serving.md): a model server started or
stopped listening (`model-served`, `model-serving-stopped`), and what one remote peer asked of it
(`serving-traffic`, cumulative counts). Rules judge them: rules/detections/90_model_serving.yml."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from weightwarden.agent.events import Action, Category, Event
from weightwarden.agent.serving.observations import PeerTraffic, Server, ServingStarted, ServingStopped


def _where(server: Server) -> str:
    host = f"[{server.address}]" if ":" in server.address else server.address
    return f"{host}:{server.port}"


def _who(server: Server) -> str:
    process = server.process
    return f"{process.name} (pid {server.pid}, {process.user})" if process else f"pid {server.pid}"


def _models(server: Server) -> str:
    return ", ".join(sorted({m.model for m in server.models}))


def served_event(started: ServingStarted, at: datetime) -> Event:
    server = started.server
    auth = {True: "asks for credentials", False: "answers without credentials",
            None: "authentication not known"}[server.authenticated]
    return Event(Action.MODEL_SERVED, Category.NETWORK,
                 f"{_who(server)} serves {_models(server)} on {_where(server)} ({server.reach}; "
                 f"{server.protocol or 'protocol not known'}; {auth})",
                 model=server.models[0].model if server.models else None, process=server.process,
                 details={"server": server.summary()}, time=at)


def stopped_event(stopped: ServingStopped, at: datetime) -> Event:
    server = stopped.server
    return Event(Action.MODEL_SERVING_STOPPED, Category.NETWORK,
                 f"{_who(server)} stopped serving {_models(server)} on {_where(server)}",
                 model=server.models[0].model if server.models else None, process=server.process,
                 details={"server": server.summary()}, time=at)


def traffic_event(traffic: PeerTraffic, at: datetime) -> Event:
    server = traffic.server
    details: dict[str, Any] = {
        "server": server.summary(), "peer": {"address": traffic.peer},
        "connections": traffic.connections, "open": traffic.open,
        "bytes_received": traffic.bytes_received, "bytes_sent": traffic.bytes_sent}
    return Event(Action.SERVING_TRAFFIC, Category.NETWORK,
                 f"{traffic.peer} asked {_models(server)} on {_where(server)}: {traffic.connections} connections, "
                 f"{traffic.bytes_received} bytes in, {traffic.bytes_sent} bytes out",
                 model=server.models[0].model if server.models else None, process=server.process,
                 details=details, time=at)
