"""The user-mode access sensor where no open notification exists (macOS FSEvents): a sweep of every
process's open files names whoever holds a protected model."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

from tests.agent.sensors.conftest import PYTHON, Collected, wait_for
from tests.conftest import write_safetensors
from weightwarden.agent.processes import ProcessCache, open_holders
from weightwarden.agent.sensors.holders import HolderSensor

HOLDER = textwrap.dedent("""
    import sys
    with open(sys.argv[1], "rb") as f:
        f.read(4096)
        print("holding", flush=True)
        sys.stdin.readline()
""")


def test_sweep_names_a_holder_that_opened_the_model_before_any_watch(tmp_path: Path) -> None:
    model = write_safetensors(tmp_path / "model.safetensors")
    other = tmp_path / "other.bin"
    other.write_bytes(b"x")
    reader = subprocess.Popen([PYTHON, "-c", HOLDER, str(model)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    collected = Collected()
    sensor = HolderSensor(ProcessCache(), collected.add, collected.add_health, "test", sweep_seconds=0.1)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        assert open_holders([str(model), str(other)]) == {str(model): [reader.pid]}
        sensor.start()
        sensor.protect([str(model)])  # opened before: no open notification will ever come for it
        (held,) = wait_for(lambda: collected.access("held", reader.pid), timeout=15,
                           what="the sweep to name the holder")
        assert held.path == str(model) and held.process.command_line and str(model) in held.process.command_line
        assert held.bytes_read == 4096 and held.mapped is False
    finally:
        sensor.stop()
        reader.kill()
        reader.wait(timeout=10)
        for stream in (reader.stdin, reader.stdout):
            if stream is not None:
                stream.close()
