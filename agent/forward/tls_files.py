"""The TLS files of a destination (ca_file, client_cert, client_key): checked, then loaded into a client context.

`tls_file_problems` says, per key, why a file cannot be used (unreadable, not PEM, an encrypted key, a key
that does not belong to the certificate); `weightwarden config check` reports those with file and line, and
the HTTP transports raise them as configuration errors (a forward-health record) instead of failing later in
a handshake. A key is never asked a passphrase for: an agent must not wait on a prompt.
"""

from __future__ import annotations

import os
import ssl

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

TLS_FILE_KEYS = ("ca_file", "client_cert", "client_key")


def tls_file_problems(ca_file: str = "", client_cert: str = "", client_key: str = "") -> list[tuple[str, str]]:
    """(key, message) for each of the files that cannot be used; empty when all of them can."""
    problems: list[tuple[str, str]] = []
    if ca_file:
        data, problem = _read(ca_file)
        if problem:
            problems.append(("ca_file", problem))
        elif not _certificates(data):
            problems.append(("ca_file", f"{ca_file} holds no PEM certificate"))
    if client_key and not client_cert:
        problems.append(("client_key", "client_key is set without client_cert"))
    if not client_cert:
        return problems
    cert_data, problem = _read(client_cert)
    if problem:
        problems.append(("client_cert", problem))
    elif not _certificates(cert_data):
        problems.append(("client_cert", f"{client_cert} holds no PEM certificate"))
    key_file = client_key or client_cert
    key_key = "client_key" if client_key else "client_cert"
    key_data, problem = (cert_data, "") if key_file == client_cert else _read(key_file)
    if problem:
        problems.append((key_key, problem))
    elif key_data:
        problem = _key_problem(key_file, key_data, bool(client_key))
        if problem:
            problems.append((key_key, problem))
    if not problems:
        try:
            client_context(client_cert=client_cert, client_key=client_key)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            problems.append(("client_key" if client_key else "client_cert",
                             f"{key_file} does not fit {client_cert}: {_ssl_reason(error)}"))
    return problems


def client_context(*, verify: bool = True, ca_file: str = "", client_cert: str = "",
                   client_key: str = "") -> ssl.SSLContext:
    """A TLS client context: the system CAs (or ca_file), certificate and host name checked unless `verify` is
    off, and the client certificate when given. ValueError/OSError when a file cannot be used."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None, password=_no_passphrase)
    return context


def _no_passphrase() -> str:
    raise ValueError("the private key is encrypted; give an unencrypted key file readable by the agent only")


def _read(path: str) -> tuple[bytes, str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(), ""
    except OSError as error:
        hint = ""
        if isinstance(error, PermissionError) and os.geteuid() != 0:
            hint = " (run the check as the user the agent runs as)"
        return b"", f"cannot read {path}: {error.strerror or error}{hint}"


def _certificates(data: bytes) -> bool:
    try:
        return bool(x509.load_pem_x509_certificates(data))
    except ValueError:
        return False


def _key_problem(path: str, data: bytes, separate: bool) -> str:
    if b"PRIVATE KEY-----" not in data:
        return f"{path} holds no PEM private key" + ("" if separate else "; set client_key to the key file")
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return f"{path}: the private key is encrypted; give an unencrypted key file readable by the agent only"
    except (ValueError, UnsupportedAlgorithm) as error:
        return f"{path}: not a usable private key ({error})"
    return ""


def _ssl_reason(error: Exception) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason).replace("_", " ").lower()
    return str(error)
