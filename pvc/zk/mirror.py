"""An in-memory copy of Zookeeper subtrees, kept current by watches.

Why not kazoo's TreeCache: it loads a tree one request at a time through kazoo's callback
thread and sets a children watch on every node. The mirror sets ONE persistent recursive
watch per root (pvc.zk.bulk), then loads the tree level by level with multiRead requests of
hundreds of reads each, asking the schema which paths are leaves (no children to list). No
per-node watch bookkeeping: 90,000 nodes load in a few seconds and cost tens of MB. It is
shared in a process: the node daemon's VM controller, fence monitor and the API it serves as
primary read the same copy.

Ordering: the watch is added before anything is read, so every change after the read began
produces an event. Every event makes the mirror read the path again (a missing node is then
dropped); requests are issued and linked to their completion under one lock, and kazoo runs
completions on one thread in the order the server answered, so results are applied in server
order and the last read of a path reflects its newest state. A lost connection drops the
watch and fails the reads in flight: on every reconnection the mirror adds its watches again
and reloads its roots in full, and `loaded` is False until it has.

Transactions: another session's transaction reaches this one as one event per key, read off
the connection one at a time. A burst of events is read again behind a barrier (pvc.zk.bulk):
the events read off the connection before its answer are those of whole transactions, and
their paths are read again and applied together (values deepest first, then new nodes listed
in their parents, then listeners told): a reader that finds a new node (by listing its
parent) finds what was written with it below it. Not a snapshot: a reader may see one
changed value before another of the same write, and a transaction committed while the read
is on its way may show in part until its own events' read (one round trip later).

Waiting: `wait(predicate, timeout)` is the one way pvc waits for the cluster to get somewhere
(a VM to settle, a job to end): the predicate, which reads only the mirror, is evaluated again
on every change, never by a sleeping poll. `sync()` returns once the mirror shows every change
committed before it was called (a guard that read a version from Zookeeper then knows the
mirror is at least that new).
"""

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import Callback, KazooState

from pvc.zk import bulk, schema

log = logging.getLogger("pvc.zk.mirror")
Listener = Callable[[str, bytes | None], None]  # (path, new data or None when removed)
SHARED_VALUE = 64  # values up to this size are kept once, however many nodes hold them


class TreeMirror:
    def __init__(self, client: KazooClient, roots: Iterable[str]):
        self.client = client
        self.roots = tuple(roots)
        # covers() is asked for every key a view reads: top-level roots answer by one lookup
        self._top_roots = frozenset(root for root in self.roots if root.count("/") == 1)
        self._deep_roots = tuple(root for root in self.roots if root not in self._top_roots)
        self._data: dict[str, bytes] = {}
        self._children: dict[str, set[str]] = {}
        self._values: dict[bytes, bytes] = {}  # one copy of each short value ("stop", ...)
        self._lock = threading.Lock()  # guards _children against readers
        # keeps completions in the order requests were sent; re-entrant: once kazoo's handler
        # stops, rawlink on a result already set calls back at once, on the same thread
        self._issue = threading.RLock()
        self._pending = 0
        self._loaded = threading.Event()
        self._complete = False  # the first load has finished
        self._started = 0.0
        self._listeners: list[Listener] = []
        self._stale = False  # the connection dropped: watches and reads were lost
        self._changed = threading.Condition()  # notified on every change and load state
        self._kazoo_threads: set[int] = set()  # kazoo's watch and completion threads, as seen
        self._events: list[str] = []  # paths watch events named, not yet read again
        self._events_lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> bool:
        """Loads the roots; True once everything is in memory (False: still loading)."""
        self._started = time.monotonic()
        self.client.add_listener(self._on_state)
        bulk.follow(self.client, self._on_event)
        self.client.handler.dispatch_callback(Callback("watch", self._note_thread, ()))
        self._pending_change(+1)
        self._load_roots()
        return self._loaded.wait(timeout)

    def close(self) -> None:
        self.client.remove_listener(self._on_state)
        bulk.unfollow(self.client, self._on_event)

    def listen(self, listener: Listener) -> None:
        """Calls `listener(path, data)` on every change (on kazoo's thread: keep it short)."""
        self._listeners.append(listener)

    @property
    def complete(self) -> bool:
        """True once the first load has finished (and ever after: a reload keeps the copy)."""
        return self._complete

    @property
    def loaded(self) -> bool:
        """True when the copy is whole and followed by watches (not loading, not reloading)."""
        return self._loaded.is_set() and not self._stale

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Waits until `predicate()` (which must read only this mirror) is true, evaluating it
        again on every change; False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def sync(self, timeout: float = 5.0) -> bool:
        """Returns True once the mirror shows every change committed in Zookeeper before it was
        called, by any session (False after `timeout` s, or while the copy is not whole).

        How, in three round trips: the server sends a session its watch events before it
        answers a later request, so once a first request (a sync: a follower answers it once
        it has applied what the leader committed before) is answered every event due has been
        read off the connection, and each burst of them has put a reread on kazoo's watch
        thread. A marker put on that thread behind them follows each reread's two requests
        (a barrier, then the read sent from the barrier's completion) with two of its own;
        completions run in order, so its last completes after those reads did. One round trip
        would miss events still in flight: another session's write that this one had not
        heard of yet. On one of kazoo's own threads (a watch callback, a listener) it cannot
        wait for that thread: it returns at once."""
        if threading.get_ident() in self._kazoo_threads:
            return self.loaded
        done = threading.Event()

        def mark() -> None:
            with self._issue:
                self.client.exists_async(self.roots[0]).rawlink(second)

        def second(_: Any) -> None:
            with self._issue:
                self.client.exists_async(self.roots[0]).rawlink(lambda _: done.set())

        def behind_events(_: Any) -> None:
            self.client.handler.dispatch_callback(Callback("watch", mark, ()))

        self.client.sync_async(self.roots[0]).rawlink(behind_events)
        return done.wait(timeout) and self.loaded

    def covers(self, path: str) -> bool:
        end = path.find("/", 1)
        if (path if end < 0 else path[:end]) in self._top_roots:
            return True
        return any(path == root or path.startswith(root + "/") for root in self._deep_roots)

    # --- reads ------------------------------------------------------------------------------

    def get(self, path: str) -> bytes | None:
        return self._data.get(path)

    def children(self, path: str) -> list[str]:
        with self._lock:
            return sorted(self._children.get(path, ()))

    # --- loading ----------------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._stale = True
            self._loaded.clear()
            self._wake()
        elif state == KazooState.CONNECTED and self._stale:
            self._loaded.clear()
            self._pending_change(+1)  # held until every root is asked again
            self._stale = False
            with self._events_lock:  # the reload reads them; a reread of the lost connection
                self._events = []  # may never end, and the next event must start a new one
            log.info("reconnected to Zookeeper: reloading %s", ", ".join(self.roots))
            self.client.handler.spawn(self._load_roots)

    def _load_roots(self) -> None:
        """Watches every root and reads it all again; releases the pending count its caller
        took, so the count cannot touch zero before every root is asked."""
        for root in self.roots:
            self._pending_change(+1)
            with self._issue:
                bulk.add_recursive_watch(self.client, root).rawlink(
                    lambda result, root=root: self._on_watch_added(root, result)
                )
        self._fetch(self.roots)
        self._pending_change(-1)

    def _on_watch_added(self, root: str, result: Any) -> None:
        try:
            result.get()
        except Exception as exc:  # a lost connection (the reload on reconnecting repairs)
            log.warning("cannot watch %s: %s", root, exc)
        finally:
            self._pending_change(-1)

    def _pending_change(self, delta: int) -> None:
        with self._lock:
            self._pending += delta
            loaded = self._pending == 0 and not self._loaded.is_set()
            if loaded:
                self._loaded.set()
                if not self._complete:
                    log.info("%s in memory: %d nodes in %.2f s", ", ".join(self.roots),
                             len(self._data), time.monotonic() - self._started)  # fmt: skip
                self._complete = True
        if loaded:
            self._wake()

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _fetch(self, paths: Iterable[str], full: bool = True) -> None:
        """Reads paths' data and, when `full`, their children (unless the schema says a path
        is a leaf) and so on down, in multiRead batches: a load applies each batch as it is
        answered, a reread (not `full`) all its batches as one change."""
        operations = []
        for path in paths:
            operations.append((bulk.DATA, path))
            if full and not schema.is_leaf(path):
                operations.append((bulk.CHILDREN, path))
        if not full:
            self._send(operations)
            return
        for first in range(0, len(operations), bulk.BATCH):
            self._send(operations[first : first + bulk.BATCH])

    def _send(self, operations: list[tuple[int, str]]) -> None:
        if not operations:
            return
        self._pending_change(+1)
        with self._issue:
            results = [
                bulk.multi_read(self.client, operations[first : first + bulk.BATCH])
                for first in range(0, len(operations), bulk.BATCH)
            ]
            results[-1].rawlink(lambda _: self._on_batch(operations, results))

    def _on_event(self, kind: int, path: str) -> None:
        """A watch event (on kazoo's connection thread): the path is read again, from the
        watch thread, so that sync() can put a marker behind the reads events issued. The
        first event of a burst starts a reread; the rest join it (see _reread)."""
        if not self.covers(path):
            return
        with self._events_lock:
            first = not self._events
            self._events.append(path)
        if first:
            self.client.handler.dispatch_callback(Callback("watch", self._reread, ()))

    def _note_thread(self) -> None:
        self._kazoo_threads.add(threading.get_ident())

    def _reread(self) -> None:
        """Reads again the paths of the events read off the connection before a barrier's
        answer: whole transactions, the rest of the one whose first event woke this too."""
        self._note_thread()
        paths: list[str] = []
        taken = threading.Event()

        def take() -> None:  # on the connection thread, as the barrier's answer is read
            with self._events_lock:
                paths.extend(self._events)
                self._events = []
            taken.set()

        def read(_: Any) -> None:
            if not taken.is_set():  # lost connection: the reload repairs; follow events again
                take()
            self._fetch(dict.fromkeys(paths), full=False)

        with self._issue:
            bulk.barrier(self.client, take).rawlink(read)

    def _on_batch(self, operations: list[tuple[int, str]], results: list[Any]) -> None:
        """Applies the answers once the last request is answered (the others were before)."""
        self._note_thread()
        try:
            answers = [answer for result in results for answer in result.get(block=False)]
        except Exception as exc:  # a lost connection (the reload on reconnecting repairs)
            log.debug("read of %s... failed: %s", operations[0][1], exc)
        else:
            below = self._apply(list(zip(operations, answers, strict=True)))
            if below:
                self._fetch(below)
        finally:
            self._pending_change(-1)

    def _apply(self, answered: list[tuple[tuple[int, str], Any]]) -> list[str]:
        """Applies one answer as one change: values deepest first, then each new node listed
        in its parent deepest first, so a reader that sees a node sees what was read with it
        below it; listeners are told afterwards (removals, then changes shallowest first).
        Returns the paths found by listing children, to be read in full."""
        below: list[str] = []
        removed: list[str] = []
        changed: list[tuple[str, bytes]] = []
        new: list[str] = []
        for (kind, path), answer in sorted(answered, key=lambda item: -item[0][1].count("/")):
            if isinstance(answer, NoNodeError):
                removed.extend(self._drop(path))
            elif isinstance(answer, Exception):
                log.debug("read of %s failed: %s", path, answer)
            elif kind == bulk.CHILDREN:
                below.extend(self._set_children(path, answer, removed))
            elif (stored := self._store(path, answer)) is not None:
                changed.append((path, stored[0]))
                if stored[1] and path not in self.roots:
                    new.append(path)
        if new:
            with self._lock:
                for path in new:
                    parent, name = path.rsplit("/", 1)
                    self._children.setdefault(parent, set()).add(sys.intern(name))
        for gone in removed:
            self._notify(gone, None)
        for path, data in reversed(changed):
            self._notify(path, data)
        return below

    def _store(self, path: str, data: bytes) -> tuple[bytes, bool] | None:
        """Keeps a path's value; if it changed, returns it and whether the node is new."""
        if len(data) <= SHARED_VALUE:
            data = self._values.setdefault(data, data)
        old = self._data.get(path)
        if old == data:
            return None
        self._data[path] = data  # one writer (this thread); readers need no lock
        return data, old is None

    def _set_children(self, path: str, names: list[str], removed: list[str]) -> list[str]:
        """Records a path's children (what is gone: into `removed`); returns every child's
        path, to be read in full."""
        found = {sys.intern(name) for name in names}
        with self._lock:
            known = self._children.setdefault(path, set())
            gone = known - found
            known |= found
        for name in gone:
            removed.extend(self._drop(f"{path}/{name}"))
        return [f"{path}/{name}" for name in found]

    def _drop(self, path: str) -> list[str]:
        """Forgets a removed path and everything under it; the paths that held values (for
        the caller to tell listeners of)."""
        removed = []
        with self._lock:
            stack = [path]
            while stack:
                current = stack.pop()
                stack.extend(f"{current}/{name}" for name in self._children.pop(current, ()))
                if self._data.pop(current, None) is not None:
                    removed.append(current)
            parent, name = path.rsplit("/", 1)
            self._children.get(parent, set()).discard(name)
        return removed

    def _notify(self, path: str, data: bytes | None) -> None:
        for listener in self._listeners:
            try:
                listener(path, data)
            except Exception:  # a listener's bug must not stop the mirror
                log.exception("mirror listener failed on %s", path)
        self._wake()
