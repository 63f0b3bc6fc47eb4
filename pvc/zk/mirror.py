"""An in-memory copy of Zookeeper subtrees, kept current by watches.

Why not kazoo's TreeCache: it loads a tree one request at a time through kazoo's callback
thread (about 0.7 ms a node: 10 s for 1,000 VMs, a minute for 5,000) and sets a children watch
on every leaf. The mirror pipelines its loads (thousands of requests in flight), asks the schema
which paths are leaves, and is shared in a process: the node daemon's VM controller and the API
it serves as primary read the same copy.

Ordering: every request is issued and linked to its completion under one lock, and kazoo runs
completions on one thread in the order the server answered, so they are applied in server
order; a one-shot watch that fires makes the mirror read the path again (which re-arms it), so
the last read of a path always reflects its newest state. A lost connection drops every watch
(kazoo 2.11 neither keeps nor re-registers them, even when the session survives) and fails the
reads in flight: on every reconnection the mirror reloads its roots in full, and `loaded` is
False until it has.

Waiting: `wait(predicate, timeout)` is the one way pvc waits for the cluster to get somewhere
(a VM to settle, a job to end): the predicate, which reads only the mirror, is evaluated again
on every change, never by a sleeping poll. `sync()` returns once the mirror shows every change
this session had heard of when it was called (a guard that read a version from Zookeeper then
knows the mirror is at least that new).
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import Callback, EventType, KazooState, WatchedEvent

from pvc.zk import schema

log = logging.getLogger("pvc.zk.mirror")
Listener = Callable[[str, bytes | None], None]  # (path, new data or None when removed)


class TreeMirror:
    def __init__(self, client: KazooClient, roots: Iterable[str]):
        self.client = client
        self.roots = tuple(roots)
        self._data: dict[str, bytes] = {}
        self._children: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # guards _data/_children against readers
        self._issue = threading.Lock()  # keeps completions in the order requests were sent
        self._pending = 0
        self._loaded = threading.Event()
        self._listeners: list[Listener] = []
        self._complete = False  # the first load has finished
        self._started = 0.0
        self._stale = False  # the connection dropped: watches and reads were lost
        self._changed = threading.Condition()  # notified on every change and load state

    # --- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> bool:
        """Loads the roots; True once everything is in memory (False: still loading)."""
        self._started = time.monotonic()
        self.client.add_listener(self._on_state)
        self._pending_change(+1)
        self._load_roots()
        return self._loaded.wait(timeout)

    def close(self) -> None:
        self.client.remove_listener(self._on_state)

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
        """Returns True once the mirror shows every change this session had been told of when
        it was called (False after `timeout` s, or while the copy is not whole).

        How: watch events reach kazoo's callback thread in the order they arrived; a marker put
        behind them runs once they have issued their reads; a request the marker issues
        completes (completions are in order) after those reads did. Three rounds cover the
        reads that completions issue in turn (a new VM: its children, then its keys)."""
        deadline = time.monotonic() + timeout
        for _ in range(3):
            done = threading.Event()

            def issue(done: threading.Event = done) -> None:
                with self._issue:
                    self.client.exists_async(self.roots[0]).rawlink(lambda _: done.set())

            self.client.handler.dispatch_callback(Callback("watch", issue, ()))
            if not done.wait(max(0.0, deadline - time.monotonic())):
                return False
        return self.loaded

    def covers(self, path: str) -> bool:
        return any(path == root or path.startswith(root + "/") for root in self.roots)

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
            log.info("reconnected to Zookeeper: reloading %s", ", ".join(self.roots))
            self.client.handler.spawn(self._load_roots)

    def _load_roots(self) -> None:
        """Asks for every root again; releases the pending count its caller took, so the count
        cannot touch zero before every root is asked."""
        for root in self.roots:
            self._load(root, full=True)
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

    def _send(self, request: Callable, path: str, done: Callable) -> None:
        """Issues a read that sets a watch on `path`; `done` gets its result, in server order."""
        self._pending_change(+1)
        with self._issue:
            request(path, watch=self._on_watch).rawlink(done)

    def _read_data(self, path: str) -> None:
        self._send(self.client.get_async, path, lambda r: self._on_data(path, r))

    def _read_children(self, path: str, full: bool) -> None:
        self._send(self.client.get_children_async, path, lambda r: self._on_children(path, r, full))

    def _load(self, path: str, full: bool = False) -> None:
        """Reads a path's data and (unless the schema says it is a leaf) its children; `full`
        also re-reads every child found, at any depth."""
        self._read_data(path)
        if not schema.is_leaf(path):
            self._read_children(path, full)

    def _on_watch(self, event: WatchedEvent) -> None:
        if event.type == EventType.NONE:
            return  # the connection dropped and kazoo dropped every watch: the reload repairs
        if event.type == EventType.CHILD:
            self._read_children(event.path, False)
        elif event.type in (EventType.CREATED, EventType.DELETED):
            # a root that was missing, or a node removed (and its children watch with it): read
            # all of it again; it may be back already, or reads as missing
            self._load(event.path, full=True)
        else:  # CHANGED: read it again
            self._read_data(event.path)

    def _on_data(self, path: str, result) -> None:
        try:
            data = result.get()[0]
        except NoNodeError:
            self._drop(path)
        except Exception as exc:  # a lost connection (the reload on reconnecting repairs)
            log.debug("read of %s failed: %s", path, exc)
        else:
            if self._data.get(path) != data:
                self._data[path] = data  # one writer (this thread); readers need no lock
                self._notify(path, data)
        finally:
            self._pending_change(-1)

    def _on_children(self, path: str, result, full: bool) -> None:
        try:
            names = set(result.get())
        except NoNodeError:
            self._drop(path)
        except Exception as exc:
            log.debug("children of %s failed: %s", path, exc)
        else:
            with self._lock:
                known = self._children.setdefault(path, set())
                gone, new = known - names, names - known
                known.update(new)
            for name in gone:
                self._drop(f"{path}/{name}")
            for name in names if full else new:
                self._load(f"{path}/{name}", full)
        finally:
            self._pending_change(-1)

    def _drop(self, path: str) -> None:
        """Forgets a removed path and everything under it; a removed root is watched until
        it comes back."""
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
        for gone in removed:
            self._notify(gone, None)
        if path in self.roots:
            self._send(self.client.exists_async, path, lambda r: self._on_root_exists(path, r))

    def _on_root_exists(self, root: str, result) -> None:
        try:
            stat = result.get()
        except Exception as exc:
            log.debug("exists of %s failed: %s", root, exc)
        else:
            if stat is not None:  # it came back between the read and the watch
                self._load(root, full=True)
        finally:
            self._pending_change(-1)

    def _notify(self, path: str, data: bytes | None) -> None:
        for listener in self._listeners:
            try:
                listener(path, data)
            except Exception:  # a listener's bug must not stop the mirror
                log.exception("mirror listener failed on %s", path)
        self._wake()
