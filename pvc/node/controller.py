"""One shape for everything a daemon reconciles: a named controller over a queue of keys.

A controller owns a kind of object (this node's VMs, the cluster's nodes for the fence
monitor, jobs, and later networks, OSDs, DHCP per network). What it must look at arrives as
keys (a VM's UUID, a node's name, a job id):
- from changes (a mirror listener, a libvirt event, a watch) through `enqueue(key)`;
- from a periodic resync: at start and every `resync_interval` seconds `resync()` names every
  key that may need a look, so a missed event costs at most one interval.
`workers` threads take due keys one at a time; a key is never held by two workers at once (a
key enqueued while its step runs is run once more right after it). A step takes ONE
idempotent step toward the desired state and returns; to be called again later (a guest
still shutting down, a job waiting for a VM) it returns the delay in seconds, instead of
sleeping on its worker. A step that raises is logged and tried again with a backoff (1 s
doubling to 30 s, per key); a clean step resets it.

A controller is node-wide (started with the daemon) or primary-only: it then has the
`PrimaryService` shape (name, start, stop, running) and the primary's registry
(pvc.node.primary_services) starts it on takeover and stops it on relinquish, in order.
A stopped controller can be started again; what was queued is dropped at stop (the resync
after a start finds it again). A step still running when `stop` gave up waiting finishes on
its old worker, which then ends: workers of one start never take keys after a later start.
"""

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("pvc.node.controller")

Step = Callable[[str], float | None]
RETRY_FIRST = 1.0
RETRY_MAX = 30.0


class Controller:
    def __init__(
        self,
        name: str,
        step: Step,
        *,
        workers: int = 1,
        resync: Callable[[], Iterable[str]] | None = None,
        resync_interval: float | None = None,
    ):
        self.name = name
        self._step = step
        self._workers = workers
        self._resync = resync
        self._resync_interval = resync_interval
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # queued key -> when it is due (the heap may hold
        # older entries for it: they are skipped)
        self._busy: set[str] = set()
        self._again: dict[str, float] = {}  # busy key -> when to run it once more
        self._failures: dict[str, int] = {}
        self._seq = itertools.count()
        self._stopping = threading.Event()  # this start's: each start makes a new one
        self._threads: list[threading.Thread] = []

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the workers and the resync (a no-op if running)."""
        if self.running():
            return
        stopping = self._stopping = threading.Event()
        names = [f"{self.name}-{index}" for index in range(self._workers)]
        self._threads = [
            threading.Thread(target=self._work, args=(stopping,), name=n, daemon=True)
            for n in names
        ]
        if self._resync is not None and self._resync_interval:
            self._threads.append(
                threading.Thread(
                    target=self._resync_loop,
                    args=(stopping,),
                    name=f"{self.name}-resync",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops taking keys and waits up to `timeout` s for steps in progress to return."""
        self._stopping.set()
        with self._cond:
            self._heap.clear()
            self._due.clear()
            self._again.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def running(self) -> bool:
        return bool(self._threads) and not self._stopping.is_set()

    @property
    def stopping(self) -> threading.Event:
        """Set while the controller stops: a step that must wait for something checks it."""
        return self._stopping

    # --- feeding ------------------------------------------------------------------------------

    def enqueue(self, key: str, delay: float = 0.0) -> None:
        """Asks for a step on `key` in `delay` seconds (sooner if already asked for sooner)."""
        due = time.monotonic() + delay
        with self._cond:
            if self._stopping.is_set():
                return
            if key in self._busy:
                self._again[key] = min(self._again.get(key, due), due)
                return
            self._push(key, due)

    def enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.enqueue(key)

    def pending(self) -> int:
        """Keys queued or in a step (for tests and figures)."""
        with self._cond:
            return len(self._due) + len(self._busy)

    def _push(self, key: str, due: float) -> None:
        """Queues `key` (the condition held)."""
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        self._cond.notify()

    # --- workers ------------------------------------------------------------------------------

    def _take(self, stopping: threading.Event) -> str | None:
        """The next due key that no worker holds, waiting for one; None when `stopping`."""
        with self._cond:
            while not stopping.is_set():
                while self._heap:
                    due, _, key = self._heap[0]
                    if self._due.get(key) != due:
                        heapq.heappop(self._heap)  # superseded by a sooner or later request
                        continue
                    break
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._busy.add(key)
                    return key
                self._cond.wait(None if not self._heap else self._heap[0][0] - now)
            return None

    def _work(self, stopping: threading.Event) -> None:
        while True:
            key = self._take(stopping)
            if key is None:
                return
            again: float | None
            try:
                again = self._step(key)
                self._failures.pop(key, None)
            except Exception:
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                again = min(RETRY_MAX, RETRY_FIRST * 2 ** (failures - 1))
                log.exception("%s: step on %s failed; again in %g s", self.name, key, again)
            with self._cond:
                self._busy.discard(key)
                due = self._again.pop(key, None)
                if again is not None:
                    later = time.monotonic() + again
                    due = later if due is None else min(due, later)
                if due is not None and not self._stopping.is_set():
                    self._push(key, due)

    def _resync_loop(self, stopping: threading.Event) -> None:
        assert self._resync is not None and self._resync_interval
        while not stopping.is_set():
            try:
                self.enqueue_all(list(self._resync()))
            except Exception:
                log.exception("%s: resync failed; trying again next interval", self.name)
            stopping.wait(self._resync_interval)
