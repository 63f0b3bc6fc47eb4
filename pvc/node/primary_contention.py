"""Primary contention, takeover and relinquish for one coordinator.

The promise: at no instant are two nodes primary or in takeover (router states in Zookeeper),
and at no instant do two nodes hold the primary services (the floating address, which carries
the API's traffic to the primary's warm API process, and the primary-only controllers).

How (after the original's fix b413e042, improved):
- `/config/primary_node` names the primary, or "none". When it is vacant ("none", or naming a
  node whose liveness node is gone, i.e. whose session ended), every secondary in daemon state
  `run` contends: it takes the exclusive lock on `/locks/primary_node` with a 0.4 s timeout,
  re-reads the key and checks its version is the one that made it contend, and writes its own
  name in a transaction guarded by that version (and by the dead primary's liveness node still
  being absent). A loser times out on the lock or fails the version check, and gives up.
- The node named primary waits 0.5 s (longer than the lock timeout, so no loser is still
  contending), then waits until every other coordinator is out of primary, takeover and
  relinquish, or is dead (its router state is then forced to `secondary`). It writes `takeover`
  in ONE transaction that checks primary_node's version and every other coordinator's router
  state version, starts its services under a lease (pvc.node.lease), and writes `primary`.
- A primary that sees another name waits 0.5 s, writes `relinquish`, stops its services and
  writes `secondary`. A primary whose lease runs out (no word from Zookeeper for most of the
  session timeout, or a lost session) stops its services at once and becomes secondary by
  itself; its watchdog drops the floating address even if the daemon is frozen.
Everything runs on one worker thread fed by watches and a 0.5 s tick: each step re-reads
Zookeeper and acts on what it finds (no remembered plan), so restarts and missed events are safe.

Why this loop is not on the controller shape (pvc.node.controller), unlike the fence monitor:
- it has one key, this node's role: the shape's keys, workers and deduplication add nothing,
  and its wake queue already folds any number of wakes into one step, as a controller does;
- its waits are part of the promise and sit in one place, read top to bottom: the transition
  delay (longer than the lock timeout, so no loser still contends), the wait for the other
  coordinators to settle before the takeover transaction, the wait for a successor on stop.
  Cut into steps that return a delay, they would keep the same timing and spread the safety
  argument over remembered state; on a thread shared with nothing they starve nothing;
- its stop is not "take no more keys": the same thread must run one last transition (hand
  the role over) before it ends.
The chaos test (tests/chaos/test_primary_chaos.py) holds it to its timing.
"""

import contextlib
import logging
import queue
import threading
import time

from pvc.errors import ConcurrentChange, LockTimeout, PvcError, Unavailable
from pvc.node.lease import PrimaryLease
from pvc.node.primary_services import PrimaryServices
from pvc.zk.handler import ZKHandler
from pvc.zk.locks import exclusive_lock

LOCK_TIMEOUT = 0.4
TRANSITION_DELAY = 0.5
TICK = 0.5
# After stepping down for an explicit `node secondary`, a node leaves a vacancy to the others
# for this long before it contends again itself.
STEP_DOWN_GRACE = 5.0
BUSY = ("primary", "takeover", "relinquish")
log = logging.getLogger("pvc.node.primary")


class Coordinator:
    def __init__(self, zk: ZKHandler, name: str, services: PrimaryServices, lease: PrimaryLease):
        self.zk = zk
        self.name = name
        self.services = services
        self.lease = lease
        self.state = "secondary"  # this node's router state as this process knows it
        self.eligible = threading.Event()  # set while the daemon state is `run`
        self._wake: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self.stop_timeout = 10.0  # how long a stopping primary waits for a successor
        self._stepped_down: tuple[int, float] | None = None  # (primary_node version, when)
        self._watched_primary: str | None = None
        self._thread = threading.Thread(target=self._run, name="coordinator", daemon=True)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.zk.watch_data("base.config.primary_node", lambda *_: self.wake("primary_node"))
        self.zk.add_listener(lambda state: self.wake(f"session {state}"))
        self._thread.start()

    def wake(self, why: str) -> None:
        self._wake.put(why)

    def stop(self, timeout: float) -> None:
        """Graceful shutdown: the worker hands the primary role over (waiting up to `timeout`
        for a successor) and stops the services, then ends."""
        self.eligible.clear()
        self._stopping.set()
        self.wake("stop")
        self._thread.join(timeout=timeout + 5)
        if self.state != "secondary":
            self._drop("daemon stopping")

    # --- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=TICK)
            while not self._wake.empty():
                self._wake.get_nowait()
            try:
                if self._stopping.is_set():
                    if self.state in ("primary", "takeover"):
                        self._step_down(self.stop_timeout)
                    return
                self.reconcile()
            except (Unavailable, ConcurrentChange, LockTimeout) as exc:
                log.info("primary reconcile: %s; will retry", exc.message)
            except Exception:
                log.exception("primary reconcile failed; will retry")

    def reconcile(self) -> None:
        """One step toward what Zookeeper says this node should be."""
        if self.state in ("primary", "takeover") and not self.lease.valid():
            self._drop("no word from Zookeeper within the primary lease")
        if not self.zk.connected:
            return
        primary, version = self.zk.read_versioned("base.config.primary_node")
        self._watch_liveness(primary)
        if primary == self.name:
            if self.state == "secondary" and self.eligible.is_set():
                self._takeover(version)
            elif self.state == "primary":
                self.services.repair()
        elif self.state in ("primary", "takeover"):
            self._relinquish(f"primary is now {primary}")
        elif self._may_contend(version) and self._vacant(primary):
            self._contend(version)

    # --- contention ---------------------------------------------------------------------------

    def _vacant(self, primary: str | None) -> bool:
        if primary in (None, "none"):
            return True
        return not self.zk.exists(("node.alive", primary))

    def _may_contend(self, version: int) -> bool:
        """Only a secondary in daemon state run contends, and not for the vacancy it just made
        by stepping down (for STEP_DOWN_GRACE seconds)."""
        if self.state != "secondary" or not self.eligible.is_set():
            return False
        if self._stepped_down is None:
            return True
        stepped_version, when = self._stepped_down
        if version != stepped_version or time.monotonic() - when > STEP_DOWN_GRACE:
            self._stepped_down = None
            return True
        return False

    def _contend(self, version: int) -> None:
        try:
            with exclusive_lock(self.zk, "lock.primary_node", LOCK_TIMEOUT):
                current, current_version = self.zk.read_versioned("base.config.primary_node")
                if current_version != version or not self._vacant(current):
                    return  # someone else won meanwhile
                expect = {"base.config.primary_node": version}
                if current not in (None, "none"):
                    expect[("node.alive", current)] = -1  # the old primary is still dead
                self.zk.write({"base.config.primary_node": self.name}, expect=expect)
                log.info("won primary contention (previous primary: %s)", current)
        except (LockTimeout, ConcurrentChange):
            log.info("lost primary contention")

    def _watch_liveness(self, primary: str | None) -> None:
        """Wakes the worker when the named primary's session ends."""
        if primary in (None, "none", self.name) or primary == self._watched_primary:
            return
        self._watched_primary = primary

        def on_change(_value: object, version: int) -> bool:
            if self._watched_primary != primary:
                return False  # the primary changed since: stop watching this node
            if version == -1:
                self.wake(f"{primary} is gone")
            return True

        self.zk.watch_data(("node.alive", primary), on_change)

    # --- takeover -----------------------------------------------------------------------------

    def _still_named(self, version: int) -> bool:
        return self.zk.read_versioned("base.config.primary_node") == (self.name, version)

    def _takeover(self, version: int) -> None:
        if self._stopping.wait(TRANSITION_DELAY) or not self._still_named(version):
            return
        log.info("taking over as primary")
        while not self._stopping.is_set():
            changes, expect = self._others_settled()
            if changes is not None:
                break
            if not self._still_named(version):
                return
            self._stopping.wait(0.05)
        else:
            return
        changes[("node.state.router", self.name)] = "takeover"
        expect["base.config.primary_node"] = version
        self.zk.write(changes, expect=expect)
        self.state = "takeover"
        if not self.lease.grant():
            self._drop("could not confirm the session for the primary lease")
            return
        try:
            self.services.start_all()
        except PvcError as exc:
            log.error("primary services failed to start: %s; stepping down", exc.message)
            self._step_down(0)
            return
        self.zk.write(
            {("node.state.router", self.name): "primary"},
            expect={"base.config.primary_node": version},
        )
        self.state = "primary"
        log.info("now primary")

    def _others_settled(self) -> tuple[dict | None, dict]:
        """(changes, version checks) for the takeover transaction, or (None, _) while another
        live coordinator is still primary, in takeover or relinquishing."""
        changes: dict = {}
        expect: dict = {}
        for other in self.zk.children("base.nodes"):
            if other == self.name:
                continue
            state, state_version = self.zk.read_versioned(("node.state.router", other))
            if state in BUSY:
                if self.zk.exists(("node.alive", other)):
                    return None, {}
                changes[("node.state.router", other)] = "secondary"  # it died holding it
                expect[("node.alive", other)] = -1
            expect[("node.state.router", other)] = state_version
        return changes, expect

    # --- relinquish ---------------------------------------------------------------------------

    def _relinquish(self, why: str) -> None:
        self._stopping.wait(TRANSITION_DELAY)  # no delay when the daemon is stopping
        log.info("relinquishing primary: %s", why)
        self._write_own_state("relinquish")
        self.state = "relinquish"
        self._drop(why)
        self._write_own_state("secondary")

    def _drop(self, why: str) -> None:
        """Stops the primary services and the lease; this process is secondary from now on."""
        if self.state != "secondary":
            log.warning("dropping primary services: %s", why)
        self.services.stop_all()
        self.lease.release()
        self.state = "secondary"

    def _write_own_state(self, state: str) -> None:
        # Without contact, the state is fixed by our next takeover or by the next primary.
        with contextlib.suppress(Unavailable):
            self.zk.write({("node.state.router", self.name): state})

    def _step_down(self, timeout: float) -> None:
        """Gives the primary role away (writes "none" if it is still ours) and waits up to
        `timeout` for another coordinator to take it."""
        try:
            primary, version = self.zk.read_versioned("base.config.primary_node")
            if primary == self.name:
                self.zk.write(
                    {"base.config.primary_node": "none"},
                    expect={"base.config.primary_node": version},
                )
                self._stepped_down = (version + 1, time.monotonic())
        except (Unavailable, ConcurrentChange) as exc:
            log.warning("could not hand the primary role over: %s", exc.message)
        self._relinquish("stepping down")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                primary = self.zk.read("base.config.primary_node")
            except Unavailable:
                break
            if primary not in (None, "none", self.name):
                log.info("%s took over as primary", primary)
                return
            time.sleep(0.1)
        if timeout:
            log.warning("no successor took the primary role within %g s", timeout)
