"""Adversarial (issue 15, item 6): a network namespace the agent cannot enter is a coverage gap it says.

A container's connections are seen only from inside its network namespace (sock_diag answers for the
namespace it is asked in). Where the agent may not enter one (a unit with RestrictNamespaces=yes, a missing
capability), the network sensor reports degraded coverage at warning level, with the reason, in its health
record and its status, instead of a debug line. The agent here is root without CAP_SYS_ADMIN (setns needs
it), the namespace one the test makes with a process in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.root

# The sensor, started (one poll) and polled once more; prints its health reports and its status.
SENSOR = textwrap.dedent("""
    import logging, sys
    from weightwarden.agent.processes import ProcessCache
    from weightwarden.agent.sensors.network import NetworkSensor
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    health = []
    sensor = NetworkSensor(ProcessCache(), lambda obs: None, health.append, interval=3600, destroy_notices=False)
    sensor.start()
    sensor._poll()
    status = sensor.status()
    sensor.stop()
    for h in health:
        print("HEALTH", h.status, h.message)
    print("STATUS", status.state, status.message)
""")


@pytest.fixture
def container() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("making a network namespace needs root")
    for tool in ("ip", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    name = f"ww-cov-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    inside = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "60"])
    try:
        yield name
    finally:
        inside.kill()
        inside.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_a_namespace_the_agent_cannot_enter_is_reported_degraded(container: str) -> None:
    result = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--",
                             sys.executable, "-c", SENSOR], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    degraded = [line for line in lines if line.startswith("HEALTH degraded")]
    assert degraded and "cannot enter" in degraded[-1], result.stdout
    status = next(line for line in lines if line.startswith("STATUS"))
    assert status.startswith("STATUS degraded") and "cannot be entered" in status, status
    assert "WARNING" in result.stderr and "network namespaces" in result.stderr, result.stderr
