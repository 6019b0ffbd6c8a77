"""Fixtures shared by the agent's tests: one OpenSearch-compatible server (osmem-server, PyPI) for the whole
run, and a clone of it per test (an empty cluster of its own)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def osmem() -> Iterator[Any]:
    osmem_server = pytest.importorskip("osmem_server", reason="osmem-server is in the test extra")
    server = osmem_server.OsmemServer.start(japanese=False)
    try:
        yield server
    finally:
        server.close()
        if server.process.stdout is not None:  # osmem's close() leaves its stdout pipe open
            server.process.stdout.close()


@pytest.fixture
def cluster(osmem: Any) -> Iterator[str]:
    """The URL of a cluster of this test's own."""
    clone = osmem.clone()
    try:
        yield clone.url
    finally:
        clone.close()
