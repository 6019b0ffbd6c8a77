"""Acceptance (issue 14, item 5): benign work with a protected model stays silent.

The agent runs as the installed service runs it and the user who is not root has the protected model in
~/models, all from the lineage acceptance test's fixtures (tests/agent/test_lineage_acceptance.py). Each
test is one workload a data scientist or an admin runs every day: a training loop (a memory map read by a
fork pool of two DataLoader-like workers, a few KB of JSON metrics written), an evaluation harness (the
model loaded five times, a 1 KB results file), the file tools (sha256sum, du, ls, file, stat), git in a
small text repo, a model server answering 20 small requests on 127.0.0.1, a pip install of a local wheel
into a --target folder. None may raise an alert of severity 5 or more, of any rule.

Only alerts about this user's doing count: the service watches the whole machine, and other tests may run
at the same time. How "none" is known without sleeping on luck: after the workload the same user makes a
real leak (`head -c` of half the model); its model-lineage alert is waited for, and decisions are made in
order of time once due, so by then any alert about the workload has been raised. The leak's incident must
be the only new alert record (every stored update counted, so an old incident updated by the workload shows
too).
"""

from __future__ import annotations

import io
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_lineage_acceptance import (  # noqa: F401 - the fixtures
    InstalledAgent,
    Person,
    expect_one,
    people,
    service,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]

SEVERE = 5

TRAINING = textwrap.dedent("""
    import json, multiprocessing, sys
    import numpy as np
    model = np.memmap(sys.argv[1], dtype=np.uint8, mode="r")
    SLICE = 1 << 20

    def batch(index):  # a forked worker reads its slice of the parent's map
        start = index * SLICE
        return float(model[start:start + SLICE].astype(np.float64).mean())

    if __name__ == "__main__":
        with multiprocessing.get_context("fork").Pool(2) as pool:
            metrics = []
            for epoch in range(2):
                means = pool.map(batch, range(len(model) // SLICE))
                metrics.append({"epoch": epoch, "loss": sum(means) / len(means), "batches": means})
        with open(sys.argv[2], "w") as out:
            json.dump({"metrics": metrics, "note": "x" * 2000}, out)
""")

EVALUATION = textwrap.dedent("""
    import json, sys
    from safetensors.numpy import load_file
    scores = []
    for run in range(5):
        tensors = load_file(sys.argv[1])
        scores.append(sum(float(t.mean()) for t in tensors.values()))
    with open(sys.argv[2], "w") as out:
        json.dump({"scores": scores, "note": "x" * (1000 - len(json.dumps(scores)))}, out)
""")

SERVER = textwrap.dedent("""
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from safetensors.numpy import load_file
    tensors = load_file(sys.argv[1])
    answers = {name: float(t.mean()) for name, t in tensors.items()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"y": round(answers[sorted(answers)[request["x"] % len(answers)]], 3)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
""")

# Runs the server as its child, asks 20 questions from this process (a local client), stops it.
CLIENT = textwrap.dedent("""
    import json, os, signal, sys, urllib.request
    # The server is a forked child running SERVER (no second exec: the interpreter's path may not be one
    # this user can exec again, e.g. a venv whose python points into /root).
    server_code = sys.argv[1]
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(readable)
        os.dup2(writable, 1)
        sys.argv = ["model-server", sys.argv[2]]
        exec(compile(server_code, "model-server", "exec"), {"__name__": "__main__"})
        os._exit(0)
    os.close(writable)
    try:
        port = int(os.fdopen(readable).readline())  # the server prints its port once it listens
        answers = []
        for x in range(20):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps({"x": x}).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                answers.append(json.loads(response.read())["y"])
        print(len(answers))
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
""")


def all_alerts(agent: InstalledAgent) -> list[dict[str, Any]]:
    """Every stored alert record, each update of an incident too."""
    return agent.json_lines("alerts", "--every-update")


def names(alert: dict[str, Any], path: str) -> bool:
    wheres = [o.get("where") for o in (alert.get("evidence") or {}).get("outputs", [])]
    return path in wheres or path in (alert.get("paths") or [])


def severe_alerts_after(agent: InstalledAgent, person: Person, model: Path, before: set[str],
                        tag: str) -> list[dict[str, Any]]:
    """The barrier: a real leak by the same person, its alert waited for; then the alert records of severity
    SEVERE or more raised since `before` that are not the leak's."""
    sentinel = person.home / f"sentinel-{tag}.bin"
    person.run("sh", "-c", f"head -c {model.stat().st_size // 2} {model} > {sentinel}")
    expect_one(agent, person, f"sentinel after {tag}", str(sentinel), time.time())
    new = [a for a in all_alerts(agent) if a["id"] not in before and a["severity"] >= SEVERE]
    assert any(names(a, str(sentinel)) for a in new), "the leak's alert is severe"
    return [a for a in new if not names(a, str(sentinel)) and not someone_elses(a, person)]


def someone_elses(alert: dict[str, Any], person: Person) -> bool:
    """An alert about another user's doing. The service watches the whole machine: other tests running at the
    same time (their own users, their own leaks) reach this agent too. An alert naming no user is counted."""
    user = (alert.get("process") or {}).get("user") or (alert.get("evidence") or {}).get("user")
    mine = person.name in alert["message"] or any(str(p).startswith(f"{person.home}/") for p in alert["paths"])
    return bool(user) and user != person.name and not mine


def described(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(a["rule"], a["severity"], a["message"], (a.get("process") or {}).get("name"), a.get("paths"))
            for a in alerts]


def silent(agent: InstalledAgent, person: Person, model: Path, before: set[str], tag: str) -> None:
    others = severe_alerts_after(agent, person, model, before, tag)
    assert not others, f"{tag} raised {described(others)}"


def reads_by(agent: InstalledAgent, marker: str) -> int:
    """The agent's model-read events whose process's command line holds `marker`: silence is not blindness."""
    return sum(1 for e in agent.json_lines("events") if e["event"]["action"] == "model-read"
               and marker in ((e.get("process") or {}).get("command_line") or ""))


def test_a_training_loop_with_a_fork_pool_over_a_memory_map(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                           people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    checkpoint = ana.home / "runs" / "checkpoint-metrics.json"
    ana.run("mkdir", "-p", str(checkpoint.parent))
    ana.run(sys.executable, "-c", TRAINING, str(model), str(checkpoint))
    assert 1000 < checkpoint.stat().st_size < 8192
    silent(agent, ana, model, before, "training")
    assert reads_by(agent, "multiprocessing") == 1


def test_an_evaluation_harness_loading_the_model_five_times(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                           people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    results = ana.home / "eval-results.json"
    ana.run(sys.executable, "-c", EVALUATION, str(model), str(results))
    assert 900 < results.stat().st_size < 1100
    silent(agent, ana, model, before, "evaluation")
    assert reads_by(agent, "scores.append") == 5


def test_file_tools_on_the_model(service: tuple[InstalledAgent, Path],  # noqa: F811
                                 people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    for argv in (["sha256sum", str(model)], ["du", "-sh", str(model)], ["ls", "-la", str(model.parent)],
                 ["file", str(model)], ["stat", str(model)]):
        ana.run(*argv)
    silent(agent, ana, model, before, "file-tools")
    assert reads_by(agent, f"sha256sum {model}") == 1 and reads_by(agent, f"file {model}") == 1


def test_git_in_a_small_text_repo(service: tuple[InstalledAgent, Path],  # noqa: F811
                                  people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    repo = ana.home / "notes-repo"
    ana.run("mkdir", "-p", str(repo / "docs"))
    ana.run("git", "-C", str(repo), "init", "-q")
    ana.run("sh", "-c", f"cd {repo} && printf '# notes\\n' > README.md && printf 'lr = 3e-4\\n' > docs/train.txt")
    ana.run("git", "-C", str(repo), "add", "README.md", "docs")
    status = ana.run("git", "-C", str(repo), "status", "--short").stdout.decode()
    assert "A  README.md" in status and "A  docs/train.txt" in status, status
    silent(agent, ana, model, before, "git")


def test_a_model_server_answering_local_requests(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                 people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    served = ana.run(sys.executable, "-c", CLIENT, SERVER, str(model), check=False)
    assert served.returncode == 0 and served.stdout.decode().strip() == "20", served.stderr.decode()
    silent(agent, ana, model, before, "model-server")
    assert reads_by(agent, "HTTPServer") == 1


def small_wheel(path: Path) -> Path:
    """A pure-Python wheel of two modules, written the way a build backend lays one out."""
    dist = "wwtoy-0.1.dist-info"
    files = {
        "wwtoy/__init__.py": b"from wwtoy.ops import double\n",
        "wwtoy/ops.py": b"def double(x):\n    return 2 * x\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: wwtoy\nVersion: 0.1\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = io.StringIO()
    for name in files:
        record.write(f"{name},,\n")
    record.write(f"{dist}/RECORD,,\n")
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist}/RECORD", record.getvalue())
    return path


def test_a_pip_install_of_a_local_wheel_into_a_target_folder(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                             people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    wheel = small_wheel(ana.home / "wwtoy-0.1-py3-none-any.whl")
    target = ana.home / "site"
    ana.run(sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--target", str(target), str(wheel))
    assert (target / "wwtoy" / "ops.py").is_file()
    imported = ana.run(sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); import wwtoy; "
                       "print(wwtoy.double(2))").stdout
    assert imported.strip() == b"4"
    silent(agent, ana, model, before, "pip-install")
