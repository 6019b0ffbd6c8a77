"""The HTTP(S) client of HEC and `_bulk`, over urllib3 (docs/forwarding.md, "HTTP in enterprise networks").

- Proxies from the environment, read as curl reads them (forward/proxy_env.py): an https:// destination is
  reached through an HTTP CONNECT tunnel, so TLS, the certificate check and the client certificate stay end
  to end; an http:// one is sent to the proxy in absolute form. Credentials in the proxy URL go as
  `Proxy-Authorization: Basic`.
- TLS: the system CAs or `ca_file`; `server_name` is both the SNI name sent and the name the receiver's
  certificate must carry (default: the URL's host); `client_cert`/`client_key` for receivers that want one.
- One keep-alive connection, reused for every request until the receiver closes it or a request fails; each
  attempt bounded by `timeout` (connect, and each read).
- Cookies the receiver sets are kept for the life of the client and sent back (http.cookiejar's RFC 6265
  rules: domain, path, expiry, Secure): a load balancer's sticky-session cookie keeps a HEC channel's
  acknowledgement polls on the indexer that took its events.
- Nothing is retried here: a failed attempt is a TransportError and the delivery loop resends from its
  cursor with backoff; `config=True` marks what a person must fix (a certificate refused either way, a
  proxy that wants credentials), which raises a forward-health record.
"""

from __future__ import annotations

import http.cookiejar
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, ProxyError, SSLError

from weightwarden.agent.forward.proxy_env import ProxyConfigError, proxy_for
from weightwarden.agent.forward.tls_files import client_context, tls_file_problems
from weightwarden.agent.forward.transport import Outcome, TransportError

# Alerts a TLS server sends when it wants a client certificate or refuses the one it got.
_CLIENT_CERT_ALERTS = ("certificate required", "bad certificate", "unknown ca", "certificate unknown",
                       "handshake failure", "access denied", "certificate expired", "certificate revoked")


class HttpClient:
    def __init__(self, url: str, *, timeout: float = 15.0, verify_tls: bool = True, ca_file: str = "",
                 client_cert: str = "", client_key: str = "", server_name: str = "",
                 environ: Mapping[str, str] | None = None, where: Mapping[str, str] | None = None) -> None:
        """`where` maps a key (client_cert...) to the file and line that set it, for messages."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url!r}", config=True)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"{self.scheme}://{self.netloc}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        self.server_name = server_name
        self.has_client_cert = bool(client_cert)
        self.cookies = http.cookiejar.CookieJar()
        where = where or {}
        try:
            self.proxy = proxy_for(self.scheme, self.host, os.environ if environ is None else environ)
        except ProxyConfigError as error:
            raise TransportError(str(error), config=True) from None
        pool: dict[str, Any] = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False,
                                "maxsize": 1, "block": False}
        if self.scheme == "https":
            problems = tls_file_problems(ca_file, client_cert, client_key)
            if problems:
                key, message = problems[0]
                place = f"{where[key]}: " if key in where else ""
                raise TransportError(f"{place}{key}: {message}", config=True)
            try:
                context = client_context(verify=verify_tls, ca_file=ca_file, client_cert=client_cert,
                                         client_key=client_key)
            except (OSError, ValueError) as error:
                raise TransportError(f"TLS settings cannot be used: {error}", config=True) from None
            pool.update(ssl_context=context, cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE")
            if server_name:
                pool["server_hostname"] = server_name
        self._manager = self._make_manager(pool, ca_file)

    def _make_manager(self, pool: dict[str, Any], ca_file: str) -> urllib3.PoolManager:
        if self.proxy is None:
            return urllib3.PoolManager(num_pools=1, **pool)
        headers = {}
        if self.proxy.username or self.proxy.password:
            headers = urllib3.make_headers(proxy_basic_auth=f"{self.proxy.username}:{self.proxy.password}")
        try:  # an https:// proxy's certificate: the system CAs and ca_file (an enterprise CA is often in both)
            proxy_context = client_context(ca_file=ca_file) if self.proxy.url.startswith("https:") else None
        except (OSError, ValueError) as error:
            raise TransportError(f"TLS to the proxy {self.proxy}: {error}", config=True) from None
        if proxy_context is not None:
            proxy_context.load_default_certs()
        return urllib3.ProxyManager(self.proxy.url, num_pools=1, proxy_headers=headers,
                                    proxy_ssl_context=proxy_context, **pool)

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        url = f"{self.origin}{self.base_path}{path}"
        sent = dict(headers)
        cookie_request = urllib.request.Request(url, method=method)
        self.cookies.add_cookie_header(cookie_request)
        if cookie := cookie_request.get_header("Cookie"):
            sent["Cookie"] = cookie
        try:
            response = self._manager.urlopen(method, url, body=body, headers=sent, redirect=False, retries=False,
                                             preload_content=True)
        except HTTPError as error:
            raise self._failure(method, path, error) from None
        except OSError as error:  # a socket error urllib3 did not wrap
            raise TransportError(f"{method} {self.origin}{path}: {error}") from None
        self.cookies.extract_cookies(_CookieAnswer(response.headers), cookie_request)  # type: ignore[arg-type]
        return response.status, response.data

    def _failure(self, method: str, path: str, error: HTTPError) -> TransportError:
        text = _reason(error)
        via = f" through proxy {self.proxy}" if self.proxy is not None else ""
        if isinstance(error, ProxyError) and not isinstance(_innermost(error), ssl.SSLError):
            config = any(f" {code} " in f" {text} " for code in ("407", "403"))
            return TransportError(f"proxy {self.proxy} refused {self.origin}: {text}", config=config)
        verify = _find(error, ssl.SSLCertVerificationError)
        if verify is not None or "CertificateError" in type(_innermost(error)).__name__:
            name = f" (checked against server_name {self.server_name!r})" if self.server_name else ""
            detail = verify.verify_message if isinstance(verify, ssl.SSLCertVerificationError) else text
            return TransportError(f"TLS certificate of {self.origin}{name} rejected: {detail}{via}", config=True)
        if (isinstance(error, SSLError) or _find(error, ssl.SSLError) is not None) and any(
                alert in text.lower() for alert in _CLIENT_CERT_ALERTS):
            return TransportError(f"{self.origin} refused the TLS handshake{via}: {text}; does it want a client "
                                  "certificate (client_cert, client_key), or not this one?", config=True)
        hint = ""
        if self.scheme == "https" and not self.has_client_cert and (
                _find(error, ssl.SSLEOFError) is not None or _find(error, ConnectionResetError) is not None):
            hint = ("; the receiver closed the TLS connection before answering: if it requires a client "
                    "certificate, set client_cert and client_key")
        return TransportError(f"{method} {self.origin}{path}{via}: {text}{hint}")

    def close(self) -> None:
        self._manager.clear()


class _CookieAnswer:
    """What http.cookiejar reads from a response: its headers through info().get_all()."""

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def info(self) -> _CookieAnswer:
        return self

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return list(self._headers.getlist(name)) or default


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue:
        item = queue.pop(0)
        if any(item is known for known in seen):
            continue
        seen.append(item)
        queue.extend(arg for arg in getattr(item, "args", ()) if isinstance(arg, BaseException))
        for linked in (item.__cause__, item.__context__, getattr(item, "reason", None)):
            if isinstance(linked, BaseException):
                queue.append(linked)
    return seen


def _find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((item for item in _chain(error) if isinstance(item, kind)), None)


def _innermost(error: BaseException) -> BaseException:
    return _chain(error)[-1]


def _reason(error: BaseException) -> str:
    """The most specific message in the error's chain (urllib3 wraps socket and TLS errors several times)."""
    for item in reversed(_chain(error)):
        if isinstance(item, ssl.SSLError) and item.reason:
            return f"{item.reason.replace('_', ' ').lower()} ({item})"
        if isinstance(item, OSError) and item.strerror:
            return str(item.strerror)
    text = str(error) or type(error).__name__
    return text


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
