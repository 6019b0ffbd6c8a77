"""Attack (issue 15): one crafted record stops forwarding for good.

A safetensors file whose `__metadata__` holds a lone surrogate (`"\\udcff"`, legal JSON) dropped where the
agent watches: the HEC, `_bulk` and JSON-lines forwarders raised UnicodeEncodeError, the forwarder thread
exited, and after a restart it died on the same record, so nothing after it reached the SIEM. Here the real
agent sees the file and forwards to real receivers on 127.0.0.1; a model written afterwards must still
arrive everywhere. A stored record no renderer can take (an insider who can write the database corrupts
one) goes to the dead letters with the reason, a health event says so, and delivery goes on.
"""

from __future__ import annotations

import json
import sqlite3
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.adversarial.forwarders_agent import Receivers, Seen, agent_config, receivers, running_agent
from tests.agent.cli.helpers import WEIGHTWARDEN
from tests.conftest import write_safetensors
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PLACEHOLDER = "SURROG"  # six characters, replaced in the header bytes by the six of the escape \udcff




def write_lone_surrogate_safetensors(path: Path) -> Path:
    """A safetensors file written by the library whose metadata value holds a lone surrogate.

    The library refuses to write one (it encodes the metadata as UTF-8), so it writes a placeholder of the
    same length, and the header's JSON text is patched to the escape `\\udcff`: still valid JSON of the
    same length, so the header length and the data offsets stay right.
    """
    from safetensors.numpy import save, save_file

    with pytest.raises(UnicodeEncodeError):
        save_file({"w": np.zeros((2, 2), np.float32)}, str(path), metadata={"note": "x\udcffy"})
    data = save({"w": np.arange(64, dtype=np.float32).reshape(8, 8)},
                metadata={"note": f"x{PLACEHOLDER}y", "format": "pt"})
    assert data.count(PLACEHOLDER.encode()) == 1
    # patched in memory and written once: the watching agent never sees the placeholder's version
    path.write_bytes(data.replace(PLACEHOLDER.encode(), b"\\udcff"))
    # The reference (Rust) loader refuses the header, but Python's json reads it, as the agent does: the
    # file is identified and recorded, surrogate and all.
    (length,) = struct.unpack_from("<Q", data)
    assert json.loads(path.read_bytes()[8:8 + length])["__metadata__"]["note"] == "x\udcffy"
    return path


def created(records: list[Seen], name: str) -> Seen | None:
    return next((r for r in records if r.action == "model-created" and r.file_name == name), None)


def arrived_everywhere(siem: Receivers, name: str) -> bool:
    return all(created(records, name) for records in siem.everywhere())


def test_a_lone_surrogate_in_safetensors_metadata_does_not_stop_forwarding(tmp_path: Path, osmem: Any) -> None:
    dropped = tmp_path / "tmp"
    dropped.mkdir()
    with receivers(tmp_path, osmem) as siem:
        config = agent_config(tmp_path / "config.toml", data_dir=tmp_path / "data", watched=dropped,
                              forward=siem.config())
        with running_agent(config, tmp_path / "agent.log") as agent:
            write_lone_surrogate_safetensors(dropped / "crafted.safetensors")
            wait_for(lambda: arrived_everywhere(siem, "crafted.safetensors") or agent.poll() is not None,
                     timeout=30, what="the crafted file's record at every receiver")
            write_safetensors(dropped / "after.safetensors", seed=7)
            wait_for(lambda: arrived_everywhere(siem, "after.safetensors") or agent.poll() is not None,
                     timeout=30, what="the next model's record at every receiver (the JSON-lines file, HEC "
                                      "and _bulk)")
            assert agent.poll() is None, (tmp_path / "agent.log").read_text()[-3000:]
        assert agent.returncode == 0
        # The crafted record itself was delivered, its surrogate shown as text rather than dropped.
        for records in siem.everywhere():
            crafted = created(records, "crafted.safetensors")
            assert crafted is not None
            metadata = crafted.details["format_details"]["metadata"]
            assert metadata["note"] == "x\\udcffy"
    log = (tmp_path / "agent.log").read_text(errors="replace")
    assert "UnicodeEncodeError" not in log and "stopped by an unexpected error" not in log


def corrupt(database: Path, record_id: str) -> None:
    """What an insider with write access to the database does: a stored record no renderer can take."""
    with sqlite3.connect(database) as db:
        changed = db.execute("update events set record = json_set(record, '$.time', 'not a time')"
                             " where id = ?", [record_id]).rowcount
    assert changed == 1


def test_a_record_no_renderer_can_take_is_dead_lettered_and_delivery_goes_on(tmp_path: Path, osmem: Any) -> None:
    dropped = tmp_path / "tmp"
    dropped.mkdir()
    data = tmp_path / "data"
    # First run: no destination; the agent records a model written while it runs.
    config = agent_config(tmp_path / "config.toml", data_dir=data, watched=dropped, forward="")
    with running_agent(config, tmp_path / "agent-1.log") as agent:
        database = data / "weightwarden.db"
        write_safetensors(dropped / "victim.safetensors", seed=3)

        def victim() -> str | None:
            if not database.exists():
                return None
            with sqlite3.connect(database) as db:
                row = db.execute("select id from events where record like '%victim.safetensors%'"
                                 " and record like '%model-created%'").fetchone()
            return str(row[0]) if row else None

        victim_id = wait_for(victim, timeout=30, what="the victim's model-created record stored")
    assert agent.returncode == 0
    corrupt(database, victim_id)
    # Second run: three destinations that start at the beginning of the log.
    with receivers(tmp_path, osmem) as siem:
        agent_config(config, data_dir=data, watched=dropped, forward=siem.config())
        with running_agent(config, tmp_path / "agent-2.log") as agent:
            write_safetensors(dropped / "after.safetensors", seed=8)
            wait_for(lambda: arrived_everywhere(siem, "after.safetensors") or agent.poll() is not None,
                     timeout=30, what="the record after the corrupted one at every receiver")
            assert agent.poll() is None, (tmp_path / "agent-2.log").read_text()[-3000:]

            def health(records: list[Seen]) -> list[Seen]:
                return [r for r in records if r.action == "forward-health" and r.details.get("record_id") == victim_id]

            wait_for(lambda: all(health(records) for records in siem.everywhere()), timeout=20,
                     what="a forward-health record naming the dead-lettered record at every receiver")
        assert agent.returncode == 0
        for records in siem.everywhere():
            assert all(r.id != victim_id for r in records)
            assert "not a time" in health(records)[0].details["reason"]
    status = subprocess.run([WEIGHTWARDEN, "sync", "status", "--json", "--dead-letters", "5", "--config",
                             str(config)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    rows = {row["destination"]: row for row in map(json.loads, status.stdout.splitlines())}
    for name in ("jsonl", "splunk", "elastic"):
        # The victim only (network and mount events, whose details osmem maps in conflicting ways, are off).
        dead = [d for d in rows[name]["dead_letter_list"] if d["record_id"] == victim_id]
        assert len(dead) == 1 and rows[name]["dead_letters"] == 1, rows[name]
        assert "not a time" in dead[0]["reason"] and "ValueError" in dead[0]["reason"]
    with sqlite3.connect(database) as db:
        stored = [json.loads(r[0]) for r in db.execute("select record from dead_letters where record_id = ?",
                                                       [victim_id])]
    assert len(stored) == 3 and all(r["time"] == "not a time" and r["id"] == victim_id for r in stored)
