"""The fence monitor: finds dead nodes, powers them off through their BMC, recovers their VMs.

Who runs it: the primary coordinator, and it acts only while this node holds the primary lease
(pvc.node.lease). The lease ends before Zookeeper could expire this node's session, and another
coordinator becomes primary only after that expiry, so two monitors never act at once, even when
the primary is cut off from Zookeeper (a lock of its own would not do: a lock's holder cut off
from Zookeeper goes on believing it holds the lock until it hears otherwise). Every step that
acts (marking a node dead, powering it off, recovering its VMs) checks the lease first.

Detection uses this monitor's clock only (node clocks may differ): a node is dead when the
monitor has seen no sign of life from it for keepalive_interval x fence_intervals, counted from
when this monitor started (a new primary gives every node the whole time) and from its last
fence, and its daemon state says it should be running (FENCEABLE; a node stopped cleanly says
stop and is never fenced; a failed fence is tried again). A sign of life is a new keepalive, or
a daemon registering in a new session (its liveness node names the session). The monitor
watches from its mirror of the tree, and decides nothing while that copy is reloading; the
checks that decide (the saving throws, the wait before a recovery) read Zookeeper itself.
Maintenance mode suppresses fencing. Saving throws: the node is marked `dead` and watched for
SAVING_THROWS more intervals; a sign of life cancels everything.

The fence: power off, verify off, recover the VMs (pvc.ops.fence), power on, verify on; the
node ends `fenced`. If IPMI fails (or the node has none), it ends `fence-failed` and its VMs
stay where they are, unless fencing.failed_fence is migrate and self-fencing is on
on the node (it publishes its own self-fence time in its static data): then the monitor waits
until the node must have fenced itself (its last sign of life + that time + a margin) and
recovers, in transactions that require the node's liveness node to be absent (a daemon that
registers meanwhile wins, and starts VMs only once registered).
"""

import logging
import threading
import time
from typing import Any

from pvc.config import Config
from pvc.drivers import ipmi
from pvc.errors import ConcurrentChange
from pvc.ops import fence as fence_ops
from pvc.ops import placement
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.fencing")
SAVING_THROWS = 3  # keepalive intervals a node marked dead gets to show a sign of life
FENCEABLE = ("run", "init", "dead", "fence-failed")
VERIFY_TIMEOUT = 10.0


def self_fence_margin(keepalive_interval: float) -> float:
    """What the monitor adds to a node's self-fence deadline before trusting it: the node's
    watchdog acts within a poll of its deadline, and the two clocks may drift a little."""
    return 2 * keepalive_interval + 1.0


class FenceMonitor:
    def __init__(self, zk: ZKHandler, view: CachedView, name: str, config: Config, lease: Any):
        self.zk = zk
        self.view = view  # reads of the cluster tree, from memory
        self.name = name
        self.config = config
        self.lease = lease
        self.interval = config.get("timers.keepalive_interval")
        self.window = self.interval * config.get("timers.fence_intervals")
        self.policy = placement.Policy.from_config(config)
        # node -> ((keepalive, session), when this monitor saw that sign of life appear)
        self._seen: dict[str, tuple[tuple[Any, Any], float]] = {}
        self._fencing: set[str] = set()
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop, name="fence-monitor", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    # --- detection ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 2)):
            try:
                self._check()
            except Exception:
                log.exception("fence monitor check failed; trying again")

    def _check(self) -> None:
        if not self.lease.valid() or not self.view.mirror.loaded:
            self._seen.clear()  # not primary, or blind: counting starts afresh afterwards
            return
        now = time.monotonic()
        for node in self.view.children("base.nodes"):
            self.last_sign(node, now)
        if self.view.read("base.config.maintenance"):
            return
        for node, (_, since) in list(self._seen.items()):
            if node == self.name or node in self._fencing or now - since < self.window:
                continue
            if self.view.read(("node.state.daemon", node)) in FENCEABLE:
                self._fencing.add(node)
                threading.Thread(
                    target=self._fence_node, args=(node, since), name=f"fence-{node}", daemon=True
                ).start()

    def last_sign(self, node: str, now: float | None = None, source: Any = None) -> float:
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

    def _silent_until(self, node: str, since: float, deadline: float, what: str) -> bool:
        """Waits until `deadline` while the node stays silent (True); False, with a log entry,
        if it shows a sign of life, or if this node stops being primary."""
        while time.monotonic() < deadline:
            if self._stop.wait(0.2) or not self.lease.valid():
                return False
            if self.last_sign(node, source=self.zk) != since:
                fence_ops.record(self.zk, node, "alive", f"a sign of life: {what} cancelled")
                return False
            if self.view.read("base.config.maintenance"):
                fence_ops.record(self.zk, node, "cancelled", f"maintenance mode: {what} cancelled")
                return False
        return self.lease.valid() and self.last_sign(node, source=self.zk) == since

    # --- one node -----------------------------------------------------------------------------

    def _fence_node(self, node: str, since: float) -> None:
        try:
            if self._dead_after_saving_throws(node, since):
                self._fence(node, since)
        except Exception:
            log.exception("fencing %s failed", node)
        finally:
            # whatever happened, the node (booting again, say) gets a whole window from now
            self.last_sign(node)
            self._seen[node] = (self._seen[node][0], time.monotonic())
            self._fencing.discard(node)

    def _dead_after_saving_throws(self, node: str, since: float) -> bool:
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
        deadline = time.monotonic() + SAVING_THROWS * self.interval
        return self._silent_until(node, since, deadline, "fence")

    def _fence(self, node: str, since: float) -> None:
        recovered: list[str] = []

        def recover() -> None:  # between power off (verified) and power on
            if not self.lease.valid():
                raise RuntimeError("this node is no longer primary: recovery left to the next")
            fence_ops.record(self.zk, node, "fenced", "power off verified", state="fenced")
            if self.config.get("fencing.successful_fence") == "migrate":
                recovered.extend(fence_ops.recover_vms(self.zk, self.policy, node))

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
        self._recover_after_self_fence(node, since)

    def _recover_after_self_fence(self, node: str, since: float) -> None:
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
        if not self._silent_until(node, since, deadline, "recovery"):
            return
        recovered = fence_ops.recover_vms(self.zk, self.policy, node)
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
