"""Acceptance (issue 14, item 5): benign work with a protected model stays silent.

The agent runs as the installed service runs it and the user who is not root has the protected model in
~/models, all from the lineage acceptance test's fixtures (tests/agent/test_lineage_acceptance.py). Each
test is one workload a data scientist or an admin runs every day: a training loop (a memory map read by a
fork pool of two DataLoader-like workers, a few KB of JSON metrics written), an evaluation harness (the
model loaded five times, a 1 KB results file), the file tools (sha256sum, du, ls, file, stat), git in a
small text repo, a model server answering 20 small requests on 127.0.0.1, a pip install of a local wheel
into a --target folder, `uv venv` + `uv pip install` of a local wheel (offline, through uv's cache), a
git-lfs clone and pull of the team's model from an HTTP git server whose storage the agent cannot see (as a
remote server's), an IDE-like indexer (the first 8 KB of every file in the home, the model too, into a
SQLite index of a few hundred KB), a desktop thumbnailer (`file --mime-type` on every file of ~/Pictures and
the model's folder, gdk-pixbuf-thumbnailer into ~/.cache/thumbnails/large as the freedesktop spec lays it
out) and a restic backup of the home run by the user, restic allowlisted by path and hash in [detect]
allow_processes. None may raise an alert of severity 5 or more, of any rule.

Not covered here: conda (`conda install` needs its packages and a conda binary, neither of which can be
installed offline on the test machines: Debian has no conda package and no channel is reachable), and a
real desktop indexer daemon (tracker-miner-fs / tracker-extract need a D-Bus session and a running miner;
the thumbnailer test drives a real thumbnailer the way such a daemon does).

Only alerts about this user's doing count: the service watches the whole machine, and other tests may run
at the same time. How "none" is known without sleeping on luck: after the workload the same user makes a
real leak (`head -c` of half the model); its model-lineage alert is waited for, and decisions are made in
order of time once due, so by then any alert about the workload has been raised. The leak's incident must
be the only new alert record (every stored update counted, so an old incident updated by the workload shows
too).

The git-lfs pull stays silent because an LFS object and its checkout in the same repository are one model
(agent/models/git_lfs.py), the allowlisted backup because what an allowlisted process writes does not count
for lineage (agent/detect/lineage.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uv import find_uv_bin

from tests.agent.test_lineage_acceptance import (  # noqa: F401 - the fixtures
    InstalledAgent,
    Person,
    expect_one,
    people,
    service,
)
from tests.waiting import wait_for

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


def test_a_uv_venv_and_install_of_a_local_wheel(service: tuple[InstalledAgent, Path],  # noqa: F811
                                               people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    wheel = small_wheel(ana.home / "wwtoy-0.1-py3-none-any.whl")
    env = ana.home / "envs" / "toy"
    uv = find_uv_bin()
    # uv's own cache (~/.cache/uv) is filled and linked into the environment, as on every laptop
    ana.run(uv, "venv", "--quiet", "--offline", "--python", "/usr/bin/python3", str(env))
    ana.run(uv, "pip", "install", "--quiet", "--offline", "--no-index", "--python", str(env / "bin" / "python"),
            str(wheel))
    imported = ana.run(str(env / "bin" / "python"), "-c", "import wwtoy; print(wwtoy.double(2))").stdout
    assert imported.strip() == b"4"
    silent(agent, ana, model, before, "uv-install")


# The team's git server with Git LFS, as a workstation meets one: over HTTP, its storage on another machine.
# Here it is a process whose repositories live on a tmpfs mounted in a mount namespace of its own: nothing it
# stores is on a filesystem the agent sees (a model file the server kept on this machine's disks would be a
# protected model of root's, and the clone a copy of it). It serves git's dumb HTTP protocol (static files
# after `git update-server-info`) and the LFS batch API (docs: git-lfs/docs/api/batch.md); the maintainer's
# pushes (the safetensors library writes each version) happen inside it, on "publish SEED" lines on stdin.
LFS_SERVER = textwrap.dedent("""
    import hashlib, json, os, subprocess, sys
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread
    import numpy as np
    from safetensors.numpy import save_file
    root = sys.argv[1]
    bare, work = os.path.join(root, "srv", "team-models.git"), os.path.join(root, "work")
    env = {"HOME": root, "PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "maintainer",
           "GIT_AUTHOR_EMAIL": "m@example.org", "GIT_COMMITTER_NAME": "maintainer",
           "GIT_COMMITTER_EMAIL": "m@example.org"}

    def git(*args, cwd=None):
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    git("init", "-q", "--bare", "-b", "main", bare)
    git("init", "-q", "-b", "main", work)
    git("lfs", "install", "--local", cwd=work)
    git("lfs", "track", "*.safetensors", cwd=work)
    git("remote", "add", "origin", bare, cwd=work)

    def publish(seed):
        rng = np.random.default_rng(seed)
        path = os.path.join(work, "llm", "model.safetensors")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_file({f"layers.{i}.weight": rng.standard_normal((6000, 32)).astype(np.float32) for i in range(3)},
                  path, metadata={"format": "pt"})
        with open(os.path.join(work, "llm", "README.md"), "w") as readme:
            readme.write(f"# team llm\\n\\nversion {seed}\\n")
        git("add", ".gitattributes", "llm", cwd=work)
        git("commit", "-q", "-m", f"version {seed}", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        git("update-server-info", cwd=bare)
        with open(path, "rb") as model:
            return hashlib.sha256(model.read()).hexdigest()

    def lfs_object(oid):
        return os.path.join(bare, "lfs", "objects", oid[:2], oid[2:4], oid)

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=os.path.join(root, "srv"), **kwargs)

        def do_POST(self):  # the LFS batch API: where to download each object
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            host = self.headers["Host"]
            objects = []
            for item in request["objects"]:
                if os.path.exists(lfs_object(item["oid"])):
                    item["actions"] = {"download": {"href": f"http://{host}/lfs/{item['oid']}"}}
                else:
                    item["error"] = {"code": 404, "message": "no such object"}
                objects.append(item)
            body = json.dumps({"transfer": "basic", "objects": objects}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.git-lfs+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith("/lfs/"):
                with open(lfs_object(self.path[5:]), "rb") as stored:
                    body = stored.read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    for line in sys.stdin:
        print(publish(int(line.split()[1])), flush=True)
""")


class TeamServer:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        self.url = f"http://127.0.0.1:{int(process.stdout.readline())}/team-models.git"

    def publish(self, seed: int) -> str:
        """A new version of the team's model, committed and pushed; its SHA-256."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"publish {seed}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()


@pytest.fixture
def team_server(tmp_path: Path) -> Iterator[TeamServer]:
    if shutil.which("git-lfs") is None or shutil.which("unshare") is None:
        pytest.skip("git-lfs (installer/dev.sh TEST_DEBS) and unshare (util-linux) are needed")
    storage = tmp_path / "server"
    storage.mkdir()
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs -o size=64m team-server "$1" && exec "$2" -c "$3" "$1"', "sh", str(storage),
         sys.executable, LFS_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield TeamServer(process)
    finally:
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_a_git_lfs_clone_and_pull_of_the_team_model(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                    people: tuple[Person, Person],  # noqa: F811
                                                    team_server: TeamServer) -> None:
    agent, model = service
    ana, _ = people
    before = {a["id"] for a in all_alerts(agent)}
    first = team_server.publish(seed=101)
    clone = ana.home / "code" / "team-models"
    ana.run("mkdir", "-p", str(clone.parent))
    ana.run("git", "lfs", "install")  # once per account: the smudge and clean filters in ~/.gitconfig
    ana.run("git", "clone", "-q", team_server.url, str(clone))
    pulled = clone / "llm" / "model.safetensors"
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == first, "git-lfs checked out the model"
    second = team_server.publish(seed=102)
    ana.run("git", "-C", str(clone), "pull", "-q", "--ff-only")
    assert hashlib.sha256(pulled.read_bytes()).hexdigest() == second
    wait_for(lambda: any(str(pulled) in m.get("paths", []) for m in agent.models()), timeout=30,
             what="the pulled model in the inventory")  # seen, not overlooked
    silent(agent, ana, model, before, "git-lfs")


# An IDE's indexer (a language server's workspace scan): it walks the home, reads the first few KB of every
# file to tell text from binary and to find symbols, and keeps what it found in its own SQLite database.
INDEXER = textwrap.dedent("""
    import hashlib, os, re, sqlite3, sys
    home, database = sys.argv[1], sys.argv[2]
    HEAD = 8192
    db = sqlite3.connect(database)
    db.execute("create table if not exists files (path text primary key, size int, mtime real, head_sha1 text,"
               " kind text)")
    db.execute("create table if not exists symbols (name text, path text, line int)")
    db.execute("create index if not exists symbols_by_name on symbols (name)")
    db.execute("create table if not exists heads (path text primary key, text text)")
    seen = 0
    for top, folders, names in os.walk(home):
        folders[:] = sorted(f for f in folders if f not in (".cache", ".git"))
        for name in sorted(names):
            path = os.path.join(top, name)
            try:
                with open(path, "rb") as handle:
                    head = handle.read(HEAD)
                st = os.stat(path)
            except OSError:
                continue
            seen += 1
            try:
                text, kind = head.decode("utf-8"), "text"
            except UnicodeDecodeError:
                text, kind = None, "binary"
            db.execute("replace into files values (?, ?, ?, ?, ?)",
                       (path, st.st_size, st.st_mtime, hashlib.sha1(head).hexdigest(), kind))
            if text is not None:
                db.execute("replace into heads values (?, ?)", (path, text))
                for number, line in enumerate(text.splitlines(), 1):
                    for symbol in re.findall(r"^\\s*(?:def|class)\\s+(\\w+)", line):
                        db.execute("insert into symbols values (?, ?, ?)", (symbol, path, number))
    db.commit()
    db.close()
    print(seen)
""")


def write_project(root: Path, modules: int) -> None:
    """A Python project of `modules` source files of about 5 KB each."""
    for index in range(modules):
        body = "".join(f"def step_{index}_{n}(batch, lr=3e-4):\n    return [x * lr for x in batch]  # {n:04d}\n\n"
                       for n in range(60))
        path = root / f"pkg{index // 20}" / f"module_{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""Module {index} of the project."""\n\n{body}')


def owned_by(person: Person, top: Path) -> None:
    """What root wrote for a person in their home becomes theirs (the tree, and the folders up to the home)."""
    for path in [*top.rglob("*"), top, *top.parents]:
        if path == person.home:
            break
        os.chown(path, person.uid, person.gid)


def test_an_ide_indexing_the_home(service: tuple[InstalledAgent, Path],  # noqa: F811
                                  people: tuple[Person, Person]) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    project = ana.home / "code" / "trainer"
    write_project(project, modules=80)
    owned_by(ana, project)
    before = {a["id"] for a in all_alerts(agent)}
    database = ana.home / ".cache" / "ide" / "index.sqlite"
    ana.run("mkdir", "-p", str(database.parent))
    indexed = int(ana.run(sys.executable, "-c", INDEXER, str(ana.home), str(database)).stdout)
    assert indexed >= 81
    assert 200_000 < database.stat().st_size < 2_000_000, database.stat().st_size
    silent(agent, ana, model, before, "ide-index")
    assert reads_by(agent, "symbols_by_name") >= 1


# A desktop thumbnailer as a file manager or tumbler drives one (freedesktop thumbnail spec): each file's type
# is sniffed from its first bytes (`file --mime-type`), files of a type a installed thumbnailer
# (/usr/share/thumbnailers/*.thumbnailer) handles are thumbnailed by it (gdk-pixbuf-thumbnailer, a real
# Debian one) into ~/.cache/thumbnails/large/MD5(URI).png, written under a temporary name and renamed.
THUMBNAILER = textwrap.dedent("""
    import configparser, glob, hashlib, os, shlex, subprocess, sys, urllib.parse
    folders, cache = sys.argv[1:-1], sys.argv[-1]
    handlers = {}
    for entry in sorted(glob.glob("/usr/share/thumbnailers/*.thumbnailer")):
        spec = configparser.ConfigParser(interpolation=None)
        spec.read(entry)
        for mime in spec["Thumbnailer Entry"]["MimeType"].strip(";").split(";"):
            handlers.setdefault(mime, spec["Thumbnailer Entry"]["Exec"])
    made = sniffed = 0
    for folder in folders:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            mime = subprocess.run(["file", "--brief", "--mime-type", path], capture_output=True, text=True,
                                  check=True).stdout.strip()
            sniffed += 1
            command = handlers.get(mime)
            if command is None:
                continue
            uri = "file://" + urllib.parse.quote(path)
            out = os.path.join(cache, hashlib.md5(uri.encode()).hexdigest() + ".png")
            argv = [{"%s": "256", "%u": uri, "%i": path, "%o": out + ".part"}.get(a, a) for a in shlex.split(command)]
            subprocess.run(argv, check=True, capture_output=True)
            os.rename(out + ".part", out)
            made += 1
    print(sniffed, made)
""")

PICTURE = """<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="1200">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#{a}"/>
<stop offset="1" stop-color="#{b}"/></linearGradient></defs>
<rect width="1600" height="1200" fill="url(#g)"/><circle cx="{x}" cy="600" r="420" fill="#{b}" opacity="0.6"/>
</svg>
"""


def test_a_desktop_thumbnailer_over_pictures_and_models(service: tuple[InstalledAgent, Path],  # noqa: F811
                                                        people: tuple[Person, Person], tmp_path: Path) -> None:  # noqa: F811
    agent, model = service
    ana, _ = people
    thumbnailer = shutil.which("gdk-pixbuf-thumbnailer")
    if thumbnailer is None:
        pytest.skip("gdk-pixbuf-thumbnailer is not installed (libgdk-pixbuf2.0-bin, installer/dev.sh TEST_DEBS)")
    pictures = ana.home / "Pictures"
    pictures.mkdir(exist_ok=True)
    for index, (a, b) in enumerate([("204060", "f0a030"), ("103020", "30c0f0"), ("402010", "a0f060"),
                                    ("301040", "f060a0"), ("002040", "ffe080")]):
        drawing = tmp_path / f"p{index}.svg"
        drawing.write_text(PICTURE.format(a=a, b=b, x=400 + 160 * index))
        # photos as gdk-pixbuf writes PNGs (the real library, not hand-made bytes)
        subprocess.run([thumbnailer, "-s", "1600", str(drawing), str(pictures / f"IMG_{index:04d}.png")],
                       check=True, capture_output=True, timeout=30)
    owned_by(ana, pictures)
    before = {a["id"] for a in all_alerts(agent)}
    cache = ana.home / ".cache" / "thumbnails" / "large"
    ana.run("mkdir", "-p", str(cache))
    sniffed, made = ana.run(sys.executable, "-c", THUMBNAILER, str(pictures), str(model.parent),
                            str(cache)).stdout.split()
    assert int(made) == 5 and int(sniffed) >= 6, (sniffed, made)
    assert len(list(cache.glob("*.png"))) == 5
    silent(agent, ana, model, before, "thumbnailer")
    assert reads_by(agent, f"file --brief --mime-type {model}") == 1


def test_an_allowlisted_backup_of_the_home(people: tuple[Person, Person],  # noqa: F811
                                           service: tuple[InstalledAgent, Path],  # noqa: F811
                                           tmp_path: Path) -> None:
    """restic, allowlisted the way docs/rules.md says an admin does it: its path and its SHA-256 in [detect]
    allow_processes of the service's config.toml. This test's agent reads that file, everything else as
    installed (the module's service keeps the default config: it is not the one asked)."""
    _, model = service
    ana, _ = people
    restic = shutil.which("restic")
    if restic is None:
        pytest.skip("restic is not installed (installer/dev.sh TEST_DEBS)")
    digest = hashlib.sha256(Path(restic).read_bytes()).hexdigest()
    config = tmp_path / "config.toml"  # what the admin writes into /etc/weightwarden/config.toml
    config.write_text(f'[detect]\nallow_processes = ["{restic}@sha256:{digest}"]\n')
    agent = InstalledAgent(tmp_path / "data", config)
    try:
        wait_for(lambda: any(str(model) in m.get("paths", []) for m in agent.models()), timeout=120,
                 what="the model in the inventory of the allowlisting service")
        marked = 0

        def watching() -> bool:  # its access sensor reports ana's opens of the model (its mark is in place)
            nonlocal marked
            marked += 1
            ana.run("head", "-c", "1", str(model))
            return any((e.get("process") or {}).get("name") == "head" for e in agent.json_lines("events")
                       if e["event"]["action"] in ("model-opened", "model-read"))

        wait_for(watching, timeout=60, what="the access sensor to mark the model", interval=0.5)
        before = {a["id"] for a in all_alerts(agent)}
        repository = ana.home / "backups" / "restic"
        secret = ana.home / ".config" / "restic" / "password"
        ana.run("mkdir", "-p", str(repository.parent), str(secret.parent))
        ana.run("sh", "-c", f"umask 077 && echo 'correct horse battery' > {secret}")
        restic_args = ["--repo", str(repository), "--password-file", str(secret), "--quiet"]
        ana.run(restic, "init", *restic_args)
        ana.run(restic, "backup", *restic_args, str(model.parent.parent), str(ana.home / "code"))
        listed = ana.run(restic, "ls", *restic_args, "latest").stdout.decode()
        assert str(model) in listed, listed
        stored = sum(p.stat().st_size for p in (repository / "data").rglob("*") if p.is_file())
        assert stored > model.stat().st_size // 2  # the backup holds the model's bytes (encrypted)
        silent(agent, ana, model, before, "restic-backup")
        assert reads_by(agent, "restic backup") == 1
        print(f"access sensor marked after {marked} tries")
    finally:
        assert agent.stop() == 0
