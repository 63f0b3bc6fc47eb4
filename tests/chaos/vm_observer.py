"""An independent observer of where VMs run, for the HA tests: "a VM never runs on two nodes at
once, and every VM that should run runs again within a bound".

It uses neither pvc's code nor Zookeeper: a background thread asks each node's libvirtd (its own
connection per node, on the node's local URI) which domains are active and in what state, and
scans /proc for QEMU processes. A QEMU process belongs to the node whose network namespace it is
in (/proc/PID/ns/net against /run/netns/<namespace>): libvirtd runs in the node's namespace and
its QEMU processes inherit it. Nothing else tells them apart: libvirtd also runs in a mount
namespace of its own, so every node's QEMU command line names the same paths
(/var/lib/libvirt/qemu/domain-1-NAME/...), and that mount namespace is new after each restart.

Where a VM runs, per node and per pass:
- libvirtd answered: where it says the domain is active and not paused (a live migration's
  destination waits paused, and its source pauses at the switchover), plus any QEMU process of
  that UUID it does not list (a stray: libvirt lost track of it, and it still runs);
- libvirtd did not answer within LIBVIRT_TIMEOUT (node frozen, killed, or libvirtd just slow):
  wherever a QEMU process of that UUID lives, whatever its state (a SIGSTOPped QEMU can resume,
  so it still counts): /proc is the ground truth then. A killed QEMU is a zombie for a moment,
  until reaped; zombies do not count.
Each poll makes two passes (/proc, then every libvirtd in parallel) and counts a VM on a node
only if both passes saw it there. So a migration's switchover between two reads is not taken
for a double run: a VM confirmed on two nodes ran on node A at A's two reads and on B at B's
two reads, and those reads interleave, so both ran at one moment between them (it cannot stop
and start again on A within a pass of a few milliseconds). A double run seen in one pass only is
counted as a "glimpse", not reported. Overlaps shorter than a poll can be missed.
Errors lean towards reporting: a libvirtd slower than LIBVIRT_TIMEOUT during a live migration
makes its paused destination count as running (the evidence then says "libvirtd unreachable").

With count_paused=True, a paused domain counts as running too (any live QEMU is a run).
"""

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libvirt

if TYPE_CHECKING:
    from tests.libvirt_nodes import LibvirtNodes
    from tests.local_cluster import LocalCluster

POLL_INTERVAL = 0.05
LIBVIRT_TIMEOUT = 0.5  # longer than a busy libvirtd takes; only the first poll of a freeze waits
# virDomainState
STATE_NAMES = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
PAUSED = 3

Placement = dict[str, frozenset[str]]  # uuid -> the nodes it runs on (only uuids that run)


@dataclass(frozen=True)
class ObservedNode:
    uri: str  # libvirtd's local URI (qemu:///system?socket=...)
    netns: str  # the node's network namespace, /run/netns/<netns>


@dataclass(frozen=True)
class Qemu:
    pid: int
    state: str  # /proc/PID/stat: R, S, D, T (stopped), ...


@dataclass
class NodeView:
    """One node in one pass: what libvirtd said (None: no answer, see `error`) and its QEMUs."""

    domains: dict[str, int] | None  # uuid -> virDomainState of the active domains
    error: str
    qemus: dict[str, list[Qemu]]  # uuid -> its QEMU processes in the node's namespace


@dataclass
class DoubleRun:
    """A VM confirmed running on two or more nodes, in `polls` consecutive polls."""

    uuid: str
    nodes: tuple[str, ...]
    first_seen: float  # time.monotonic() at the end of the first poll that saw it
    last_seen: float
    polls: int
    evidence: dict[str, str]  # node -> why it counts as running there, at the first poll

    def describe(self, origin: float = 0.0) -> str:
        why = "; ".join(f"{node}: {text}" for node, text in sorted(self.evidence.items()))
        return (
            f"VM {self.uuid} ran on {', '.join(self.nodes)} at once from "
            f"t={self.first_seen - origin:.3f} to t={self.last_seen - origin:.3f} "
            f"({self.polls} polls; {why})"
        )


@dataclass(frozen=True)
class Poll:
    """What one poll (two passes) found."""

    started: float
    finished: float
    placement: Placement
    reachable: dict[str, bool]  # node -> libvirtd answered in both passes


@dataclass
class _Open:
    """The double run seen in the last poll, to extend while it lasts."""

    violation: DoubleRun
    poll: int


class _LibvirtReader:
    """One node's libvirt connection, used only by its own (daemon) thread, so a libvirtd that
    does not answer (SIGSTOPped) blocks only that thread and no more than one request waits on
    it; a lost connection is opened again at the next request."""

    def __init__(self, name: str, uri: str):
        self.uri = uri
        self._connection: libvirt.virConnect | None = None
        self._pending: Future | None = None
        self._asked = 0.0
        self._requests: list[Future | None] = []
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"vm-observer-{name}", daemon=True)
        self._thread.start()

    def request(self) -> Future | str:
        """A future for {uuid: state} of the active domains, or why no request was sent."""
        if self._pending is not None and not self._pending.done():
            return f"no answer for {time.monotonic() - self._asked:.1f} s"
        future: Future = Future()
        self._pending, self._asked = future, time.monotonic()
        with self._wake:
            self._requests.append(future)
            self._wake.notify()
        return future

    def close(self) -> None:
        with self._wake:
            self._requests.append(None)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._requests)
                future = self._requests.pop(0)
            if future is None:
                break
            try:
                future.set_result(self._domains())
            except Exception as exc:  # handed to the poll, which records it
                self._drop()
                future.set_exception(exc)
        self._drop()

    def _domains(self) -> dict[str, int]:
        if self._connection is None:
            self._connection = libvirt.open(self.uri)
        stats = self._connection.getAllDomainStats(
            libvirt.VIR_DOMAIN_STATS_STATE, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
        )
        return {domain.UUIDString().lower(): values["state.state"] for domain, values in stats}

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(libvirt.libvirtError):
                self._connection.close()
            self._connection = None


def _ignore_libvirt_error(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default: a dead node would fill the test log."""


def namespace_id(netns: str) -> tuple[int, int]:
    """(device, inode) of a named network namespace: what os.stat of /proc/PID/ns/net gives."""
    info = os.stat(f"/run/netns/{netns}")
    return info.st_dev, info.st_ino


def scan_qemus(namespaces: Mapping[tuple[int, int], str]) -> dict[str, dict[str, list[Qemu]]]:
    """node -> uuid -> live QEMU processes, for the QEMUs whose network namespace is a node's
    (`namespaces`: namespace_id -> node). Others (other tests' nodes) are left out."""
    found: dict[str, dict[str, list[Qemu]]] = {node: {} for node in namespaces.values()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as comm:
                if not comm.read().startswith(b"qemu-system"):
                    continue
            info = os.stat(f"/proc/{entry.name}/ns/net")  # fails for a zombie
            node = namespaces.get((info.st_dev, info.st_ino))
            if node is None:
                continue
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0].decode()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue  # it exited while we looked
        if state in ("Z", "X") or b"-uuid" not in argv:
            continue
        index = argv.index(b"-uuid") + 1
        if index < len(argv):
            uuid = argv[index].decode().lower()
            found[node].setdefault(uuid, []).append(Qemu(int(entry.name), state))
    return found


class VmObserver:
    """Polls every node's libvirtd and /proc in a thread; see the module docstring."""

    def __init__(
        self,
        nodes: Mapping[str, ObservedNode],
        poll_interval: float = POLL_INTERVAL,
        count_paused: bool = False,
    ):
        self.nodes = dict(nodes)
        self.poll_interval = poll_interval
        self.count_paused = count_paused
        self.origin = time.monotonic()
        self.polls = 0
        self.failed_polls = 0
        self.glimpses = 0  # double runs seen in one pass of a poll only
        self._namespaces = {namespace_id(node.netns): name for name, node in self.nodes.items()}
        self._readers: dict[str, _LibvirtReader] = {}
        self._violations: list[DoubleRun] = []
        self._open: dict[str, _Open] = {}
        self._history: list[tuple[float, Placement]] = []  # every placement change
        self._timeline: list[tuple[float, str]] = []
        self._last: Poll | None = None
        self._lock = threading.RLock()  # a wait_for check may call the accessors
        self._fresh = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="vm-observer", daemon=True)

    @classmethod
    def for_cluster(
        cls,
        cluster: "LocalCluster",
        libvirt_nodes: "LibvirtNodes",
        poll_interval: float = POLL_INTERVAL,
        count_paused: bool = False,
    ) -> "VmObserver":
        """Every node of a LocalCluster whose libvirtd LibvirtNodes started."""
        nodes = {
            name: ObservedNode(libvirt_nodes.nodes[name].uri, cluster.namespace(name))
            for name in cluster.names
        }
        return cls(nodes, poll_interval, count_paused)

    def start(self) -> "VmObserver":
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        self._readers = {name: _LibvirtReader(name, node.uri) for name, node in self.nodes.items()}
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for reader in self._readers.values():
            reader.close()  # a reader stuck on a frozen libvirtd is left behind (daemon thread)

    def __enter__(self) -> "VmObserver":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- what tests use ---------------------------------------------------------------------

    def violations(self) -> list[DoubleRun]:
        with self._lock:
            return list(self._violations)

    def placement(self) -> Placement:
        """uuid -> nodes, as of the last poll."""
        with self._lock:
            return dict(self._last.placement) if self._last else {}

    def running_on(self, uuid: str) -> frozenset[str]:
        return self.placement().get(uuid.lower(), frozenset())

    def on_node(self, node: str) -> set[str]:
        """The VMs running on `node` as of the last poll."""
        return {uuid for uuid, nodes in self.placement().items() if node in nodes}

    def reachable(self, node: str) -> bool:
        """Whether the node's libvirtd answered in the last poll."""
        with self._lock:
            return bool(self._last and self._last.reachable.get(node))

    def wait_for(self, check: Callable[[Poll], bool], timeout: float) -> float:
        """Waits for a poll started after this call that passes `check`; returns the seconds
        from the call to the end of that poll. TimeoutError after `timeout`."""
        called = time.monotonic()
        deadline = called + timeout

        def fresh_and_true() -> bool:
            last = self._last
            return last is not None and last.started > called and check(last)

        with self._fresh:
            while not fresh_and_true():
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    recent = "\n".join(self.timeline()[-10:])
                    raise TimeoutError(f"not within {timeout} s; {self._last}; lately:\n{recent}")
                self._fresh.wait(left)
            assert self._last is not None
            return self._last.finished - called

    def wait_running(
        self, uuids: Iterable[str], timeout: float, avoid: Iterable[str] = ()
    ) -> float:
        """Waits until every VM runs on exactly one node, none of them in `avoid`; seconds."""
        wanted = [uuid.lower() for uuid in uuids]
        return self.wait_for(lambda poll: all_running(poll.placement, wanted, avoid), timeout)

    def wait_stopped(self, uuids: Iterable[str], timeout: float) -> float:
        """Waits until none of the VMs runs anywhere; seconds."""
        wanted = [uuid.lower() for uuid in uuids]
        return self.wait_for(lambda poll: not any(u in poll.placement for u in wanted), timeout)

    def wait_reachable(self, node: str, timeout: float, answers: bool = True) -> float:
        """Waits until the node's libvirtd answers (answers=False: does not answer); seconds."""
        return self.wait_for(lambda poll: poll.reachable.get(node) == answers, timeout)

    def history(self) -> list[tuple[float, Placement]]:
        """(time.monotonic(), placement) at the first poll and at every poll that changed it."""
        with self._lock:
            return [(when, dict(placement)) for when, placement in self._history]

    def recovered_at(
        self, uuids: Iterable[str], since: float, avoid: Iterable[str] = ()
    ) -> float | None:
        """When every VM ran again on exactly one node outside `avoid` (the dead one) after
        `since` (its death), as far as the polls show; None if not (yet)."""
        return recovered_at(self.history(), uuids, since, avoid)

    def note(self, text: str) -> None:
        """Adds a line to the timeline (the test's actions)."""
        with self._lock:
            self._timeline.append((time.monotonic(), text))

    def timeline(self, start: float = 0.0, end: float = float("inf")) -> list[str]:
        with self._lock:
            lines = [(when, text) for when, text in self._timeline if start <= when <= end]
        return [f"t={when - self.origin:9.3f}  {text}" for when, text in lines]

    def coverage(self) -> str:
        with self._lock:
            return f"{self.polls} polls ({self.failed_polls} failed), {self.glimpses} glimpses"

    # --- polling ----------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                first = self._pass()
                second = self._pass()
                self._judge(started, first, second)
            except Exception as exc:  # recorded; the observer must go on
                with self._lock:
                    self.failed_polls += 1
                    self._timeline.append((time.monotonic(), f"poll failed: {exc!r}"))
            self._stop.wait(max(0.0, started + self.poll_interval - time.monotonic()))

    def _pass(self) -> dict[str, NodeView]:
        qemus = scan_qemus(self._namespaces)
        requests = {name: reader.request() for name, reader in self._readers.items()}
        deadline = time.monotonic() + LIBVIRT_TIMEOUT
        views = {}
        for name, request in requests.items():
            domains, error = None, request if isinstance(request, str) else ""
            if isinstance(request, Future):
                try:
                    domains = request.result(max(0.0, deadline - time.monotonic()))
                except FutureTimeout:
                    error = f"no answer within {LIBVIRT_TIMEOUT} s"
                except Exception as exc:  # libvirtError mostly: unreachable
                    error = str(exc).strip() or repr(exc)
            views[name] = NodeView(domains, error, qemus[name])
        return views

    def _runs(self, view: NodeView) -> dict[str, str]:
        """uuid -> evidence, for what runs on this node in this pass."""
        found = {}
        for uuid in set(view.qemus) | set(view.domains or {}):
            pids = ",".join(f"{q.pid}({q.state})" for q in view.qemus.get(uuid, []))
            qemu = f"qemu pid {pids}" if pids else "no qemu process"
            if view.domains is None:
                if pids:
                    found[uuid] = f"{qemu}, libvirtd unreachable ({view.error})"
            elif uuid not in view.domains:
                found[uuid] = f"{qemu} not listed by libvirtd"
            elif view.domains[uuid] != PAUSED or self.count_paused:
                found[uuid] = f"libvirt {STATE_NAMES.get(view.domains[uuid], '?')}, {qemu}"
        return found

    def _judge(self, started: float, first: dict[str, NodeView], second: dict[str, NodeView]):
        runs = [
            {name: self._runs(view) for name, view in views.items()} for views in (first, second)
        ]
        confirmed: dict[str, dict[str, str]] = {}  # uuid -> node -> evidence (second pass)
        seen_once: dict[str, set[str]] = {}
        for name in self.nodes:
            for uuid, evidence in runs[1][name].items():
                if uuid in runs[0][name]:
                    confirmed.setdefault(uuid, {})[name] = evidence
            for views in runs:
                for uuid in views[name]:
                    seen_once.setdefault(uuid, set()).add(name)
        placement = {uuid: frozenset(nodes) for uuid, nodes in confirmed.items()}
        reachable = {
            name: first[name].domains is not None and second[name].domains is not None
            for name in self.nodes
        }
        now = time.monotonic()
        with self._lock:
            self.polls += 1
            previous = self._last
            for uuid, nodes in seen_once.items():
                if len(nodes) > 1 and len(placement.get(uuid, ())) < 2:
                    self.glimpses += 1
                    self._timeline.append((now, f"glimpse: {uuid} on {sorted(nodes)} once"))
            for uuid, evidence in confirmed.items():
                if len(evidence) > 1:
                    self._double_run(uuid, evidence, now)
            self._open = {u: o for u, o in self._open.items() if o.poll == self.polls}
            self._note_changes(previous, placement, reachable, second, now)
            if previous is None or previous.placement != placement:
                self._history.append((now, placement))
            self._last = Poll(started, now, placement, reachable)
            self._fresh.notify_all()

    def _double_run(self, uuid: str, evidence: dict[str, str], now: float) -> None:
        nodes = tuple(sorted(evidence))
        current = self._open.get(uuid)
        if current is not None and current.violation.nodes == nodes:
            current.violation.last_seen = now
            current.violation.polls += 1
            current.poll = self.polls
            return
        violation = DoubleRun(uuid, nodes, now, now, 1, dict(evidence))
        self._violations.append(violation)
        self._open[uuid] = _Open(violation, self.polls)
        self._timeline.append((now, f"DOUBLE RUN {violation.describe(self.origin)}"))

    def _note_changes(
        self,
        previous: Poll | None,
        placement: Placement,
        reachable: dict[str, bool],
        views: dict[str, NodeView],
        now: float,
    ) -> None:
        before = previous.placement if previous else {}
        for uuid in sorted(set(before) | set(placement)):
            if before.get(uuid) != placement.get(uuid):
                where = sorted(placement.get(uuid, ())) or "nowhere"
                self._timeline.append((now, f"{uuid} runs on {where}"))
        for name, answered in reachable.items():
            if previous is None or previous.reachable.get(name) != answered:
                state = "answers" if answered else f"does not answer ({views[name].error})"
                self._timeline.append((now, f"libvirtd of {name} {state}"))


def all_running(placement: Placement, uuids: Iterable[str], avoid: Iterable[str] = ()) -> bool:
    """Every VM runs on exactly one node, none of them in `avoid`."""
    excluded = set(avoid)
    return all(
        len(nodes := placement.get(uuid, frozenset())) == 1 and not nodes & excluded
        for uuid in uuids
    )


def recovered_at(
    history: list[tuple[float, Placement]],
    uuids: Iterable[str],
    since: float,
    avoid: Iterable[str] = (),
) -> float | None:
    """The end of the first poll at or after `since` at which every VM ran on exactly one node
    outside `avoid` (`since` itself if the placement in effect then did); None if none did.
    `history`: VmObserver.history(), placements at the polls that changed them."""
    wanted = [uuid.lower() for uuid in uuids]
    in_effect = [index for index, (when, _) in enumerate(history) if when <= since]
    for when, placement in history[in_effect[-1] if in_effect else 0 :]:
        if all_running(placement, wanted, avoid):
            return max(when, since)
    return None
