"""A realistic demo database, and the README's screenshots taken from it with a real agent running.

    .venv/bin/python -m tests.gui.demo docs/screenshots
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from tests.gui import real_alerts
from weightwarden.agent.events import Action, Alert, Category, Event, FileInfo, ModelFile, utc_now
from weightwarden.agent.store import Store

MODELS = ("llama-3-8b-support-ft", "whisper-medium-acme", "sdxl-lora-brand", "fraud-bert-v7")
# What people did with the models (each replayed through the real engine, tests/gui/real_alerts.py):
# (scenario, process, command line, where it went)
ACTIVITY = (
    ("transfer", "rsync", "/usr/bin/rsync -av {source} backup-host:/srv/x", None),
    ("copy", "python3", "python3 export.py --out /tmp/stage", ("temporary", "/tmp/stage/{n}/{m}.safetensors")),
    ("egress", "firefox", "/usr/lib/firefox/firefox", "huggingface.co"),
    ("transfer", "aws", "aws s3 cp {source} s3://acme-scratch/ckpt/", None),
    ("copy", "cp", "cp -r models /media/ana/USB", ("removable", "/media/ana/USB/{n}/{m}.safetensors")),
    ("copy", "rclone", "rclone copy ckpt /home/ana/gdrive/tmp", ("cloud-sync", "/home/ana/gdrive/{n}/{m}.safetensors")),
    ("staging", "tar", "", "/tmp/{m}-{n}.tgz"),
    ("canary", "head", "head -c 4096 /home/ana/models/internal-7b/model.safetensors", None),
    ("bulk", "cp", "cp -r /home/ana/models /tmp/all", None),
)


def _alert(rng: random.Random, i: int, model: str, source: str, when: datetime) -> tuple[Alert, Event]:
    # The newest alert (the detail screenshot, the one justified below) is the browser upload.
    scenario, name, cmd, where = rng.choice(ACTIVITY) if i else ACTIVITY[2]
    pid = rng.randint(2000, 60000)
    who = real_alerts.process(name, pid, cmd.format(source=source, m=model, n=i))
    before = when - timedelta(seconds=4)
    if scenario == "copy":
        kind, template = where
        path = template.format(m=model, n=i)
        alert = real_alerts.copy(model, source, path, kind, who, when=when,
                                 sha256=f"{rng.getrandbits(256):064x}" if rng.random() < 0.5 else None)
        return alert, Event(Action.MODEL_CREATED, Category.FILE, f"model created: {path}",
                            file=FileInfo(path=path), model=model, time=before)
    if scenario == "egress":
        alert = real_alerts.egress(model, source, who, where, rng.choice((0.55, 0.8, 1.0)), when=when)
    elif scenario == "staging":
        alert = real_alerts.staging(model, source, where.format(m=model, n=i), pid, when=when)
    elif scenario == "canary":  # a decoy planted beside the real models
        alert = real_alerts.canary("internal-7b", "/home/ana/models/internal-7b/model.safetensors", who, when=when)
    elif scenario == "bulk":
        alert = real_alerts.bulk([*MODELS, "mistral-7b-instruct", "bge-large"], who, when=when)
    else:
        alert = real_alerts.transfer(model, source, who, when=when)
    return alert, Event(Action.MODEL_READ, Category.FILE, f"{name} (pid {pid}) model-read {source}",
                        file=FileInfo(path=source), model=model, time=before)


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
            when = now - timedelta(minutes=rng.randint(0, 14 * 24 * 60 - 1) if i else 3)
            source = f"/home/ana/models/{model}/model-00001-of-00002.safetensors"
            alert, seen = _alert(rng, i, model, source, when)
            records += [seen, alert]
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


def _access_requests(socket: str) -> None:
    """Requests waiting in the Access view, and one approved: through the agent, as the app makes them
    (the demo runs as root, so they are root's)."""
    from weightwarden.agent import control

    asked = [control.request(socket, {"op": "access-request", "model": model, "program": program,
                                      "justification": why, "hours": hours})
             for model, program, why, hours in (
                 ("llama-3-8b-support-ft", "/usr/bin/python3.11", "eval run for ticket ML-1432", 8),
                 ("whisper-medium-acme", "/opt/asr/bin/transcribe", "re-transcribe the Q3 support calls", 24),
                 ("fraud-bert-v7", None, "threshold calibration with the risk team", 4))]
    approved = control.request(socket, {"op": "access-grant", "request": asked[0]["request"]["id"], "hours": 8})
    if not approved.get("ok"):
        raise RuntimeError(f"the demo grant was refused: {approved}")


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
            _access_requests(agent.control.path)
            time.sleep(3)  # let the forwarders deliver (or fail) once
            for view in ("alerts", "detail", "overview", "models", "access", "sync"):
                target = out_dir / f"{view}.png"
                subprocess.run([gui, "--db", str(data / "weightwarden.db"), "--config",
                                str(agent.config_file), "--screenshot", str(target),  # type: ignore[attr-defined]
                                "--view", view], check=True, capture_output=True)
                taken.append(target)
    return taken


if __name__ == "__main__":
    for shot in take_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")):
        print(shot)
