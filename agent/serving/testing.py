"""A small real model server, for tests and the bench (docs/serving.md): it loads a safetensors model with
the safetensors library (memory-mapped, held for its life) and answers the Ollama and OpenAI-compatible
endpoints with tensor values from it, over HTTP/1.1 (threads), optionally asking for a bearer token.

    python -m weightwarden.agent.serving.testing MODEL.safetensors --host 0.0.0.0 --port 8000 [--token T]

`peer_network` makes the remote peers of such tests: a network namespace joined to this one by a veth pair.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _handler(name: str, rows: list[float], token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _allowed(self) -> bool:
            if token is None or self.headers.get("Authorization") == f"Bearer {token}":
                return True
            self._answer(401, {"error": "unauthorized"})
            return False

        def do_GET(self) -> None:
            if not self._allowed():
                return
            if self.path == "/api/tags":
                self._answer(200, {"models": [{"name": name, "model": name}]})
            elif self.path == "/v1/models":
                self._answer(200, {"object": "list", "data": [{"id": name, "object": "model"}]})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if not self._allowed():
                return
            if self.path in ("/api/generate", "/api/chat"):
                self._answer(200, {"model": name, "response": " ".join(f"{v:.5f}" for v in rows), "done": True})
            elif self.path in ("/v1/completions", "/v1/chat/completions", "/v1/embeddings"):
                self._answer(200, {"object": "list", "model": name,
                                   "data": [{"object": "embedding", "index": 0, "embedding": rows}]})
            else:
                self._answer(404, {"error": "not found"})

    return Handler


@dataclass(frozen=True)
class PeerNetwork:
    namespace: str
    host: str  # this namespace's end of the veth pair
    prefix: str  # the /24 both ends are in, "198.19.7"

    def address(self, last: int) -> str:
        return f"{self.prefix}.{last}"


@contextlib.contextmanager
def peer_network(hosts: Iterable[int], *, second: int = 18) -> Iterator[PeerNetwork]:
    """A new network namespace joined to this one by a veth pair (root): this end is PREFIX.1/24, the
    namespace holds PREFIX.N/24 for each N of `hosts`; PREFIX is a random /24 of 198.`second`.0.0/16, in
    the benchmarking range 198.18.0.0/15 (RFC 2544) that no real network uses. Removed on exit."""
    tag = secrets.token_hex(3)
    network = PeerNetwork(f"wwpeers{tag}", "", f"198.{second}.{int(tag[:2], 16)}")
    network = PeerNetwork(network.namespace, network.address(1), network.prefix)
    outside, inside = f"wwph{tag}", f"wwpn{tag}"

    def ip(*argv: str) -> None:
        subprocess.run(["ip", *argv], check=True, capture_output=True)

    ip("netns", "add", network.namespace)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", network.namespace)
        ip("addr", "add", f"{network.host}/24", "dev", outside)
        ip("link", "set", outside, "up")
        for last in hosts:
            ip("-n", network.namespace, "addr", "add", f"{network.address(last)}/24", "dev", inside)
        ip("-n", network.namespace, "link", "set", inside, "up")
        ip("-n", network.namespace, "link", "set", "lo", "up")
        yield network
    finally:
        subprocess.run(["ip", "link", "del", outside], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", network.namespace], check=False, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="test-model")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    from safetensors import safe_open  # the real library, memory-mapping the file

    held = open(args.model, "rb")  # noqa: SIM115 - held open for the server's life, as a server holds its model
    model: Any = safe_open(args.model, framework="numpy")  # the library ships no types
    first = next(iter(model.keys()))
    rows = [float(v) for v in model.get_tensor(first).reshape(-1)[:64]]
    server = ThreadingHTTPServer((args.host, args.port), _handler(args.name, rows, args.token))
    server.daemon_threads = True
    server.request_queue_size = 1024
    print(server.server_address[1], flush=True)  # the port, for the caller
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    held.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
