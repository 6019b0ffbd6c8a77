from __future__ import annotations

import pytest

from weightwarden.agent.identify import Identifier


@pytest.fixture(scope="session")
def identifier() -> Identifier:
    return Identifier()
