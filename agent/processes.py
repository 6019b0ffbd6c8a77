"""Who a pid is: a cache of process snapshots that outlives the processes themselves.

The access and network sensors only learn a pid; by the time the agent looks, a `cp` or `scp` may be gone.
The cache is fed by the process sensor (proc connector exec/fork/exit on Linux, psutil polling elsewhere)
so a process that has exited is still attributed: its snapshot (name, exe, command line, user, parent,
session) was taken when it started, and is kept for `retain_seconds` after it exits.

Reading `/proc` directly is deliberate: it is a handful of small reads per process, without psutil's
per-call object setup, and it works on zombies (the exit window) where psutil raises.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shlex
import stat
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

import psutil

from weightwarden.agent.events import ProcessInfo, ProcessRef
from weightwarden.agent.executables import ExecutableHashes, Identity, identify_process

MAX_PARENT_DEPTH = 16


@dataclass(frozen=True, slots=True)
class ProcessSnapshot:
    """What /proc said about one process, once."""

    pid: int
    ppid: int | None
    name: str | None
    executable: str | None
    command_line: str | None
    uid: int | None
    session_id: int | None
    start_ticks: int | None  # /proc/<pid>/stat starttime: tells a reused pid from the original
    exited: bool = False
    taken: float = 0.0


def user_name(uid: int | None, _cache: dict[int, str] = {}) -> str | None:  # noqa: B006 - memo
    """The account name of a uid; an unknown uid is asked again next time (an account made while the agent
    runs must be named once it exists)."""
    if uid is None:
        return None
    if uid not in _cache:
        try:
            _cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            return None
    return _cache[uid]


def _read(path: str, limit: int = 65536) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_all(path: str, limit: int) -> bytes | None:
    """All of a /proc file that a single read() returns in pieces (seq_file: smaps, maps), up to `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def snapshot(pid: int) -> ProcessSnapshot | None:
    """Read /proc/<pid> now; None when there is no such process (any more)."""
    stat = _read(f"/proc/{pid}/stat", 4096)
    if not stat:
        return None
    # comm is in parentheses and may itself contain ") ": split at the last one.
    head, _, rest = stat.rpartition(b") ")
    name = head.partition(b"(")[2].decode("utf-8", "backslashreplace") or None
    fields = rest.split()
    ppid = int(fields[1]) if len(fields) > 1 else None
    session = int(fields[3]) if len(fields) > 3 else None
    start = int(fields[19]) if len(fields) > 19 else None
    raw_cmdline = _read(f"/proc/{pid}/cmdline") or b""
    args = [a.decode("utf-8", "backslashreplace") for a in raw_cmdline.rstrip(b"\0").split(b"\0") if a]
    try:
        exe: str | None = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = None
    uid = None
    status = _read(f"/proc/{pid}/status", 8192) or b""
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            uid = int(line.split()[1])  # the real uid: who is behind it, even for setuid programs
            break
    return ProcessSnapshot(pid, ppid, name, exe, shlex.join(args) if args else None, uid, session, start,
                           exited=fields[0:1] in ([b"Z"], [b"X"]), taken=time.monotonic())


def thread_group(tid: int) -> int | None:
    """The process (thread group id) thread `tid` belongs to; None when there is no such thread (any more).
    /proc/<tid> exists for every thread, listed or not; its status says Tgid within its first lines."""
    status = _read(f"/proc/{tid}/status", 1024)
    if not status:
        return None
    at = status.find(b"\nTgid:")
    if at < 0:
        return None
    try:
        return int(status[at + 6:status.index(b"\n", at + 1)])
    except ValueError:
        return None


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie has): one small read of /proc/<pid>/stat."""
    stat = _read(f"/proc/{pid}/stat", 4096)
    if not stat:
        return False
    state = stat.rpartition(b") ")[2][:1]
    return state not in (b"Z", b"X", b"")


def io_counters(pid: int) -> dict[str, int] | None:
    """/proc/<pid>/io (rchar, wchar, read_bytes, ...) or None when unreadable."""
    raw = _read(f"/proc/{pid}/io", 4096)
    if not raw:
        return None
    out = {}
    for line in raw.splitlines():
        key, _, value = line.partition(b":")
        if value.strip().isdigit():
            out[key.decode()] = int(value)
    return out


FDS_READ = 4096  # descriptors read per process


def descriptors(pid: int) -> Iterator[tuple[str, str]]:
    """(descriptor number, what it points to) for each of a process's open descriptors, at most FDS_READ;
    nothing when the process is gone or not ours to read."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return
    for name in names[:FDS_READ]:
        try:
            yield name, os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue


def access_mode(pid: int, fd: str) -> int | None:
    """O_RDONLY, O_WRONLY or O_RDWR of a descriptor (/proc/<pid>/fdinfo flags), None when unreadable."""
    for line in (_read(f"/proc/{pid}/fdinfo/{fd}", 4096) or b"").splitlines():
        if line.startswith(b"flags:"):
            return int(line.split()[1], 8) & os.O_ACCMODE
    return None


def files_open_for_writing(pid: int) -> tuple[str, ...]:
    """Regular files a process holds open for writing (a shell's redirection `> out` handed to its child: the
    close may be reported for the shell, which holds the last reference). A descriptor's entry in
    /proc/<pid>/fd carries its open mode in its permission bits (owner write: open for writing), so one
    lstat per descriptor tells, and only those open for writing are followed (a training job holds dozens)."""
    found: list[str] = []
    try:
        entries = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return ()
    with entries:
        for count, entry in enumerate(entries):
            if count >= FDS_READ:
                break
            try:
                if not entry.stat(follow_symlinks=False).st_mode & stat.S_IWUSR:
                    continue
                link = os.readlink(entry.path)
            except OSError:
                continue
            if link.startswith("/") and not link.startswith(("/dev/", "/proc/", "/sys/")):
                found.append(link)
    return tuple(found)


def fd_positions(pid: int, device: int, inode: int) -> list[tuple[int, int]]:
    """(fd, file position) of every descriptor of `pid` open on (device, inode)."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if st.st_ino != inode or st.st_dev != device:
            continue
        info = _read(f"/proc/{pid}/fdinfo/{fd}", 4096) or b""
        for line in info.splitlines():
            if line.startswith(b"pos:"):
                found.append((int(fd), int(line.split()[1])))
                break
    return found


def maps_file(pid: int, device: int, inode: int) -> bool:
    """Whether `pid` has (device, inode) memory-mapped (/proc/<pid>/maps lists dev as major:minor hex)."""
    raw = _read_all(f"/proc/{pid}/maps", 1 << 24)  # one read() stops at a page: a big process maps more
    if not raw:
        return False
    dev = f"{os.major(device):02x}:{os.minor(device):02x}".encode()
    ino = str(inode).encode()
    for line in raw.splitlines():
        parts = line.split(None, 5)
        if len(parts) >= 5 and parts[4] == ino and parts[3] == dev:
            return True
    return False


_HEX = frozenset(bytes([c]) for c in b"0123456789abcdef")


def mapped_resident(pid: int, device: int, inode: int) -> int | None:
    """Bytes of (device, inode) that `pid` has resident in its mappings of it, summed over those mappings
    (/proc/<pid>/smaps Rss): the pages it touched (plus the kernel's fault-around, up to 64 KiB next to each
    fault, of pages already cached). None when it has no such mapping or smaps is unreadable."""
    raw = _read_all(f"/proc/{pid}/smaps", 1 << 26)
    if not raw:
        return None
    total: int | None = None
    ours = False
    for line in raw.splitlines():
        if line[:1] in _HEX:  # a mapping's header (field lines start with a capital: "Rss:", "VmFlags:")
            parts = line.split(None, 5)  # start-end perms offset dev inode [path]
            ours = False
            if len(parts) >= 5 and parts[4] == str(inode).encode():
                major, _, minor = parts[3].partition(b":")
                try:
                    ours = os.makedev(int(major, 16), int(minor, 16)) == device
                except ValueError:
                    ours = False
        elif ours and line.startswith(b"Rss:"):
            total = (total or 0) + int(line.split()[1]) * 1024
    return total


def holders(path: str, pids: Iterable[int] | None = None) -> Iterator[int]:
    """Pids with `path` open (scan of /proc/*/fd): attribution without fanotify, after the fact."""
    try:
        st = os.stat(path)
    except OSError:
        return
    own = os.getpid()
    for pid in pids if pids is not None else psutil.pids():
        if pid == own:
            continue
        if fd_positions(pid, st.st_dev, st.st_ino) or maps_file(pid, st.st_dev, st.st_ino):
            yield pid


def open_holders(paths: Collection[str]) -> dict[str, list[int]]:
    """Which processes hold any of `paths` open, in one pass over psutil's open-file lists: for platforms
    without /proc/*/fd (macOS), where no open notification says which file to look for."""
    wanted = set(paths)
    found: dict[str, list[int]] = {}
    own = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == own:
            continue
        try:
            files = proc.open_files()
        except (psutil.Error, OSError):  # gone, or another user's process in user mode
            continue
        for opened in files:
            if opened.path in wanted and proc.pid not in found.get(opened.path, []):
                found.setdefault(opened.path, []).append(proc.pid)
    return found


IDENTITIES_KEPT = 4096  # process images whose identity (executable hash, script) is remembered


class ProcessCache:
    """pid -> snapshot, including processes that exited in the last `retain_seconds`."""

    def __init__(self, retain_seconds: float = 120.0, hashes: ExecutableHashes | None = None) -> None:
        self.retain_seconds = retain_seconds
        self.hashes = hashes or ExecutableHashes()
        self._procs: dict[int, ProcessSnapshot] = {}
        self._exited_at: dict[int, float] = {}
        self._exit_read: dict[int, int] = {}  # pid -> bytes read over its life (taskstats, KiB-rounded)
        self._exit_comm: dict[int, str] = {}  # pid -> its comm as it exited (taskstats): the program that ended
        self._execs: dict[int, int] = {}  # pid -> exec news heard for it (a pid that ran another program)
        self.exit_accounting = False  # set by the process sensor: taskstats exit records will tell bytes read
        self._identities: dict[tuple[int, int | None, str | None, str | None], Identity] = {}
        self._cond = threading.Condition()
        self.misses = 0

    def __len__(self) -> int:
        return len(self._procs)

    # -- fed by the process sensor

    def seed(self) -> int:
        """Snapshot every running process (at start, and after lost events); how many there were."""
        pids = psutil.pids()
        for pid in pids:
            self.on_exec(pid)
        return len(pids)

    def on_fork(self, parent: int, child: int) -> None:
        """Until it execs, a child runs its parent's program: record it as such."""
        with self._cond:
            if child in self._procs and not self._procs[child].exited:
                return
            base = self._procs.get(parent)
        snap = snapshot(child)
        if snap is None and base is not None:
            snap = dataclasses.replace(base, pid=child, ppid=parent, start_ticks=None, taken=time.monotonic())
        if snap is not None:
            self._put(snap)

    def on_exec(self, pid: int) -> None:
        with self._cond:
            self._execs[pid] = self._execs.get(pid, 0) + 1
        snap = snapshot(pid)
        if snap is None:
            return
        if snap.exited or snap.executable is None:  # a zombie, or exiting (its memory gone already)
            with self._cond:
                known = self._procs.get(pid)
            if known is not None and known.command_line is not None and known.name == snap.name:
                # Late news (the proc connector lags under load) of a process that has already ended: what
                # was seen of it alive, e.g. while we held its open of a model, is richer than a zombie's
                # remains, which have no command line and no executable.
                self.on_exit(pid)
                return
        self._put(snap)

    def remember(self, pid: int) -> ProcessSnapshot | None:
        """Snapshot a process that is known to be alive right now (e.g. blocked in an open we hold)."""
        snap = snapshot(pid)
        if snap is not None and not snap.exited:
            self._put(snap)
            return snap
        return None

    def on_comm(self, pid: int, name: str) -> None:
        with self._cond:
            old = self._procs.get(pid)
            if old is not None:
                self._procs[pid] = dataclasses.replace(old, name=name)

    def on_exit(self, pid: int) -> None:
        with self._cond:
            old = self._procs.get(pid)
            if old is not None:
                self._procs[pid] = dataclasses.replace(old, exited=True)
                self._exited_at[pid] = time.monotonic()
            self._cond.notify_all()

    def has_exited(self, pid: int) -> bool:
        """Whether news of `pid`'s exit was heard (and it has not been replaced by a new process since)."""
        with self._cond:
            cached = self._procs.get(pid)
            return cached is not None and cached.exited

    def execs(self, pid: int) -> int:
        """How many execs (and re-reads after lost news) were heard for `pid`: a change since a moment means
        the process may run another program now (`sh` that opened a file, then exec'd `gpg`)."""
        with self._cond:
            return self._execs.get(pid, 0)

    def on_exit_io(self, pid: int, read_chars: int, comm: str | None = None) -> None:
        with self._cond:
            self._exit_read[pid] = read_chars
            if comm:
                self._exit_comm[pid] = comm
            if len(self._exit_read) > 50000:  # bounded: drop the oldest half (dicts keep insertion order)
                for old in list(self._exit_read)[:25000]:
                    del self._exit_read[old]
                    self._exit_comm.pop(old, None)
            self._cond.notify_all()

    def exit_comm(self, pid: int) -> str | None:
        """The comm `pid` had as it exited (the program it ran last), if its exit was accounted."""
        with self._cond:
            return self._exit_comm.get(pid)

    def exit_read_chars(self, pid: int, *, wait: float = 0.0) -> int | None:
        """What the exited process `pid` read in its life (KiB-rounded), if its exit was accounted."""
        deadline = time.monotonic() + wait
        with self._cond:
            while pid not in self._exit_read and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            return self._exit_read.get(pid)

    def prune(self) -> None:
        cutoff = time.monotonic() - self.retain_seconds
        with self._cond:
            for pid in [p for p, t in self._exited_at.items() if t < cutoff]:
                self._exited_at.pop(pid, None)
                self._procs.pop(pid, None)
                self._exit_read.pop(pid, None)
                self._exit_comm.pop(pid, None)
                self._execs.pop(pid, None)

    def _put(self, snap: ProcessSnapshot) -> None:
        with self._cond:
            old = self._procs.get(snap.pid)
            self._procs[snap.pid] = snap
            self._exited_at.pop(snap.pid, None)
            if old is not None and old.start_ticks is not None and old.start_ticks != snap.start_ticks:
                self._exit_read.pop(snap.pid, None)  # a new process under a reused pid
                self._exit_comm.pop(snap.pid, None)
            # (the same start time: the same process, e.g. late news of its exec, after its exit was accounted)
            self._cond.notify_all()

    # -- used by sensors

    def lookup(self, pid: int, *, wait: float = 0.0) -> ProcessSnapshot | None:
        """The live process if it is there, else what the cache remembers; `wait` gives the process
        sensor a moment to deliver an exec it has not handled yet."""
        live = snapshot(pid)
        with self._cond:
            cached = self._procs.get(pid)
            # Running now: /proc is the truth (a reused pid is the new process). A zombie keeps no command
            # line: for one, keep what was remembered from its exec.
            if live is not None and not live.exited and live.executable is None and cached is not None \
                    and cached.executable is not None and cached.name == live.name:
                live = dataclasses.replace(live, exited=True)  # exiting (its memory is gone): keep what we saw
            if live is not None and not live.exited:
                self._procs[pid] = live
                self._exited_at.pop(pid, None)
                return live
            if cached is None and wait > 0:
                deadline = time.monotonic() + wait
                while cached is None and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                    cached = self._procs.get(pid)
            if cached is not None:  # /proc no longer shows it running: it has exited, whatever we heard so far
                return cached if cached.exited else dataclasses.replace(cached, exited=True)
            if live is not None:  # a zombie we never saw alive: name, uid and parent are still readable
                return live
            self.misses += 1
            return None

    def _recent(self, pid: int) -> ProcessSnapshot | None:
        """A parent: the cached snapshot when it is fresh (parents rarely change), else a lookup."""
        with self._cond:
            cached = self._procs.get(pid)
        if cached is not None and time.monotonic() - cached.taken < 30 and cached.command_line is not None:
            return cached
        return self.lookup(pid)

    def process_info(self, pid: int, *, wait: float = 0.0, taken: ProcessSnapshot | None = None) -> ProcessInfo:
        """ProcessInfo with its parent chain up to the session leader (or init); of the snapshot `taken` when
        given (what the process was at a moment that matters, e.g. its open of a model: it may have exec'd
        another program since)."""
        snap = taken if taken is not None else self.lookup(pid, wait=wait)
        if snap is None:
            return ProcessInfo(pid=pid, exited=True)
        parents: list[ProcessRef] = []
        seen = {pid}
        current = snap
        while current.ppid and current.ppid not in seen and len(parents) < MAX_PARENT_DEPTH:
            # Stop at the session leader: above it is the terminal/login machinery, not the actor.
            if current.session_id is not None and current.pid == current.session_id:
                break
            seen.add(current.ppid)
            parent = self._recent(current.ppid)
            if parent is None:
                parents.append(ProcessRef(pid=current.ppid))
                break
            parents.append(ProcessRef(pid=parent.pid, name=parent.name, executable=parent.executable,
                                      command_line=parent.command_line, user=user_name(parent.uid)))
            current = parent
        who = self.identity(snap)
        return ProcessInfo(pid=snap.pid, name=snap.name, executable=snap.executable,
                           command_line=snap.command_line, user=user_name(snap.uid), uid=snap.uid,
                           ppid=snap.ppid, session_id=snap.session_id, parents=tuple(parents),
                           exited=snap.exited or None, executable_sha256=who.executable_sha256,
                           program=who.program, program_sha256=who.program_sha256, interpreter=who.interpreter,
                           script=who.script)

    def identity(self, snap: ProcessSnapshot) -> Identity:
        """What the snapshotted process runs (agent/executables.py), read through /proc/<pid>/exe while that
        is still the snapshot's executable (not after an exec, not a reused pid). Kept per process image: a
        process opening a model a thousand times a second is identified once."""
        if snap.executable is None:
            return Identity()
        image = (snap.pid, snap.start_ticks, snap.executable, snap.command_line)
        known = self._identities.get(image) if snap.start_ticks is not None else None
        if known is not None:
            return known
        found = self._identify(snap)
        if snap.start_ticks is not None:
            if len(self._identities) >= IDENTITIES_KEPT:
                self._identities.clear()
            self._identities[image] = found
        return found

    def _identify(self, snap: ProcessSnapshot) -> Identity:
        try:
            argv = shlex.split(snap.command_line or "")
        except ValueError:
            argv = []
        pid: int | None = snap.pid
        cwd: str | None = None
        try:
            if os.readlink(f"/proc/{snap.pid}/exe") != snap.executable:
                pid = None
            else:
                cwd = os.readlink(f"/proc/{snap.pid}/cwd")
        except OSError:
            pid = None
        return identify_process(self.hashes, pid, snap.executable, argv, cwd)
