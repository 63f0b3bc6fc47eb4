"""An independent observer of the primary coordinator role in a LocalCluster.

It has its own Zookeeper session and watches every node's router state and the named primary,
and a polling thread reads them again and checks which namespaces hold the floating address.
It records every violation of "at most one": two nodes primary or in takeover at one instant,
or two namespaces holding the floating address at one instant.

Router states: no false positives from reading keys at different moments. Reading the keys one
after another, even pipelined in one round trip, is not a snapshot: other sessions' writes land
between the reads, so a stale "primary" of node A can sit beside a fresh "takeover" of node B
that was only written after A left. So the observer does not compare values read at different
moments at all; it reconstructs the states at every Zookeeper instant (zxid) instead:
- every observation (a watch firing, a poll) gives a key's value with its version and the zxid
  that wrote it (mzxid). Per node this gives the history of its router state, and a missing
  version (two writes between two reads) is counted and never guessed.
- each poll reads all keys twice, pipelined; when no version moved between the two passes, the
  keys held these values together at one moment after the largest mzxid read, so the state of
  every instant up to that mzxid (the horizon) is known from the histories.
- every zxid up to the horizon at which a router state changed is checked: more than one node
  in primary or takeover there is a violation. An instant where a node's value is unknown (a
  missing version) is counted as undetermined, not as a violation.
So short overlaps between two polls are still caught, at the exact instant they happened.

Floating address: each poll checks every namespace twice in a row (one open netlink socket per
namespace, well under a millisecond per pass) and counts a namespace as a holder only if both
checks saw the address, so a move between namespaces during one pass is not taken for two
holders: two namespaces seen in both passes held it at one moment, since the daemons never drop
and re-add the address within a millisecond.
"""

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from pvc.errors import Unavailable
from pvc.zk.handler import resolve
from pvc.zk.schema import decode
from tests.local_cluster import LocalCluster

BUSY = ("primary", "takeover")
POLL_INTERVAL = 0.025


@dataclass
class Violation:
    kind: str  # "router" or "floating"
    first_seen: float  # time.monotonic()
    last_seen: float
    culprits: tuple[str, ...]
    detail: str

    def describe(self, origin: float = 0.0) -> str:
        span = self.last_seen - self.first_seen
        return (
            f"{self.kind}: {', '.join(self.culprits)} at once from "
            f"t={self.first_seen - origin:.3f} for {span:.3f} s ({self.detail})"
        )


@dataclass(frozen=True)
class Snapshot:
    """The router states and the named primary at one moment, and the floating address holders
    seen right after."""

    taken: float
    router: dict[str, str | None]
    primary_node: str | None
    holders: tuple[str, ...]


@dataclass(frozen=True)
class Overlap:
    """An instant (zxid) at which more than one node was busy; `continued`: so was the instant
    checked just before, with the same nodes."""

    zxid: int
    seen: float
    states: dict[str, str | None]
    busy: tuple[str, ...]
    continued: bool


@dataclass
class Change:
    version: int
    value: str | None


class RouterHistory:
    """Every node's router state versions, each with the zxid that wrote it; finds the instants
    (zxids) at which more than one node was busy. Not thread-safe: the caller locks."""

    def __init__(self) -> None:
        self.changes: dict[str, dict[int, Change]] = {}  # name -> mzxid -> change
        self.zxids: dict[str, list[int]] = {}  # name -> its mzxids, sorted (versions grow too)
        self.horizon = 0  # every instant up to here is covered by the observations
        self.checked = 0  # instants up to here were checked
        self.instants = 0
        self.undetermined = 0
        self._pending: dict[int, float] = {}  # mzxid -> when first seen, not checked yet
        self._last_busy: tuple[str, ...] = ()  # at the last instant checked, if two or more

    def record(self, name: str, version: int, mzxid: int, value: str | None, seen: float) -> bool:
        """Adds an observation; True if this version is new."""
        changes = self.changes.setdefault(name, {})
        if mzxid in changes:
            return False
        changes[mzxid] = Change(version, value)
        bisect.insort(self.zxids.setdefault(name, []), mzxid)
        if mzxid > self.checked:
            self._pending.setdefault(mzxid, seen)
        return True

    def confirm(self, states: dict[str, tuple[int, int, str | None]], seen: float) -> None:
        """Adds the (version, mzxid, value) of every node's router state that one consistent
        read saw together, which moves the horizon to the newest of them."""
        if not states:
            return
        for name, (version, mzxid, value) in states.items():
            self.record(name, version, mzxid, value, seen)
        newest = max(mzxid for _, mzxid, _ in states.values())
        if not self.horizon:  # the first one: what came before it was not observed
            self.checked = newest - 1
            self._pending = {zxid: when for zxid, when in self._pending.items() if zxid >= newest}
        self.horizon = max(self.horizon, newest)

    def missing_versions(self) -> int:
        return sum(
            self.changes[name][zxids[-1]].version
            - self.changes[name][zxids[0]].version
            + 1
            - len(zxids)
            for name, zxids in self.zxids.items()
        )

    def value_at(self, name: str, zxid: int) -> tuple[bool, str | None]:
        """(known, value) of a node's router state at an instant no later than the horizon."""
        zxids = self.zxids[name]
        index = bisect.bisect_right(zxids, zxid) - 1
        if index < 0:  # first seen later: known absent only if that was its creation
            return self.changes[name][zxids[0]].version == 0, None
        change = self.changes[name][zxids[index]]
        if index == len(zxids) - 1:
            # The newest seen: the consistent read that set the horizon saw this version or an
            # older one, so this one held from its mzxid up to the horizon.
            return True, change.value
        following = self.changes[name][zxids[index + 1]]
        return following.version == change.version + 1, change.value

    def overlaps(self) -> list[Overlap]:
        """Every instant up to the horizon, not checked before, at which two were busy."""
        found = []
        for zxid in sorted(z for z in self._pending if z <= self.horizon):
            seen = self._pending.pop(zxid)
            states = {name: self.value_at(name, zxid) for name in self.zxids}
            busy = tuple(name for name, (exact, value) in states.items() if exact and value in BUSY)
            if len(busy) > 1:
                values = {name: value for name, (_, value) in states.items()}
                found.append(Overlap(zxid, seen, values, busy, busy == self._last_busy))
            elif not all(exact for exact, _ in states.values()):
                self.undetermined += 1
            self._last_busy = busy if len(busy) > 1 else ()
            self.instants += 1
        self.checked = max(self.checked, self.horizon)
        return found


class Observer:
    """Watches a LocalCluster from its own Zookeeper session; see the module docstring."""

    def __init__(self, cluster: LocalCluster, poll_interval: float = POLL_INTERVAL):
        self.cluster = cluster
        self.names = list(cluster.names)
        self.poll_interval = poll_interval
        self.origin = time.monotonic()
        self.history = RouterHistory()
        self.polls = 0
        self.failed_polls = 0
        self._violations: list[Violation] = []
        self._timeline: list[tuple[float, str]] = []
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._fresh = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._named_mzxid = -1  # of the newest primary_node value seen
        self._holders: tuple[str, ...] = ()
        self.zk = cluster.observer()
        self.probe = cluster.floating_probe()
        self._keys = [("node.state.router", name) for name in self.names]
        self._keys.append("base.config.primary_node")
        self._thread = threading.Thread(target=self._poll_loop, name="observer", daemon=True)

    def start(self) -> "Observer":
        for name in self.names:
            self._watch(("node.state.router", name), self._router_seen(name))
        self._watch("base.config.primary_node", self._primary_seen)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.zk.close()
        self.probe.close()

    # --- what the rounds use ----------------------------------------------------------------

    def note(self, text: str) -> None:
        """Adds a line to the timeline (the round runner's actions)."""
        with self._lock:
            self._timeline.append((time.monotonic(), text))

    def violations(self) -> list[Violation]:
        with self._lock:
            return list(self._violations)

    def timeline(self, start: float, end: float) -> list[str]:
        with self._lock:
            lines = [(when, text) for when, text in self._timeline if start <= when <= end]
        return [f"t={when - self.origin:9.3f}  {text}" for when, text in lines]

    def snapshot_after(self, moment: float, timeout: float) -> Snapshot | None:
        """The first snapshot taken after `moment`, waiting up to `timeout` for it."""
        with self._fresh:
            self._fresh.wait_for(
                lambda: self._snapshot is not None and self._snapshot.taken > moment, timeout
            )
            snapshot = self._snapshot
        return snapshot if snapshot is not None and snapshot.taken > moment else None

    def coverage(self) -> str:
        with self._lock:
            history = self.history
            return (
                f"{self.polls} polls ({self.failed_polls} failed), {history.instants} zxid "
                f"instants checked ({history.undetermined} undetermined), "
                f"{history.missing_versions()} router state versions never seen"
            )

    # --- watches ----------------------------------------------------------------------------

    def _watch(self, key: Any, callback: Callable[[Any, Any], None]) -> None:
        path, kind = resolve(key)

        def on_change(data: bytes | None, stat: Any, *_: Any) -> None:
            if stat is not None:
                callback(decode(data, kind), stat)

        self.zk.client.DataWatch(path, on_change)

    def _router_seen(self, name: str) -> Callable[[Any, Any], None]:
        def seen(value: Any, stat: Any) -> None:
            with self._lock:
                self._record(name, value, stat, time.monotonic())

        return seen

    def _primary_seen(self, value: Any, stat: Any) -> None:
        with self._lock:
            self._named_is(value, stat, time.monotonic())

    def _record(self, name: str, value: Any, stat: Any, now: float) -> None:
        if self.history.record(name, stat.version, stat.mzxid, value, now):
            self._timeline.append((now, f"router {name}={value} (zxid {stat.mzxid:#x})"))

    def _named_is(self, value: Any, stat: Any, now: float) -> None:
        if stat is not None and stat.mzxid > self._named_mzxid:
            self._named_mzxid = stat.mzxid
            self._timeline.append((now, f"primary_node={value} (zxid {stat.mzxid:#x})"))

    # --- polling ----------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._poll()
            except (Unavailable, KazooException, KazooTimeoutError, OSError) as exc:
                with self._lock:
                    self.failed_polls += 1
                    self._timeline.append((time.monotonic(), f"observer poll failed: {exc!r}"))

    def _read_twice(self) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """Two passes over every key, all requests pipelined: [(value, stat or None)] each."""
        resolved = [resolve(key) for key in self._keys]
        pending = [self.zk.client.get_async(path) for path, _ in resolved * 2]
        results = []
        for (_, kind), request in zip(resolved * 2, pending, strict=True):
            try:
                data, stat = request.get(timeout=5)
                results.append((decode(data, kind), stat))
            except NoNodeError:
                results.append((None, None))
        return results[: len(resolved)], results[len(resolved) :]

    def _confirmed_holders(self) -> tuple[str, ...]:
        first = set(self.probe.holders())
        return tuple(name for name in self.probe.holders() if name in first)

    def _poll(self) -> None:
        first, second = self._read_twice()
        holders = self._confirmed_holders()
        now = time.monotonic()
        with self._lock:
            self.polls += 1
            routers = [self._present_routers(first), self._present_routers(second)]
            for observed in routers:
                for name, (value, stat) in observed.items():
                    self._record(name, value, stat, now)
            self._named_is(*second[-1], now)
            previous = self._holders
            if previous != holders:
                self._holders = holders
                self._timeline.append((now, f"floating address on {list(holders) or 'none'}"))
            if len(holders) > 1:
                detail = "each namespace has the address"
                self._add_violation("floating", now, holders, detail, holders == previous)
            if versions(first) != versions(second):
                return  # something moved between the passes: not a consistent read
            self.history.confirm(
                {
                    name: (stat.version, stat.mzxid, value)
                    for name, (value, stat) in routers[1].items()
                },
                now,
            )
            for overlap in self.history.overlaps():
                detail = f"zxid {overlap.zxid:#x}, states {overlap.states}"
                self._add_violation("router", overlap.seen, overlap.busy, detail, overlap.continued)
            router = {name: value for name, (value, _) in zip(self.names, second, strict=False)}
            self._snapshot = Snapshot(now, router, second[-1][0], holders)
            self._fresh.notify_all()

    def _present_routers(self, observed: list[tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
        """The router states in one pass of _read_twice that exist: name -> (value, stat)."""
        pairs = zip(self.names, observed[:-1], strict=True)
        return {name: (value, stat) for name, (value, stat) in pairs if stat is not None}

    def _add_violation(
        self, kind: str, when: float, culprits: tuple[str, ...], detail: str, continued: bool
    ) -> None:
        """Records a violation, or extends the last one when it `continued` (seen at the check
        just before, with the same culprits)."""
        last = next((v for v in reversed(self._violations) if v.kind == kind), None)
        if continued and last is not None and last.culprits == culprits:
            last.last_seen = when
            return
        self._violations.append(Violation(kind, when, when, culprits, detail))
        self._timeline.append((when, f"VIOLATION {kind}: {', '.join(culprits)}"))


def versions(observed: list[tuple[Any, Any]]) -> list[int]:
    """The versions in one pass of Observer._read_twice (-1: the key is missing)."""
    return [stat.version if stat is not None else -1 for _, stat in observed]
