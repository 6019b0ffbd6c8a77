"""A realistic demo database, and the README's screenshots taken from it with a real agent running.

    .venv/bin/python -m tests.gui.demo docs/screenshots
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from weightwarden.agent.events import (
    Action,
    Alert,
    Category,
    Destination,
    Event,
    FileInfo,
    ModelFile,
    ProcessInfo,
    utc_now,
)
from weightwarden.agent.store import Store

MODELS = ("llama-3-8b-support-ft", "whisper-medium-acme", "sdxl-lora-brand", "fraud-bert-v7")
# (process, command line, destination kind, address, port, path template)
PROCESSES = (
    ("rsync", "/usr/bin/rsync -av ckpt/ backup-host:/srv/x", "network", "backup-host", 22, None),
    ("python3", "python3 export.py --out /tmp/stage", "temporary", None, None, "/tmp/stage/{n}/{m}.safetensors"),
    ("firefox", "/usr/lib/firefox/firefox", "network", "huggingface.co", 443, None),
    ("aws", "aws s3 cp ./ckpt s3://acme-scratch/ --recursive", "network", "s3.amazonaws.com", 443, None),
    ("cp", "cp -r models /media/ana/USB", "removable", None, None, "/media/ana/USB/{n}/{m}.safetensors"),
    ("rclone", "rclone copy ckpt gdrive:tmp", "cloud-sync", None, None, "/home/ana/gdrive/{n}/{m}.safetensors"),
)
RULES = (("model-copy", "Copy of protected model {m}"), ("model-copy", "Copy of protected model {m}"),
         ("egress-budget", "Model-sized upload by {p}"), ("canary-touched", "Canary model read by {p}"),
         ("bulk-collection", "Bulk read of protected models by {p}"))


def build_demo_database(path: Path, alerts: int = 420, seed: int = 7) -> Path:
    rng = random.Random(seed)
    now = utc_now()
    store = Store(path)
    try:
        files = [ModelFile(path=f"/home/ana/models/{m}/model-0000{k}-of-00002.safetensors", format="safetensors",
                           size=rng.randint(2, 9) << 30, model=m, sha256=f"{rng.getrandbits(256):064x}",
                           quick_fingerprint=f"{rng.getrandbits(128):032x}")
                 for m in MODELS for k in (1, 2)]
        files.append(ModelFile(path="/home/ana/models/fraud-bert-v7/onnx/model.onnx", format="onnx",
                               size=420 << 20, model="fraud-bert-v7"))
        hub = "/home/ana/.cache/huggingface/hub/models--meta-llama--Meta-Llama-3-8B/snapshots/8cde5ca8"
        files += [ModelFile(path=f"{hub}/model-0000{k}-of-00004.safetensors", format="safetensors", size=4 << 30,
                            model="meta-llama/Meta-Llama-3-8B", details={"hf_repo": "meta-llama/Meta-Llama-3-8B"})
                  for k in range(1, 5)]
        store.upsert_model_files(files, seen=now)
        records: list[Event | Alert] = []
        for i in range(alerts):
            model = rng.choice(MODELS)
            name, cmd, kind, address, port, dest_path = rng.choice(PROCESSES)
            rule, title = rng.choice(RULES)
            dest_path = dest_path.format(m=model, n=i) if dest_path else None
            when = now - timedelta(minutes=rng.randint(0, 14 * 24 * 60 - 1) if i else 3)
            source = f"/home/ana/models/{model}/model-00001-of-00002.safetensors"
            if dest_path:
                created = Event(Action.MODEL_CREATED, Category.FILE, f"model created: {dest_path}",
                                file=FileInfo(path=dest_path), model=model, time=when - timedelta(seconds=4))
            else:
                created = Event(Action.NETWORK_CONNECTION, Category.NETWORK,
                                f"{name} connected to {address}:{port} after reading {source}",
                                model=model, time=when - timedelta(seconds=4))
            size = 5 << 30
            records.append(created)
            records.append(Alert(
                rule_id=rule, title=title.format(m=model, p=name), severity=rng.choice((3, 5, 5, 6, 6, 7, 8, 9, 10)),
                message=f"{dest_path or address} received a copy of {source}",
                paths=(source, *(p for p in [dest_path] if p)),
                model=model, process=ProcessInfo(pid=rng.randint(2000, 60000), name=name, command_line=cmd, user="ana",
                                                 uid=1000, ppid=812),
                destination=Destination(kind=kind, address=address, port=port, path=dest_path),
                evidence={"source_path": source, **({"copy_path": dest_path} if dest_path else {}),
                          "format": "safetensors", "size": size,
                          "matched_on": rng.choice(("sha256", "quick_fingerprint")),
                          "sha256": files[0].sha256, "quick_fingerprint": files[0].quick_fingerprint,
                          **({"bytes_sent": rng.randint(1, size), "bytes_total": size} if kind == "network" else {}),
                          "process_tree": [{"name": "systemd", "pid": 1, "user": "root"},
                                           {"name": "bash", "pid": 812, "user": "ana", "command_line": "-bash"}]},
                event_ids=(created.id,), time=when))
        records.sort(key=lambda r: r.time)
        store.write(records)
        stored = store.alerts(limit=3)
        store.review.add_review(stored[-1]["id"], "justify", uid=1000, user="ana",
                                text="Uploading to our org's private hub namespace for the eval run (ticket ML-1432)")
        store.review.add_review(stored[-2]["id"], "acknowledge", uid=0, user="root")
        store.write([Event(Action.SENSOR_HEALTH, Category.HOST, "network: degraded: sock_diag unavailable, polling",
                           details={"sensor": "network", "status": "degraded"})])
    finally:
        store.close()
    return path


def take_screenshots(out_dir: Path) -> list[Path]:
    from tests.gui.helpers import running_agent

    out_dir.mkdir(parents=True, exist_ok=True)
    gui = str(Path(sys.executable).with_name("weightwarden-gui"))
    taken = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        build_demo_database(data / "weightwarden.db")
        # Two destinations the agent really forwards to: a JSON-lines archive, and a syslog receiver that
        # is down (its error shows in the sync view).
        extra = (f'[forward.archive]\ntype = "file"\npath = "{Path(tmp) / "archive.jsonl"}"\n\n'
                 '[forward.qradar]\ntype = "syslog"\naddress = "127.0.0.1"\nport = 9\ntransport = "tcp"\n'
                 'format = "leef"\nretry_max_seconds = 1\n')
        with running_agent(Path(tmp), extra_config=extra) as agent:
            time.sleep(3)  # let the forwarders deliver (or fail) once
            for view in ("alerts", "detail", "overview", "models", "sync"):
                target = out_dir / f"{view}.png"
                subprocess.run([gui, "--db", str(data / "weightwarden.db"), "--config",
                                str(agent.config_file), "--screenshot", str(target),  # type: ignore[attr-defined]
                                "--view", view], check=True, capture_output=True)
                taken.append(target)
    return taken


if __name__ == "__main__":
    for shot in take_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(shot)
