"""The fence monitor: finds dead nodes, powers them off through their BMC, recovers their VMs.

Its shape: a primary-only controller (pvc.node.controller) keyed by node name, started on
takeover and stopped on relinquish by the primary's registry (pvc.node.primary_services). A
resync every half keepalive interval names every node, and the daemon's mirror names a node
whose keepalive or liveness node changed. Each node's progress (when its last sign of life
was seen, and the wait it is in) is kept in memory by this monitor, so no step ever sleeps:
a step looks, acts if it must, and returns when to look again.

Acting: only while this node holds the primary lease (pvc.node.lease). The lease ends before
Zookeeper could expire this node's session, and another coordinator becomes primary only after
that expiry, so two monitors never act at once, even when the primary is cut off from
Zookeeper (a lock of its own would not do: a lock's holder cut off from Zookeeper goes on
believing it holds the lock until it hears otherwise). Being started by the registry is not
trusted for that: every step that acts (marking a node dead, powering it off, recovering its
VMs) checks the lease first, and a step still running when the monitor stops finds it gone.

Detection uses this monitor's clock only (node clocks may differ): a node is dead when the
monitor has seen no sign of life from it for keepalive_interval x fence_intervals, counted from
when this monitor started (a new primary gives every node the whole time) and from its last
fence, and its daemon state says it should be running (FENCEABLE; a node stopped cleanly says
stop and is never fenced; a failed fence is tried again). A sign of life is a new keepalive, or
a daemon registering in a new session (its liveness node names the session). The monitor
watches from its mirror of the tree, and decides nothing while that copy is reloading; the
checks that decide (during the saving throws, the wait before a recovery) read Zookeeper
itself, every POLL seconds. Maintenance mode suppresses fencing. Saving throws: the node is
marked `dead` and watched for SAVING_THROWS more intervals; a sign of life cancels everything.

The fence: power off, verify off, blocklist the node's Ceph clients (the storage fence,
pvc.ops.storage_fence), recover the VMs (pvc.ops.fence), power on, verify on; the node ends
`fenced`. A storage fence that fails leaves the VMs where they are and the node
`fence-failed`, to be fenced again; before a recovery after a self-fence it is tried again
every keepalive interval. This runs within one step (it is one conversation with the BMC, each wait
bounded by VERIFY_TIMEOUT, not a wait for the node), on one of WORKERS workers, so other
nodes are watched meanwhile. If IPMI fails (or the node has none), it ends `fence-failed` and
its VMs stay where they are, unless fencing.failed_fence is migrate and self-fencing is on
on the node (it publishes its own self-fence time in its static data): then the monitor waits
until the node must have fenced itself (its last sign of life + that time + a margin) and
recovers, in transactions that require the node's liveness node to be absent (a daemon that
registers meanwhile wins, and starts VMs only once registered).

Session loss: the lease ends with it (nothing acts), and the mirror reloads (nothing is
decided); after the relinquish that follows, a later takeover starts counting afresh.
"""

import logging
import time
from dataclasses import dataclass

from pvc.config import Config
from pvc.drivers import ceph, ipmi
from pvc.errors import ConcurrentChange
from pvc.node.controller import Controller
from pvc.node.lease import PrimaryLease
from pvc.ops import fence as fence_ops
from pvc.ops import placement, storage_fence
from pvc.zk import schema
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler, resolve

log = logging.getLogger("pvc.node.fencing")
SAVING_THROWS = 3  # keepalive intervals a node marked dead gets to show a sign of life
FENCEABLE = ("run", "init", "dead", "fence-failed")
VERIFY_TIMEOUT = 10.0
Sign = tuple[float | None, str | None]  # a node's (keepalive, session): a change is a sign
POLL = 0.2  # seconds between looks at a silent node during a wait
WORKERS = 4  # nodes whose steps (a fence, say) can run at once
# A node's keys whose change is a possible sign of life (their last path component).
SIGNS_OF_LIFE = {schema.KEYS[key][0].rsplit("/", 1)[1] for key in ("node.keepalive", "node.alive")}


def self_fence_margin(keepalive_interval: float) -> float:
    """What the monitor adds to a node's self-fence deadline before trusting it: the node's
    watchdog acts within a poll of its deadline, and the two clocks may drift a little."""
    return 2 * keepalive_interval + 1.0


@dataclass(frozen=True)
class Wait:
    """A silent node being waited on: since its last sign of life (`since`), until `deadline`,
    then to `then` ("fence": the saving throws; "recovery": its self-fence time)."""

    since: float
    deadline: float
    then: str


class FenceMonitor:
    """The fence monitor; a PrimaryService (name, start, stop, running) for the registry."""

    name = "fence monitor"

    def __init__(
        self, zk: ZKHandler, view: CachedView, name: str, config: Config, lease: PrimaryLease
    ):
        self.zk = zk
        self.view = view  # reads of the cluster tree, from memory
        self.node = name
        self.config = config
        self.lease = lease
        self.interval = config.get("timers.keepalive_interval")
        self.window = self.interval * config.get("timers.fence_intervals")
        self.policy = placement.Policy.from_config(config)
        self.ceph = ceph.shared(config) if config.get("ceph.enabled") else None
        # node -> ((keepalive, session), when this monitor saw that sign of life appear)
        self._seen: dict[str, tuple[Sign, float]] = {}
        self._waits: dict[str, Wait] = {}  # each node's read and written by its step only
        self.controller = Controller(
            "fence",
            self._step,
            workers=WORKERS,
            resync=lambda: self.view.children("base.nodes"),
            resync_interval=self.interval / 2,
        )
        view.mirror.listen(self._on_mirror)

    # --- life cycle (the registry's) ----------------------------------------------------------

    def start(self) -> None:
        """Starts watching: every node gets a whole window from now."""
        if not self.controller.running():
            self._seen.clear()
            self._waits.clear()
        self.controller.start()

    def stop(self) -> None:
        """Stops at once: a step in progress finds the lease gone before it acts again."""
        self.controller.stop(timeout=0)

    def running(self) -> bool:
        return self.controller.running()

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        parts = path.split("/")  # /nodes/<node>/<key>
        nodes = len(parts) == 4 and f"/{parts[1]}" == resolve("base.nodes")[0]
        if nodes and parts[3] in SIGNS_OF_LIFE:
            self.controller.enqueue(parts[2])

    # --- detection ----------------------------------------------------------------------------

    def _step(self, node: str) -> float | None:
        wait = self._waits.get(node)
        if wait is None and not self._watch(node):
            return self._next_look(node)
        try:
            again = self._act(node)
        except Exception:
            log.exception("fencing %s failed", node)
            self._waits.pop(node, None)
            again = None
        if node not in self._waits:
            # whatever happened, the node (booting again, say) gets a whole window from now
            self.last_sign(node)
            self._seen[node] = (self._seen[node][0], time.monotonic())
        return again

    def _watch(self, node: str) -> bool:
        """True when the node has been silent for the whole window and should be running."""
        if not self.lease.valid() or not self.view.mirror.loaded:
            self._seen.pop(node, None)  # not primary, or blind: counting starts afresh after
            return False
        now = time.monotonic()
        since = self.last_sign(node, now)
        if node == self.node or now - since < self.window:
            return False
        if self.view.read("base.config.maintenance"):
            return False
        return self.view.read(("node.state.daemon", node)) in FENCEABLE

    def _next_look(self, node: str) -> float | None:
        """When the node's window ends, if it is counting (the resync comes meanwhile)."""
        seen = self._seen.get(node)
        if seen is None or node == self.node:
            return None
        remaining = seen[1] + self.window - time.monotonic()
        return remaining if remaining > 0 else None

    def last_sign(
        self, node: str, now: float | None = None, source: CachedView | ZKHandler | None = None
    ) -> float:
        """When this monitor last saw a sign of life from the node (monotonic time), reading
        from `source` (default: the mirror; the Zookeeper handler for decisions). A liveness
        node that went away is no sign: only a new session is."""
        keepalive, session = (source or self.view).read_many(
            [("node.keepalive", node), ("node.alive", node)]
        )
        seen = self._seen.get(node)
        if seen is not None and session is None:
            session = seen[0][1]
        if seen is None or seen[0] != (keepalive, session):
            seen = self._seen[node] = ((keepalive, session), now or time.monotonic())
        return seen[1]

    # --- one node -----------------------------------------------------------------------------

    def _act(self, node: str) -> float | None:
        """One step on a silent node: begin the saving throws, or go on with a wait."""
        wait = self._waits.get(node)
        if wait is None:
            since = self._seen[node][1]
            if self._mark_dead(node, since):
                self._waits[node] = Wait(since, self._deadline(SAVING_THROWS), "fence")
                return POLL
            return None
        silent = self._silent(node, wait)
        if silent is None:
            return min(POLL, max(0.0, wait.deadline - time.monotonic()))
        del self._waits[node]
        if silent and wait.then == "fence":
            self._fence(node, wait.since)
        elif silent:
            self._recover_after_self_fence(node, wait.since)
        return POLL if node in self._waits else None

    def _deadline(self, intervals: float) -> float:
        return time.monotonic() + intervals * self.interval

    def _silent(self, node: str, wait: Wait) -> bool | None:
        """Still waiting (None); silent to the deadline (True); or False, with a log entry,
        if it showed a sign of life, or if this node stopped being primary."""
        what = wait.then
        if not self.lease.valid():
            return False
        if self.last_sign(node, source=self.zk) != wait.since:
            fence_ops.record(self.zk, node, "alive", f"a sign of life: {what} cancelled")
            return False
        if self.view.read("base.config.maintenance"):
            fence_ops.record(self.zk, node, "cancelled", f"maintenance mode: {what} cancelled")
            return False
        return True if time.monotonic() >= wait.deadline else None

    def _mark_dead(self, node: str, since: float) -> bool:
        state, version = self.zk.read_versioned(("node.state.daemon", node))
        if state not in FENCEABLE or not self.lease.valid():
            return False
        silent = time.monotonic() - since
        try:
            self.zk.write(
                {("node.state.daemon", node): "dead"}, expect={("node.state.daemon", node): version}
            )
        except ConcurrentChange:
            return False  # the node (or a user) wrote its state just now: not silent after all
        fence_ops.record(self.zk, node, "dead", f"no sign of life for {silent:.1f} s")
        return True

    def _fence(self, node: str, since: float) -> None:
        recovered: list[str] = []

        def recover() -> None:  # between power off (verified) and power on
            if not self.lease.valid():
                raise RuntimeError("this node is no longer primary: recovery left to the next")
            fence_ops.record(self.zk, node, "fenced", "power off verified", state="fenced")
            if self.config.get("fencing.successful_fence") != "migrate":
                return
            if self._fence_storage(node):
                recovered.extend(fence_ops.recover_vms(self.view, self.policy, node))
            else:
                recovered.append("its VMs wait: the storage fence failed")

        bmc = self._bmc(node)
        steps: list[str] = []
        if bmc is None:
            reason = "no IPMI configured for the node (or not readable without zookeeper.secret)"
        elif not self.lease.valid():
            return
        else:
            result = ipmi.fence(bmc, VERIFY_TIMEOUT, when_off=recover)
            if result.fenced:
                detail = f"{result.reason} in {result.seconds:.1f} s; " + (
                    "; ".join(recovered) or "no VM to recover"
                )
                fence_ops.record(self.zk, node, "fence-complete", detail, steps=result.steps)
                return
            reason, steps = result.reason, result.steps
        fence_ops.record(self.zk, node, "fence-failed", reason, state="fence-failed", steps=steps)
        self._wait_for_self_fence(node, since)

    def _wait_for_self_fence(self, node: str, since: float) -> None:
        # the node's own self-fence time (what its watchdog enforces), not this node's
        self_fence_after = (self.zk.read(("node.static", node)) or {}).get("self_fence_after")
        if self.config.get("fencing.failed_fence") != "migrate" or not self_fence_after:
            fence_ops.record(
                self.zk,
                node,
                "vms-kept",
                "its VMs stay assigned to it (failed_fence: none, or the node does not fence "
                "itself): bring the node back or move them by hand",
            )
            return
        deadline = since + self_fence_after + self_fence_margin(self.interval)
        self._waits[node] = Wait(since, deadline, "recovery")

    def _fence_storage(self, node: str) -> bool:
        """Blocklists the node's Ceph clients (pvc.ops.storage_fence); False, with the reason
        in the fence log and the node fence-failed (fenced again later), if that failed."""
        outcome = storage_fence.fence(self.zk, self.ceph, node)
        if outcome.may_recover:
            fence_ops.record(self.zk, node, "storage-fence", outcome.detail)
            return True
        fence_ops.record(self.zk, node, "storage-fence-failed", outcome.detail,
                         state="fence-failed")  # fmt: skip
        return False

    def _recover_after_self_fence(self, node: str, since: float) -> None:
        if not self._fence_storage(node):
            self._waits[node] = Wait(since, self._deadline(1), "recovery")  # try again
            return
        recovered = fence_ops.recover_vms(self.view, self.policy, node)
        fence_ops.record(
            self.zk,
            node,
            "recovered",
            "its self-fence deadline passed; " + ("; ".join(recovered) or "no VM to recover"),
        )

    def _bmc(self, node: str) -> ipmi.Bmc | None:
        found = self.zk.read_private(("private.ipmi", node))
        if not found or not found.get("host"):
            return None
        return ipmi.Bmc(found["host"], found.get("user") or "", found.get("password") or "",
                        found.get("port") or 623)  # fmt: skip
