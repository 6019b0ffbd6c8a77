"""The loopback probe: which protocol a listening server speaks, and whether it answers without credentials.

Made only to loopback (127.0.0.1 or ::1 in the server's own network namespace: a socket created there),
never to another host: one short GET per known endpoint, no credentials, a deadline per request and a cap
on what is read. What each endpoint tells (from the projects' API documentation):

- Ollama: GET /api/tags -> {"models": [...]}
- OpenAI-compatible (vLLM, llama.cpp server, LM Studio, LocalAI, text-generation-webui, most FastAPI apps):
  GET /v1/models -> {"object": "list", "data": [...]}
- Hugging Face TGI: GET /info -> {"model_id": ..., ...}
- Triton (KServe v2 protocol): GET /v2 -> {"name": ..., "version": ..., "extensions": [...]}

`authenticated` is True when every endpoint that exists answered 401 or 403, False when one answered 2xx
without credentials, None when nothing answered HTTP (not an HTTP server, or bound where loopback cannot
reach it).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from weightwarden.agent.sensors.sockdiag import socket_in_netns

TIMEOUT_SECONDS = 0.5  # per request
READ_LIMIT = 64 << 10
ENDPOINTS = (("/api/tags", "ollama"), ("/v1/models", "openai"), ("/info", "tgi"), ("/v2", "triton"))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    protocol: str | None  # ollama | openai | tgi | triton | http (answers HTTP, none of these) | None
    authenticated: bool | None
    served_names: tuple[str, ...] = ()  # the model names the endpoint lists, when it lists them
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"protocol": self.protocol, "authenticated": self.authenticated,
                "served_names": list(self.served_names), "detail": self.detail}


def _recognise(kind: str, body: object) -> tuple[str, ...] | None:
    """The names listed when the body is what `kind` answers, else None."""
    if not isinstance(body, dict):
        return None
    if kind == "ollama" and isinstance(body.get("models"), list):
        return tuple(str(m.get("name")) for m in body["models"] if isinstance(m, dict))[:20]
    if kind == "openai" and isinstance(body.get("data"), list):
        return tuple(str(m.get("id")) for m in body["data"] if isinstance(m, dict))[:20]
    if kind == "tgi" and "model_id" in body:
        return (str(body["model_id"]),)
    if kind == "triton" and "name" in body and "extensions" in body:
        return ()
    return None


def http_get(connect: Callable[[], socket.socket], port: int, loopback: str, path: str,
             timeout: float = TIMEOUT_SECONDS) -> tuple[int, bytes] | None:
    """(status, body) of one GET to loopback, or None when no HTTP answer came in time."""
    deadline = time.monotonic() + timeout
    try:
        sock = connect()
    except OSError:
        return None
    data = b""
    try:
        sock.settimeout(timeout)
        sock.connect((loopback, port))
        host = f"[{loopback}]" if ":" in loopback else loopback
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n"
                     "User-Agent: weightwarden-probe\r\nConnection: close\r\n\r\n".encode())
        while len(data) < READ_LIMIT and time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = sock.recv(READ_LIMIT - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        if not data:
            return None
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        return None
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return int(status_line[1]), body


def _unchunk(body: bytes) -> bytes:
    out, at = b"", 0
    while at < len(body):
        line_end = body.find(b"\r\n", at)
        if line_end < 0:
            break
        try:
            size = int(body[at:line_end].split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += body[line_end + 2:line_end + 2 + size]
        at = line_end + 2 + size + 2
    return out


def probe(port: int, family: int, ns_path: str | None) -> ProbeResult:
    """Probe the server on `port` through loopback in its namespace (`ns_path`; None: the agent's own). A
    listener on :: may take IPv4 too: ::1 is tried first, then 127.0.0.1."""
    loopbacks = ("::1", "127.0.0.1") if family == socket.AF_INET6 else ("127.0.0.1",)
    for loopback in loopbacks:
        found = _probe_at(_connector(socket.AF_INET6 if ":" in loopback else socket.AF_INET, ns_path),
                          port, loopback)
        if found is not None:
            return found
    return ProbeResult(None, None, detail=f"no HTTP answer on loopback port {port}")


def _probe_at(connect: Callable[[], socket.socket], port: int, loopback: str) -> ProbeResult | None:
    answered = refused = False
    for path, kind in ENDPOINTS:
        answer = http_get(connect, port, loopback, path)
        if answer is None:
            if not answered:
                return None  # nothing speaks HTTP here: no use asking the other endpoints
            continue
        answered = True
        status, body = answer
        if status in (401, 403):
            refused = True
            continue
        if 200 <= status < 300:
            try:
                names = _recognise(kind, json.loads(body))
            except ValueError:
                names = None
            if names is not None:
                return ProbeResult(kind, False, names, f"GET {path} answered {status} without credentials")
    if refused:
        return ProbeResult("http", True, detail="the model endpoints asked for credentials (401/403)")
    return ProbeResult("http", None, detail="answers HTTP; no known model API found")


def _connector(family: int, ns_path: str | None) -> Callable[[], socket.socket]:
    def make() -> socket.socket:
        return socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    return make if ns_path is None else (lambda: socket_in_netns(ns_path, make))
