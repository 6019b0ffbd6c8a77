"""A small real model server, for tests and the bench (docs/serving.md): it loads a safetensors model with
the safetensors library (memory-mapped, held for its life) and answers the Ollama and OpenAI-compatible
endpoints with tensor values from it, over HTTP/1.1 (threads), optionally asking for a bearer token.

    python -m weightwarden.agent.serving.testing MODEL.safetensors --host 0.0.0.0 --port 8000 [--token T]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
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
