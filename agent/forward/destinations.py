"""Build the transport for a configured destination ([forward.NAME] in the TOML config).

What each type takes, its default format and what an empty port or index means are declared in
destination_types.py; here each type's declaration meets its transport class.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.forward.bulk_transport import BulkTransport
from weightwarden.agent.forward.destination_types import BULK_INDEX, DESTINATION_TYPES, SYSLOG_PORTS
from weightwarden.agent.forward.file_transport import FileTransport
from weightwarden.agent.forward.hec_transport import HecTransport
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.tls_files import TLS_FILE_KEYS
from weightwarden.agent.forward.transport import Transport, TransportError


def format_of(destination: ForwardDestination) -> str:
    return destination.format or DESTINATION_TYPES[destination.type].default_format


def renderer_for(destination: ForwardDestination, host: str) -> Renderer:
    return Renderer(host=host, format=format_of(destination), procid=os.getpid())


def token_of(destination: ForwardDestination) -> str:
    if destination.token:
        return destination.token
    try:
        with open(destination.token_file, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        place = f"{destination.where('token_file')}: " if destination.where("token_file") else ""
        raise TransportError(f"{place}cannot read token_file {destination.token_file}: {error.strerror}",
                             config=True) from None


def build_transport(destination: ForwardDestination, host: str) -> Transport:
    return TRANSPORTS[destination.type](destination, renderer_for(destination, host))


def _syslog(destination: ForwardDestination, renderer: Renderer) -> Transport:
    return SyslogTransport(
        renderer, address=destination.address, port=destination.port or SYSLOG_PORTS[destination.transport],
        transport=destination.transport, ca_file=destination.ca_file, client_cert=destination.client_cert,
        client_key=destination.client_key, server_name=destination.server_name,
        timeout=destination.timeout_seconds, resend_window=destination.resend_window_seconds)


def _where(destination: ForwardDestination) -> dict[str, str]:
    """Where each TLS file key was set, so an unusable file is reported with its file and line."""
    return {key: destination.where(key) for key in TLS_FILE_KEYS if destination.where(key)}


def _hec(destination: ForwardDestination, renderer: Renderer) -> Transport:
    return HecTransport(renderer, url=destination.url, token=token_of(destination), index=destination.index,
                        timeout=destination.timeout_seconds, verify_tls=destination.verify_tls,
                        ca_file=destination.ca_file, client_cert=destination.client_cert,
                        client_key=destination.client_key, server_name=destination.server_name, ack=destination.ack,
                        where=_where(destination))


def _bulk(destination: ForwardDestination, renderer: Renderer) -> Transport:
    return BulkTransport(renderer, url=destination.url, index=destination.index or BULK_INDEX,
                         username=destination.username, password=destination.password, api_key=destination.api_key,
                         timeout=destination.timeout_seconds, verify_tls=destination.verify_tls,
                         ca_file=destination.ca_file, client_cert=destination.client_cert,
                         client_key=destination.client_key, server_name=destination.server_name,
                         where=_where(destination))


def _file(destination: ForwardDestination, renderer: Renderer) -> Transport:
    return FileTransport(renderer, path=destination.path, max_bytes=destination.max_bytes, keep=destination.keep)


# One builder per declared type (tests check that the two lists agree).
TRANSPORTS: dict[str, Callable[[ForwardDestination, Renderer], Transport]] = {
    "syslog": _syslog, "hec": _hec, "bulk": _bulk, "file": _file}
