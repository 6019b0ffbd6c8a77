"""A small keep-alive HTTP(S) client for HEC and `_bulk`: one connection, reopened after any failure."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse

from weightwarden.agent.forward.transport import Outcome, TransportError


class HttpClient:
    def __init__(self, url: str, *, timeout: float = 15.0, verify_tls: bool = True, ca_file: str = "",
                 server_name: str = "") -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url!r}", config=True)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.timeout = timeout
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=ca_file or None)
            if not verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self._conn
        if conn is None:
            if self._context is not None:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._context)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._conn = conn
        try:
            conn.request(method, self.base_path + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except ssl.SSLCertVerificationError as error:
            self.close()
            raise TransportError(f"TLS certificate of {self.host}:{self.port} rejected: {error.verify_message}",
                                 config=True) from None
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise TransportError(f"{method} {self.host}:{self.port}{path}: {error or type(error).__name__}") from None
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, data

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class AnsweredTransport:
    """What HEC and _bulk share: every batch is answered before send() returns, so nothing waits for a
    later confirmation, and resetting or closing only drops the HTTP connection."""

    client: HttpClient

    def poll(self) -> Outcome:
        return Outcome()

    def unconfirmed(self) -> int:
        return 0

    def reset(self) -> None:
        self.client.close()

    def close(self) -> None:
        self.client.close()
