"""The flow trackers the pipeline tests make hold descriptors (a sock_diag socket, outputs held open):
each is closed when its test ends, as the agent closes its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def close_trackers() -> Iterator[None]:
    from tests.agent.pipeline.test_flows import TRACKERS

    yield
    while TRACKERS:
        TRACKERS.pop().close()
