"""Build the transport for a configured destination ([forward.NAME] in the TOML config)."""

from __future__ import annotations

import os

from weightwarden.agent.config import ForwardDestination
from weightwarden.agent.forward.bulk_transport import BulkTransport
from weightwarden.agent.forward.file_transport import FileTransport
from weightwarden.agent.forward.hec_transport import HecTransport
from weightwarden.agent.forward.render import Renderer
from weightwarden.agent.forward.syslog_transport import SyslogTransport
from weightwarden.agent.forward.transport import Transport, TransportError

DEFAULT_FORMATS = {"syslog": "cef", "hec": "native", "bulk": "ecs", "file": "ecs"}


def format_of(destination: ForwardDestination) -> str:
    return destination.format or DEFAULT_FORMATS[destination.type]


def renderer_for(destination: ForwardDestination, host: str) -> Renderer:
    return Renderer(host=host, format=format_of(destination), procid=os.getpid())


def token_of(destination: ForwardDestination) -> str:
    if destination.token:
        return destination.token
    try:
        with open(destination.token_file, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as error:
        raise TransportError(f"cannot read token_file {destination.token_file}: {error.strerror}",
                             config=True) from None


def build_transport(destination: ForwardDestination, host: str) -> Transport:
    renderer = renderer_for(destination, host)
    if destination.type == "syslog":
        return SyslogTransport(
            renderer, address=destination.address, port=destination.port, transport=destination.transport,
            ca_file=destination.ca_file, client_cert=destination.client_cert, client_key=destination.client_key,
            server_name=destination.server_name, timeout=destination.timeout_seconds,
            resend_window=destination.resend_window_seconds)
    if destination.type == "hec":
        return HecTransport(renderer, url=destination.url, token=token_of(destination), index=destination.index,
                            timeout=destination.timeout_seconds, verify_tls=destination.verify_tls,
                            ca_file=destination.ca_file)
    if destination.type == "bulk":
        return BulkTransport(renderer, url=destination.url, index=destination.index, username=destination.username,
                             password=destination.password, api_key=destination.api_key,
                             timeout=destination.timeout_seconds, verify_tls=destination.verify_tls,
                             ca_file=destination.ca_file)
    return FileTransport(renderer, path=destination.path, max_bytes=destination.max_bytes, keep=destination.keep)
