"""Recursive inotify watches over the file sensor's roots, read on one thread (Linux).

One inotify instance for every root; one watch per directory, none followed through a symbolic link. The
mask asks only for content news (writes, closes after writing, creations, deletions, moves): opens and
no-write closes are never queued to us, so a `pip install` storm cannot overflow the queue.

The directories are kept as a tree of watch descriptors (a node's path is its parent's path plus its
name), so a renamed directory is one re-parented node however much lies below it. The kernel's events
become (kind, path, dest_path, is_directory), in the kernel's order:

- a new directory (created, or moved in from outside) is watched with everything below it before it is
  reported: files already inside are the receiver's to find from that one "created" observation;
- IN_MOVED_FROM and IN_MOVED_TO with the same cookie make one "moved" (the kernel queues them together;
  when the IN_MOVED_FROM ends a read, the reader waits PAIR_WAIT_SECONDS for its partner). A move out
  of the watched tree is "deleted" (and its watches are removed), a move in is "created";
- IN_Q_OVERFLOW: events were lost, the watches may miss directories made meanwhile: every root is
  walked again (watches added, stale ones removed), then one "overflow" is reported;
- IN_IGNORED: the kernel dropped a watch (its directory is gone, or its filesystem was unmounted):
  forgotten.

Roots are added and removed while running (`add_root`, `remove_root`: a mount that appeared or went) by
the reading thread itself, between reads, so the tree has one writer and the caller never waits for a
walk. A root added below another one is watched on its own: a filesystem mounted there later is not seen
through the outer root's watches (they are on the directory it covers).

Paths are str: names are decoded with os.fsdecode (undecodable bytes kept by surrogateescape).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from weightwarden.agent.sensors import inotify
from weightwarden.agent.sensors.base import SensorThread
from weightwarden.agent.sensors.inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    RawEvent,
)

log = logging.getLogger(__name__)

MASK = (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF
        | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
# A configured root is followed when it is itself a symbolic link (the user named it); nothing below is.
ROOT_MASK = MASK & ~IN_DONT_FOLLOW
PAIR_WAIT_SECONDS = 0.05
READ_BYTES = 256 * 1024

Emit = Callable[[str, str, str | None, bool], None]  # kind, path, dest_path, is_directory
Unwatched = Callable[[str, str, bool], None]  # root, why, partly (some directories) or wholly
Watched = Callable[[str, bool], None]  # a root added while running: watched natively (or reported unwatched)


@dataclass(eq=False, slots=True)
class _Dir:
    wd: int
    name: str  # entry name in its parent; a root's is the root's path
    parent: _Dir | None
    children: dict[str, _Dir] = field(default_factory=dict)

    def path(self) -> str:
        names = []
        node = self
        while node.parent is not None:
            names.append(node.name)
            node = node.parent
        names.append(node.name)
        return os.path.join(*reversed(names))

    def root(self) -> _Dir:
        node = self
        while node.parent is not None:
            node = node.parent
        return node


class _WatchLimit(Exception):
    """The per-user watch limit was reached while watching below a root (already reported)."""


class InotifyTree:
    """The watched roots' directory trees on one inotify instance, and the thread that reads it."""

    def __init__(self, emit: Emit, on_unwatched: Unwatched, on_watched: Watched | None = None) -> None:
        self._emit = emit
        self._on_unwatched = on_unwatched
        self._on_watched = on_watched
        self._changes: list[tuple[bool, str]] = []  # (add?, root) for the reading thread
        self._changes_lock = threading.Lock()
        self._fd = -1
        self._roots: list[str] = []  # natively watched, walked again after an overflow
        self._dirs: dict[int, _Dir] = {}
        self._thread = SensorThread("ww-inotify", self._run)
        self._bytes_read = 0
        self._events_read = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self, roots: list[str]) -> list[str]:
        """Watch `roots` and start reading; the roots watched natively (each other one was reported).

        OSError when no inotify instance can be had (EMFILE: the per-user instance limit)."""
        self._fd = inotify.init()
        self._roots, self._dirs = [], {}
        self._thread.stopping.clear()  # the walk below checks it (set by an earlier stop())
        roots = list(dict.fromkeys(roots))
        nested = [root for root in roots if any(_under(root, outer) for outer in roots if outer != root)]
        for root in [r for r in roots if r not in nested] + sorted(nested, key=len):
            if any(_under(root, outer) for outer in self._roots):
                self._roots.append(root)  # inside a root already watched: its directories are watched
                continue
            if self._watch_root(root):
                self._roots.append(root)
        self._thread.start()
        return [root for root in roots if root in self._roots]

    def stop(self) -> None:
        """Stop reading at once; the reading thread closes the instance on its way out."""
        self._thread.stop()

    def add_root(self, root: str) -> None:
        """Watch one more root (walked on the reading thread; `on_watched` tells when it is done)."""
        with self._changes_lock:
            self._changes.append((True, root))
        self._thread.waker.wake()

    def remove_root(self, root: str) -> None:
        """Stop watching a root added before (its watches are removed on the reading thread)."""
        with self._changes_lock:
            self._changes.append((False, root))
        self._thread.waker.wake()

    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    def pause(self) -> None:
        """Leave events in the kernel's queue until resume() (tests: make a real queue overflow)."""
        self._thread.pause()

    def resume(self) -> None:
        self._thread.resume()

    @property
    def watches(self) -> int:
        return len(self._dirs)

    def queued(self) -> int:
        """Events waiting in the kernel's queue: its bytes over the mean size of the events read so far."""
        fd = self._fd
        if fd < 0:
            return 0
        mean = self._bytes_read / self._events_read if self._events_read else 32.0
        return round(inotify.queued_bytes(fd) / mean)

    # ------------------------------------------------------------------ watches

    def _watch_root(self, root: str, *, own: bool = False) -> bool:
        try:
            wd = inotify.add_watch(self._fd, root, ROOT_MASK)
        except OSError as error:
            self._on_unwatched(root, _why(error), False)
            return False
        if own and wd in self._dirs:  # the same directory is watched already (inside another root)
            return True
        node = _Dir(wd, root, None)
        self._dirs[wd] = node
        with contextlib.suppress(_WatchLimit):  # reported; the root is polled as well
            self._watch_below(node, root)
        return True

    def _watch_new(self, parent: _Dir, name: str, path: str) -> None:
        """A directory that appeared: watch it and everything below it."""
        with contextlib.suppress(_WatchLimit):  # reported; the root is polled as well
            child = self._add(parent, name, path)
            if child is not None:
                self._watch_below(child, path)

    def _watch_below(self, top: _Dir, top_path: str) -> None:
        stack = [(top, top_path)]
        while stack and not self._thread.stopping.is_set():
            node, path = stack.pop()
            try:
                with os.scandir(path) as entries:
                    subdirs = [(entry.name, entry.path) for entry in entries if _is_directory(entry)]
            except OSError:  # gone or unreadable meanwhile
                continue
            for name, sub in subdirs:
                child = self._add(node, name, sub)
                if child is not None:
                    stack.append((child, sub))

    def _add(self, parent: _Dir, name: str, path: str) -> _Dir | None:
        try:
            wd = inotify.add_watch(self._fd, path, MASK)
        except OSError as error:
            if error.errno == errno.ENOSPC:
                self._on_unwatched(parent.root().name, f"{_why(error)}; some directories may not be watched",
                                   True)
                raise _WatchLimit from error
            return None  # gone, no longer a directory, or unreadable: nothing we could report anyway
        if wd in self._dirs:  # the same directory by another path (a bind mount): watched already
            return None
        child = _Dir(wd, name, parent)
        parent.children[name] = child
        self._dirs[wd] = child
        return child

    def _unwatch(self, node: _Dir | None) -> None:
        """Remove the watches of a directory that left the tree, and of everything below it."""
        stack = [node] if node is not None else []
        while stack:
            current = stack.pop()
            stack.extend(current.children.values())
            if self._dirs.get(current.wd) is current:
                del self._dirs[current.wd]
                try:
                    inotify.rm_watch(self._fd, current.wd)
                except OSError as error:
                    log.debug("inotify_rm_watch: %s", error)

    def _forget(self, node: _Dir) -> None:
        """IN_IGNORED: the kernel dropped this watch (its directory was deleted, or its file system left)."""
        if self._dirs.get(node.wd) is node:
            del self._dirs[node.wd]
        if node.parent is not None and node.parent.children.get(node.name) is node:
            del node.parent.children[node.name]

    def _move_directory(self, parent: _Dir, name: str, dest_parent: _Dir, dest_name: str, dest: str) -> None:
        child = parent.children.pop(name, None)
        replaced = dest_parent.children.pop(dest_name, None)
        if replaced is not None and replaced is not child:  # renamed over an empty directory
            self._unwatch(replaced)
        if child is None:  # its watch was never added: watch it now
            self._watch_new(dest_parent, dest_name, dest)
            return
        child.parent, child.name = dest_parent, dest_name
        dest_parent.children[dest_name] = child

    def _apply_changes(self) -> None:
        with self._changes_lock:
            changes, self._changes = self._changes, []
        for add, root in changes:
            if add:
                if root in self._roots:
                    native = True
                else:
                    native = self._watch_root(root, own=True)
                    if native:
                        self._roots.append(root)
                if self._on_watched is not None:
                    self._on_watched(root, native)
            elif root in self._roots:
                self._roots.remove(root)
                for node in [n for n in self._dirs.values() if n.parent is None and n.name == root]:
                    self._unwatch(node)

    def _reconcile(self) -> None:
        """After an overflow: walk every root again; watches of directories no longer there are removed."""
        old = self._dirs
        self._dirs = {}
        for root in list(self._roots):
            if any(_under(root, outer) for outer in self._roots if outer != root):
                continue
            if not self._watch_root(root):
                self._roots.remove(root)
        for wd in old.keys() - self._dirs.keys():
            try:
                inotify.rm_watch(self._fd, wd)
            except OSError as error:
                log.debug("inotify_rm_watch: %s", error)

    # ------------------------------------------------------------------ reading

    def _run(self) -> None:
        thread, fd = self._thread, self._fd
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(thread.waker.fileno(), select.POLLIN)
        try:
            while not thread.stopping.is_set():
                if not thread.wait_resumed(0.2):
                    continue
                try:
                    ready = [fd for fd, _ in poller.poll()]
                except InterruptedError:
                    continue
                if thread.waker.fileno() in ready:
                    thread.waker.drain()
                if thread.paused or thread.stopping.is_set():
                    continue  # paused while we waited: leave the events queued
                if self._changes:  # before reading: events read after a removal are not reported
                    self._apply_changes()
                if fd in ready:
                    self._handle_all(self._read())
        finally:  # closed here, not by stop(): a thread still busy must never use a reused descriptor
            if self._fd == fd:
                self._fd = -1
                self._dirs = {}
            os.close(fd)

    def _read(self, wait: float | None = None) -> list[RawEvent]:
        """What the queue holds now; with `wait`, first wait up to that many seconds for something."""
        if wait is not None:
            poller = select.poll()
            poller.register(self._fd, select.POLLIN)
            poller.register(self._thread.waker.fileno(), select.POLLIN)
            try:
                ready = [fd for fd, _ in poller.poll(wait * 1000)]
            except InterruptedError:
                ready = []
            if self._fd not in ready:
                return []
        try:
            data = os.read(self._fd, READ_BYTES)
        except BlockingIOError:
            return []
        except OSError as error:
            log.warning("inotify read failed: %s", error)
            return []
        events = list(inotify.parse(data))
        self._bytes_read += len(data)
        self._events_read += len(events)
        return events

    def _handle_all(self, events: list[RawEvent]) -> None:
        paired: set[int] = set()  # indexes of IN_MOVED_TO events already reported with their IN_MOVED_FROM
        index = 0
        while index < len(events):
            event = events[index]
            if index in paired:
                index += 1
                continue
            partner = None
            if event.mask & IN_MOVED_FROM:
                at = self._partner(events, index)
                # a pair only when both directories are ours; otherwise each half is handled on its own
                if at is not None and event.wd in self._dirs and events[at].wd in self._dirs:
                    paired.add(at)
                    partner = events[at]
            try:
                self._handle(event, partner)
            except Exception:  # one odd event must not end the reading thread
                log.exception("inotify event %r failed", event)
            index += 1

    def _partner(self, events: list[RawEvent], index: int) -> int | None:
        cookie = events[index].cookie
        waited = False
        start = index + 1
        while True:
            for at in range(start, len(events)):
                if events[at].mask & IN_MOVED_TO and events[at].cookie == cookie:
                    return at
            if waited or start < len(events) or self._thread.stopping.is_set():
                return None  # other events came after it (its partner was not queued with it): moved out
            waited = True  # it ended the read: its partner may be on its way
            start = len(events)
            events.extend(self._read(PAIR_WAIT_SECONDS))

    def _handle(self, event: RawEvent, partner: RawEvent | None) -> None:
        wd, mask, _cookie, raw_name = event
        if mask & IN_Q_OVERFLOW:
            self._reconcile()
            self._emit("overflow", "", None, False)
            return
        node = self._dirs.get(wd)
        if node is None:
            return  # a watch already dropped: moved out, deleted, or replaced after an overflow
        if mask & IN_IGNORED:
            self._forget(node)
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            if node.parent is None:  # a root deleted or renamed: nothing is left to watch at its path
                self._unwatch(node)
                self._emit("deleted", node.name, None, True)
            return  # any other directory's news comes from its parent's events
        name = os.fsdecode(raw_name)
        path = os.path.join(node.path(), name)
        is_directory = bool(mask & IN_ISDIR)
        if mask & IN_MOVED_FROM:
            dest_parent = self._dirs.get(partner.wd) if partner is not None else None
            if partner is None or dest_parent is None:  # moved out of the watched tree
                if is_directory:
                    self._unwatch(node.children.pop(name, None))
                self._emit("deleted", path, None, is_directory)
                return
            dest_name = os.fsdecode(partner.name)
            dest = os.path.join(dest_parent.path(), dest_name)
            if is_directory:
                self._move_directory(node, name, dest_parent, dest_name, dest)
            self._emit("moved", path, dest, is_directory)
        elif mask & (IN_CREATE | IN_MOVED_TO):
            if is_directory:
                self._watch_new(node, name, path)
            self._emit("created", path, None, is_directory)
        elif mask & IN_DELETE:
            if is_directory:
                gone = node.children.pop(name, None)
                if gone is not None and self._dirs.get(gone.wd) is gone:
                    self._unwatch(gone)
            self._emit("deleted", path, None, is_directory)
        elif mask & IN_CLOSE_WRITE:
            self._emit("closed", path, None, False)
        elif mask & IN_MODIFY:
            self._emit("modified", path, None, False)


def _is_directory(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _why(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EMFILE):
        return error.strerror or str(error)  # inotify.limit_reached's words, with the sysctl
    return f"native watching failed ({error.strerror or error})"
