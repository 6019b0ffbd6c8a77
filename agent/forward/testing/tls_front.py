"""A TLS-terminating front for a plain-HTTP receiver (osmem-server has no TLS), as nginx or a load balancer
would put before Elasticsearch: for tests of certificates, server_name and client certificates.

Each accepted connection gets its TLS handshake in its own thread (a context that requires client
certificates refuses clients without one), then one upstream TCP connection; bytes are relayed both ways,
so keep-alive stays keep-alive. Connections, refused handshakes and the SNI names asked for are recorded.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import urllib.parse

from weightwarden.agent.forward.testing.forward_proxy import relay
from weightwarden.agent.forward.testing.hec_stub import close_after_alert


class TlsFront:
    def __init__(self, upstream: str, context: ssl.SSLContext, *, host: str = "127.0.0.1") -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.context = context
        context.sni_callback = self._sni
        self.connections = 0
        self.refused: list[str] = []
        self.server_names: list[str | None] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, 0))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tls-front", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"https://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> TlsFront:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self._listener.close()
        self._thread.join(timeout=10)

    def _sni(self, _sock: object, name: str | None, _context: object) -> None:
        with self._lock:
            self.server_names.append(name)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="tls-front-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        wrapped = self.context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        try:
            wrapped.do_handshake()
        except (OSError, ssl.SSLError) as error:
            with self._lock:
                self.refused.append(str(error))
            close_after_alert(wrapped)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            wrapped.close()
            return
        with self._lock:
            self.connections += 1
        wrapped.settimeout(None)
        upstream.settimeout(None)
        relay(wrapped, upstream)
