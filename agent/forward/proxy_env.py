"""Which forward proxy, if any, an HTTP(S) destination is reached through: the environment, read as curl reads it.

- `https_proxy` / `HTTPS_PROXY` for https:// URLs, `http_proxy` / `HTTP_PROXY` for http:// URLs, else
  `all_proxy` / `ALL_PROXY`; the lower-case name wins when both are set. (curl reads HTTP_PROXY in lower case
  only, against "httpoxy" in CGI programs; the agent is never a CGI program, and service managers often set
  the upper-case names, so both are read here.) An empty value counts as unset. A proxy URL without a port
  uses curl's default, 1080 (443 for an https:// proxy).
- A proxy URL without a scheme is http://. http:// and https:// proxies are supported; socks ones are refused
  with a configuration error rather than silently bypassed.
- `no_proxy` / `NO_PROXY`: comma (or space) separated; `*` as the whole value bypasses every host; a name
  matches itself and every name under it (`example.org` and `.example.org` both match `siem.example.org`
  and `example.org`); an IP address matches that address, and `10.0.0.0/8` (CIDR, as curl since 7.86)
  every address in the network. Names are not resolved to match IP entries (curl does not either). Ports
  in entries are ignored.
- `localhost`, `127.0.0.1` and `::1` are always in the list, as if NO_PROXY held them: a receiver on this
  machine (a local forwarder's HEC input) is never reached through a proxy, whatever NO_PROXY says.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

ALWAYS_DIRECT = ("localhost", "127.0.0.1", "::1")


class ProxyConfigError(ValueError):
    """The environment names a proxy that cannot be used (the message says which variable)."""


@dataclass(frozen=True)
class Proxy:
    url: str  # scheme://host:port, without credentials
    username: str = ""
    password: str = ""
    variable: str = ""  # the environment variable it came from, for messages

    def __str__(self) -> str:
        return f"{self.url} (from {self.variable})" if self.variable else self.url


def proxy_for(scheme: str, host: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for a request to scheme://host, or None to connect directly."""
    if bypassed(host, environ.get("no_proxy", environ.get("NO_PROXY", ""))):
        return None
    for name in (f"{scheme}_proxy", f"{scheme}_proxy".upper(), "all_proxy", "ALL_PROXY"):
        value = environ.get(name, "").strip()
        if value:
            return parse_proxy(value, name)
    return None


def parse_proxy(value: str, variable: str = "") -> Proxy:
    text = value if "://" in value else f"http://{value}"
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ProxyConfigError(f"{variable or 'the proxy'}={value!r}: only http:// and https:// proxies are "
                               f"supported, not {scheme}://")
    try:
        port = parts.port or (443 if scheme == "https" else 1080)
    except ValueError:
        raise ProxyConfigError(f"{variable or 'the proxy'}={value!r}: not a valid port") from None
    if not parts.hostname:
        raise ProxyConfigError(f"{variable or 'the proxy'}={value!r}: no host name")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Proxy(f"{scheme}://{host}:{port}", urllib.parse.unquote(parts.username or ""),
                 urllib.parse.unquote(parts.password or ""), variable)


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether `host` (a name or an IP address, IPv6 with or without brackets) is reached directly."""
    if no_proxy.strip() == "*":  # the only wildcard, and only alone (curl, Python's urllib alike)
        return True
    host = host.strip("[]").rstrip(".").lower()
    entries = [*ALWAYS_DIRECT, *no_proxy.replace(" ", ",").split(",")]
    address = _address(host)
    for raw in entries:
        entry = raw.strip().lower()
        if not entry or entry == "*":
            continue
        entry = _without_port(entry).strip("[]").lstrip(".").rstrip(".")
        if address is not None:
            if "/" in entry:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    pass
            elif _address(entry) == address:
                return True
        elif host == entry or host.endswith("." + entry):
            return True
    return False


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _without_port(entry: str) -> str:
    if entry.startswith("["):  # [::1]:8088
        return entry.split("]", 1)[0] + "]"
    if entry.count(":") == 1:  # name:port or 1.2.3.4:port; a bare IPv6 address has several colons
        return entry.split(":", 1)[0]
    return entry
