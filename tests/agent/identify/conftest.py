from __future__ import annotations

import os

import pytest

from tests.agent.identify.pread_log import PreadLog
from weightwarden.agent.identify import Identifier


@pytest.fixture(scope="session")
def identifier() -> Identifier:
    return Identifier()


@pytest.fixture
def pread_log(monkeypatch: pytest.MonkeyPatch) -> PreadLog:
    """Every os.pread call made while the test runs (safe_open.read_at looks os.pread up at call time)."""
    log = PreadLog()
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        log.calls.append((offset, length))
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    return log
