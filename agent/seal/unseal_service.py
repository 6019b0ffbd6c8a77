"""The agent's side of `weightwarden unseal`: who asks, may they, then unseal as root and record it.

The control socket's `unseal` op (agent/control.py) hands requests here (docs/sealing.md):

    {"op": "unseal", "path": "/abs/path"}   -> {"ok": true, "job": ID, "done": false}
    {"op": "unseal", "job": ID}             -> {"ok": true, "done": false} while it runs, then the outcome:
                                               {"ok": true, "done": true, "path", "size", "decision"} or
                                               {"ok": false, "done": true, "error", "refused": bool}

Why jobs: unsealing a large checkpoint takes minutes, and the socket answers every client with a small
fixed pool of request threads (agent/control_connections.py). The work runs on this service's own thread,
one unseal at a time; the request threads only start jobs and report on them, in milliseconds.

The caller is who the kernel says connected (SO_PEERCRED pid and uid), read from /proc when the request
arrives (`opener_of`: user, groups, executable and its SHA-256, parents, unit), never what the request
claims. The decision is made inside `unseal_file(authorize=...)`, on the very file about to be unsealed
(opened without following symlinks) and the header it holds, so a name swapped after the decision cannot
redirect the unseal. A caller is refused when the file's own permissions would not let them read it, and
when the access policy does not allow them `read-write` for that model, whatever the policy's mode: monitor
mode lets opens through so work goes on while a policy is tried out, but an unseal is never urgent.
Both outcomes are chained records: `model-unsealed` and `unseal-refused` (a detection rule alerts on it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from weightwarden.agent.access.decide import Decider, Decision, ModelRef, Opener, opener_of
from weightwarden.agent.access.grants import BreakGlass, GrantBook
from weightwarden.agent.access.policy import AccessPolicies
from weightwarden.agent.audit.acl import READ, Acl, AclError, read_acl
from weightwarden.agent.events import Action, Category, Event, FileInfo, ProcessInfo, Record, display_path
from weightwarden.agent.executables import ExecutableHashes
from weightwarden.agent.seal.container import SealHeader
from weightwarden.agent.seal.inplace import SealError, remove_stale_in, unseal_file
from weightwarden.agent.seal.keys import machine_private_key

log = logging.getLogger(__name__)

ACCESS = "read-write"  # an unseal writes the plaintext where the sealed file was
JOURNAL = "unsealing"  # in the data dir: the folders of unseals under way (see _journaled)
JOBS_PER_UID = 4  # waiting or running; more is refused, so one user cannot queue the agent's disk for hours
JOBS_TOTAL = 32
KEEP_FINISHED_SECONDS = 600.0  # an outcome nobody came for is forgotten after this long


class Caller(Protocol):
    """What the control socket knows of a peer (control.Peer)."""

    @property
    def pid(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def user(self) -> str: ...


class UnsealRefused(SealError):
    """The caller may not unseal this file; the message says why."""


@dataclass
class _Job:
    uid: int
    future: Future[dict[str, Any]]
    finished: float | None = None


class UnsealService:
    def __init__(self, data_dir: str, decider: Decider, record: Callable[[Record], None], *,
                 who: Callable[[int], ProcessInfo | None], model_name: Callable[[str, int, int], str | None],
                 hashes: ExecutableHashes | None = None) -> None:
        """`record` hands a record to the agent's ordered pipeline (stored, chained, detected on); `who` is
        the agent's process cache; `model_name(path, device, inode)` the inventory's name for that file, when
        it knows it."""
        self.data_dir = data_dir
        self.decider = decider
        self.record = record
        self.who = who
        self.model_name = model_name
        self.hashes = hashes or ExecutableHashes()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ww-unseal")
        self.journal = os.path.join(data_dir, JOURNAL)
        self.cleaned = clean_after_crash(self.journal)

    def answer(self, peer: Caller, request: dict[str, Any]) -> dict[str, Any]:
        """The reply to one `unseal` request (on a control request thread: never waits for an unseal)."""
        if "job" in request:
            return self._outcome(peer, request["job"])
        path = request.get("path")
        if not isinstance(path, str) or not path or "\0" in path or not os.path.isabs(path):
            return {"ok": False, "error": "unseal needs the absolute path of a sealed file (path)"}
        opener = opener_of(peer.pid, self.hashes)
        if opener is None or opener.uid != peer.uid:  # gone, or not who connected (a pid reused)
            return {"ok": False, "error": "the agent could not identify the process asking"}
        process = self.who(peer.pid) or ProcessInfo(peer.pid, executable=opener.executable, user=peer.user,
                                                     uid=peer.uid)
        with self._lock:
            self._forget_old(time.monotonic())
            if sum(1 for job in self._jobs.values() if job.uid == peer.uid) >= JOBS_PER_UID:
                return {"ok": False, "error": f"at most {JOBS_PER_UID} unseals per user at once"}
            if len(self._jobs) >= JOBS_TOTAL:
                return {"ok": False, "error": "the agent has too many unseals under way; try again later"}
            job_id = secrets.token_hex(8)
            job = _Job(peer.uid, self._pool.submit(self._unseal, path, opener, process))
            self._jobs[job_id] = job
            job.future.add_done_callback(lambda _f: self._finished(job))
        return {"ok": True, "job": job_id, "done": False}

    def stop(self) -> None:
        """Abandons the unseal under way at its next chunk (its file stays sealed, its temporary file goes:
        a shutdown must not wait for a 100 GB unseal) and drops the queue."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ jobs

    def _outcome(self, peer: Caller, job_id: object) -> dict[str, Any]:
        if not isinstance(job_id, str):
            return {"ok": False, "done": True, "error": "job must be a string"}
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.uid != peer.uid:  # another user's job is not theirs to see
                return {"ok": False, "done": True, "error": f"no unseal job {job_id[:40]!r}"}
            if not job.future.done():
                return {"ok": True, "done": False, "job": job_id}
            del self._jobs[job_id]
        if job.future.cancelled():
            return {"ok": False, "done": True, "error": "the agent stopped before this unseal began"}
        return {**job.future.result(), "done": True, "job": job_id}

    def _finished(self, job: _Job) -> None:
        with self._lock:
            job.finished = time.monotonic()

    def _forget_old(self, now: float) -> None:
        for job_id in [i for i, job in self._jobs.items()
                       if job.finished is not None and now - job.finished > KEEP_FINISHED_SECONDS]:
            del self._jobs[job_id]

    # ------------------------------------------------------------------ one unseal (the service's thread)

    def _unseal(self, path: str, opener: Opener, process: ProcessInfo) -> dict[str, Any]:
        decided: list[tuple[Decision | None, SealHeader, str | None, str]] = []  # what was judged, and where

        def authorize(info: os.stat_result, header: SealHeader, where: str, fd: int) -> None:
            # judged where the file really is and as the inventory knows that very file (by inode), never by
            # the name the caller gave: a symlinked folder must not dodge a policy on the model's path
            name = self.model_name(where, info.st_dev, info.st_ino) or header.model
            try:
                acl = read_acl(fd, info.st_mode)
            except (OSError, AclError) as error:
                decided.append((None, header, name, where))
                raise UnsealRefused(f"{display_path(path)}: its access ACL cannot be read ({error}); "
                                    "left sealed") from None
            if not may_read(info, opener, acl):
                decided.append((None, header, name, where))
                raise UnsealRefused(f"{display_path(path)}: {opener.user or opener.uid} may not read this file "
                                    "(its owner, group, mode and ACL say so)")
            self.decider.policies.reload()  # the policy as it is now, not as it was at the agent's start
            decision = self.decider.decide(opener, ModelRef(where, name), ACCESS)
            decided.append((decision, header, name, where))
            if not decision.allowed:
                raise UnsealRefused(f"{display_path(path)}: the access policy does not allow "
                                    f"{opener.user or opener.uid} to unseal {name or 'this model'}: "
                                    f"{decision.reason}")

        def stopping(_index: int) -> None:
            if self._stopping.is_set():
                raise SealError(f"{display_path(path)}: the agent is stopping; left sealed")

        try:
            with _journaled(self.journal, path):
                header = unseal_file(path, lambda: machine_private_key(self.data_dir), authorize=authorize,
                                     on_chunk=stopping)
        except UnsealRefused as error:
            decision, sealed, name, where = decided[-1] if decided else (None, None, None, path)
            self.record(self._event(Action.UNSEAL_REFUSED, where, process, opener, decision, sealed, name,
                                    f"unseal refused: {error}"))
            log.warning("unseal refused: %s", error)
            return {"ok": False, "error": str(error), "refused": True}
        except SealError as error:
            return {"ok": False, "error": str(error), "refused": False}
        except OSError as error:  # the journal in the data dir (the unseal's own errors are SealErrors)
            return {"ok": False, "error": f"{display_path(path)}: {error.strerror or error}", "refused": False}
        decision, _sealed, name, where = decided[-1]
        assert decision is not None  # an unseal that went ahead was allowed
        self.record(self._event(Action.MODEL_UNSEALED, where, process, opener, decision, header, name,
                                f"model unsealed for {opener.user or opener.uid}: {display_path(where)}"))
        return {"ok": True, "path": display_path(path), "size": header.size, "decision": decision.reason}

    @staticmethod
    def _event(action: Action, path: str, process: ProcessInfo, opener: Opener, decision: Decision | None,
               header: SealHeader | None, name: str | None, message: str) -> Event:
        details: dict[str, Any] = {"caller": {"pid": opener.pid, "uid": opener.uid, "user": opener.user,
                                              "executable": opener.executable,
                                              "executable_sha256": opener.executable_sha256}}
        if decision is not None:
            details["decision"] = {"policy": decision.policy_id, "reason": decision.reason, "access": ACCESS,
                                   "allowed": decision.allowed, "enforced": decision.enforced,
                                   "grant": decision.grant_id, "break_glass": decision.break_glass}
        if header is not None:
            details["sealed"] = {"format": header.format, "sha256": header.sha256, "size": header.size}
        file = FileInfo.at(path, size=header.size if header else None,
                           sha256=header.sha256 if header else None, format=header.format if header else None)
        return Event(action, Category.FILE, message, file=file, model=name, process=process,
                     details={"unseal": details})


@contextmanager
def _journaled(journal: str, path: str) -> Iterator[None]:
    """Notes the folder of an unseal under way in the data dir: a plaintext temporary file a crash leaves
    there (root's, 0600) is removed at the next start, not only at the next seal or unseal in that folder."""
    os.makedirs(journal, mode=0o700, exist_ok=True)
    entry = os.path.join(journal, secrets.token_hex(8))
    with open(entry, "wb") as handle:
        handle.write(os.fsencode(os.path.dirname(path)))
        handle.flush()
        os.fsync(handle.fileno())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(entry)


def clean_after_crash(journal: str) -> list[str]:
    """The temporary files of the unseals a crash interrupted, removed; their paths."""
    removed: list[str] = []
    try:
        entries = os.listdir(journal)
    except OSError:
        return removed
    for name in entries:
        entry = os.path.join(journal, name)
        try:
            with open(entry, "rb") as handle:
                folder = os.fsdecode(handle.read(1 << 16))
            removed += [os.path.join(folder, stale) for stale in remove_stale_in(folder)]
            os.unlink(entry)
        except OSError as error:
            log.warning("unseal journal %s: %s", entry, error)
    if removed:
        log.warning("removed what interrupted unseals left: %s", ", ".join(display_path(p) for p in removed))
    return removed


def may_read(info: os.stat_result, opener: Opener, acl: Acl | None = None) -> bool:
    """Whether the file's owner, group, mode bits and access ACL (`acl`; None: the mode's alone) let the
    opener read it, as the kernel would decide for that user (root always may)."""
    if opener.uid == 0:
        return True
    acl = acl or Acl.from_mode(info.st_mode)
    return acl.allows(READ, opener.uid, frozenset(opener.gids), info.st_uid, info.st_gid)


def unseal_service(data_dir: str, record: Callable[[Record], None], *, who: Callable[[int], ProcessInfo | None],
                   model_name: Callable[[str, int, int], str | None], decider: Decider | None = None) -> UnsealService:
    """The service an agent with this data dir runs: decided by the agent's own `decider` (the one its opens
    are enforced with), else by the access policy files, grants and break-glass as `weightwarden access`
    keeps them (agent/access)."""
    decider = decider or Decider(AccessPolicies(), GrantBook(data_dir), BreakGlass(data_dir))
    return UnsealService(data_dir, decider, record, who=who, model_name=model_name)
