"""The VM controller: makes libvirt on this node match what Zookeeper says about its VMs.

It has the controller shape (pvc.node.controller), keyed by VM UUID. Changes seen in the
daemon's mirror of Zookeeper (a VM's state, node or observed report, its removal) and libvirt
lifecycle events queue a VM that is, or was, assigned here; a resync every
`timers.keepalive_interval` queues every VM assigned or running here. WORKERS workers take one
UUID at a time (never the same one on two workers) and take one idempotent step:

- assigned here, state start: running here -> report it (paused here, with no migration of
  ours in flight -> resume it: a migration away that failed at its switchover, its target
  fenced since); not here -> start it from the XML in Zookeeper (its RBD disks completed
  with the monitors and the cluster's libvirt Ceph secret, pvc.node.vm_disks), unless
  another node still reports it running (a migration not finished).
- assigned here, state migrate (receiving): running here -> the migration landed, state start;
  not here and the sender reports it off -> start it here.
- assigned elsewhere, running here, state migrate (sending): live migration to the target
  (unless the method is shutdown), falling back to shutdown-and-start unless the migration
  method forbids it; the receiver starts it only after this node reports it off.
- assigned elsewhere, running here, any other state: a stray; destroy it.
- no VM in Zookeeper: a domain carrying this cluster's mark (pvc.ops.cluster.identity, set
  by `start`) is an orphan, its VM removed, perhaps while this daemon was down: it is removed
  (off and undefined). Any other domain (unmarked, or another cluster's) is not pvc's: left
  alone, logged once. A domain of a VM assigned here that runs unmarked (started before pvc
  marked domains) is marked. Deciding on "no VM" is safe: the VM is read from Zookeeper
  itself after this daemon registered (a write of this session), so any VM defined before
  its domain could have started is seen.
- state provision (a provision task builds the VM: its volumes may not exist yet): left alone.
- restart, shutdown (graceful, then error or forced off after `vm_shutdown_timeout`), stop and
  disable act on a VM running here.

No step waits for a guest. A graceful shutdown (shutdown, restart, the fallback of a
migration) sends the ACPI request once per request (per version of the VM's state), remembers
its deadline in memory and asks to be called again in POLL seconds; the guest's lifecycle
event (it went off) wakes it sooner. At the deadline the step destroys the guest (forced) or
gives up (a shutdown without force: state back to start, with the reason). A daemon that
restarts meanwhile sends the request again, with a new deadline.

A live migration is one libvirt call that lasts as long as copying the guest's memory takes
(seconds to many minutes), so it does not run on a worker: on a worker, a few large
migrations (a user moving VMs, a flush) would stall every other VM of the node, exactly as
slow shutdowns did. It runs on a thread of its own, and at most MIGRATIONS leave this node at
once (the others wait for a slot there, holding up nothing else). While it is in flight, the
VM's steps leave it alone (as before, when its worker was busy with it); its end queues the
VM, whose next step sees the result or falls back to shutdown-and-start. The threads are
daemon threads: a daemon that stops does not wait for a migration (the next daemon goes on
from what Zookeeper and libvirt say, as after a crash).

The handshake between sender and receiver is `observed` ({node, state}): a node reports
"running" for what runs on it, and "shutoff" only if the report was still its own, so the
receiver never starts a VM its sender has not let go of. Every other write of a step is
guarded by the version of the VM's state the step read: a user's change meanwhile wins, and
the VM is looked at again. A VM is never started on two nodes.

Session loss: steps that read or write Zookeeper fail and are retried by the next resync;
starting a VM also waits until this daemon is registered in its new session (a silent node may
have been declared dead and its VMs recovered elsewhere).
"""

import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from pvc.config import Config
from pvc.drivers.ceph import CephError
from pvc.drivers.contracts import HypervisorDriver, HypervisorError
from pvc.drivers.libvirt import Hypervisor
from pvc.errors import ConcurrentChange, InvalidInput, PvcError
from pvc.limits import one_line
from pvc.node.controller import Controller
from pvc.node.vm_disks import VmDisks
from pvc.ops import cluster, network_vms
from pvc.ops import vm as vm_ops
from pvc.zk import schema
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler, resolve

log = logging.getLogger("pvc.node.vms")
RUNNING = vm_ops.RUNNING
SHOULD_RUN = ("start", "restart", "migrate", "shutdown")  # states a VM may be active in here
# A VM's keys whose change may concern this node (their last path component).
WATCHED_KEYS = {
    schema.KEYS[key][0].rsplit("/", 1)[1]
    for key in ("domain.node", "domain.state", "domain.observed")
}
WORKERS = 4
MIGRATIONS = 4  # live migrations leaving this node at once
POLL = 1.0  # seconds between looks at a guest asked to shut down (its events come sooner)
NETWORK_WAIT = 1.0  # seconds between looks at a VM whose network this node is still building
NETWORK_WAIT_MAX = 60.0  # then the VM fails, naming the network


@dataclass(frozen=True)
class Look:
    """What a step read of a VM: its writes are guarded by the version of its state."""

    uuid: str
    name: str
    version: int


@dataclass(frozen=True)
class Shutdown:
    """An ACPI request sent: for which state version, and until when the guest may take."""

    version: int
    deadline: float


class VmController:
    def __init__(
        self,
        zk: ZKHandler,
        name: str,
        config: Config,
        view: CachedView,
        registered: threading.Event,
    ):
        self.zk = zk  # what a step acts on: read from Zookeeper itself, with versions
        # set while this daemon is registered in its current session: only then may it start a
        # VM (a node that was silent may have been declared dead and its VMs recovered; the
        # recovery requires the node's liveness node to be absent)
        self.registered = registered
        self.view = view  # figures and the console: from memory
        self.name = name
        self.config = config
        self.hypervisor: HypervisorDriver | None = None
        self.disks = VmDisks(zk, config)  # its RBD disks' secret and completion
        self.controller = Controller(
            "vm",
            self._step,
            workers=WORKERS,
            resync=self._resync,
            resync_interval=config.get("timers.keepalive_interval"),
        )
        self._migration_slots = threading.BoundedSemaphore(MIGRATIONS)
        self._connect_lock = threading.Lock()
        # keyed by VM; each read and written only by that VM's step (one worker at a time)
        self._migrations: dict[str, Future[str | None]] = {}  # -> error message, None: done
        self._shutdowns: dict[str, Shutdown] = {}
        self._marked: set[str] = set()  # domains here known to carry this cluster's mark
        self._network_wait: dict[str, float] = {}  # VMs waiting for their networks: since
        self._assigned: dict[str, str] = {}  # VM -> its node, kept from the mirror
        self._assigned_lock = threading.Lock()
        self._ignored: set[str] = set()  # libvirt domains that are not this cluster's
        self._stop = threading.Event()

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        for uuid in self.view.children("base.domains"):
            self._on_change(uuid)
        self.controller.start()
        threading.Thread(target=self._console_loop, name="vm-console", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.controller.stop()
        if self.hypervisor is not None:
            self.hypervisor.close()

    def _connect(self) -> HypervisorDriver | None:
        """The libvirt connection, opened on first use (by a step or the resync)."""
        with self._connect_lock:
            if self.hypervisor is None:
                try:
                    self.hypervisor = Hypervisor(self.config.get("libvirt.uri"), self.enqueue)
                    log.info("connected to libvirt at %s", self.hypervisor.uri)
                    self.disks.define_secret(self.hypervisor)
                except PvcError as exc:
                    log.error("%s; VMs on this node wait until libvirt answers", exc.message)
            return self.hypervisor

    def leftovers(self) -> list[str] | None:
        """The pvc VMs active here that are not meant to run here (the leftovers of a fence,
        until their steps destroy them); None while libvirt does not answer."""
        hypervisor = self._connect()
        if hypervisor is None:
            return None
        try:
            active = [uuid for uuid, state in hypervisor.domains().items() if state in RUNNING]
        except PvcError:
            return None
        found = []
        for uuid in active:
            name, node, state = self.view.read_many(
                [("domain", uuid), ("domain.node", uuid), ("domain.state", uuid)]
            )
            if name is not None and (node != self.name or state not in SHOULD_RUN):
                found.append(name)
        return found

    # --- feeding the queue ------------------------------------------------------------------

    def enqueue(self, uuid: str) -> None:
        self.controller.enqueue(uuid)

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        parts = path.split("/")  # /domains/<uuid>[/<key>]
        if len(parts) < 3 or resolve("base.domains")[0] != f"/{parts[1]}":
            return
        uuid = parts[2]
        if len(parts) == 3:
            if data is None:  # removed: its domain goes if it runs here
                self._assigned.pop(uuid, None)
                self.enqueue(uuid)
        elif data is None:
            return  # a key of a VM being removed (its own removal follows)
        elif len(parts) == 4 and parts[3] in WATCHED_KEYS:
            self._on_change(uuid)

    def _on_change(self, uuid: str) -> None:
        """A VM's state, node or report changed: this node acts if it is or was its node. The
        node is read from the mirror (already current when it calls), under a lock, so the
        start-up scan and the listener cannot put an older node over a newer one."""
        with self._assigned_lock:
            node = self.view.read(("domain.node", uuid)) or ""
            previous = self._assigned.get(uuid)
            self._assigned[uuid] = node
        if self.name in (node, previous):
            self.enqueue(uuid)

    def _resync(self) -> set[str]:
        """What is assigned here or runs here: the others are other nodes' business."""
        mine = {uuid for uuid, node in list(self._assigned.items()) if node == self.name}
        hypervisor = self._connect()
        if hypervisor is None:
            return mine
        try:
            return mine | set(hypervisor.domains())
        except PvcError as exc:
            log.warning("VM resync: %s", exc.message)
            return mine

    def _console_loop(self) -> None:
        """Every second, the tail of each local VM's console log goes to Zookeeper if it
        changed, so `pvc vm log` works from anywhere."""
        lines = self.config.get("vm.console_log_lines")
        sent: dict[str, str] = {}
        while not self._stop.wait(1.0):
            if self.hypervisor is None:
                continue
            try:
                known = set(self.view.children("base.domains"))
                for uuid, state in self.hypervisor.domains().items():
                    path = self.hypervisor.console_file(uuid) if uuid in known else None
                    if state not in RUNNING or path is None:
                        continue
                    text = tail(path, lines)
                    if text is not None and sent.get(uuid) != text:
                        self.zk.write({("domain.console_log", uuid): text})
                        sent[uuid] = text
            except PvcError as exc:
                log.debug("console capture: %s", exc.message)

    # --- one step ---------------------------------------------------------------------------

    def _step(self, uuid: str) -> float | None:
        if self._connect() is None:
            return None  # the resync comes back to it
        try:
            return self.reconcile(uuid)
        except ConcurrentChange:
            return 0.0
        except PvcError as exc:
            log.warning("VM %s: %s", uuid, exc.message)
            return None

    def reconcile(self, uuid: str) -> float | None:
        """One step for the VM; the delay after which to look again, if it must."""
        assert self.hypervisor is not None
        migration = self._migrations.get(uuid)
        if migration is not None and not migration.done():
            return None  # a live migration in flight: its end queues the VM
        failed_migration = self._migrations.pop(uuid).result() if migration else None
        here = self.hypervisor.state(uuid)
        state, version = self.zk.read_versioned(("domain.state", uuid))
        name, node, observed = self.zk.read_many(
            [("domain", uuid), ("domain.node", uuid), ("domain.observed", uuid)]
        )
        running_here = here in RUNNING
        if not running_here:
            self._marked.discard(uuid)
        asked = self._shutdowns.get(uuid)
        if asked is not None and (not running_here or asked.version != version):
            del self._shutdowns[uuid]  # off, or asked something else since
        if name is None:
            if here is not None:
                self._without_vm(uuid)
            return None
        look = Look(uuid, name, version)
        observed = observed or {}
        reported_here = observed.get("node") == self.name and observed.get("state") in RUNNING
        if node != self.name:
            if running_here:
                if state == "migrate":
                    return self._send(look, node, failed_migration)
                log.warning("VM %s runs here but belongs on %s; destroying it", name, node)
                self._destroy(look)
            elif reported_here:
                self._report(uuid, "shutoff")  # it stopped here while assigned elsewhere
            return None
        if state == "migrate" and here == "paused":
            return None  # an incoming live migration: it has arrived only once it runs here
        if state in ("start", "migrate"):
            if running_here:
                self._ensure_marked(look)
                if here == "paused" and state == "start":
                    self._resume(look)
                self._report(uuid, "running")
                if state == "migrate":
                    self._set(look, {"domain.state": "start"})
                    log.info("VM %s arrived", name)
            elif observed.get("node") not in (None, self.name) and observed.get("state") in RUNNING:
                return None  # the sender still runs it; its report will wake us
            else:
                return self._start(look)
        elif state == "restart":
            if running_here:
                again = self._ask_to_shut_down(look)
                if again is not None:
                    return again
                self._destroy(look)
            self._start(look)
            self._set(look, {"domain.state": "start"})
        elif state == "shutdown":
            return self._shutdown(look, running_here, reported_here)
        elif state in ("stop", "disable", "fail"):
            if running_here:
                self._destroy(look)
            elif reported_here:
                self._report(uuid, "shutoff")
        # state provision: its task builds the VM (its volumes may not exist yet): left alone
        return None

    # --- actions ----------------------------------------------------------------------------

    def _start(self, look: Look) -> float | None:
        """Starts the VM here; the delay to look again while its networks are being built."""
        assert self.hypervisor is not None
        if not self.registered.is_set():
            log.info("VM %s waits: this daemon is not registered in its session yet", look.name)
            return None  # the resync comes back to it
        try:
            stored = self.zk.read(("domain.xml", look.uuid))
            waiting, failed = network_vms.unbuilt(self.zk, self.name, stored)
            if failed:
                raise InvalidInput("; ".join(failed))
            if waiting and self._network_wait.setdefault(look.uuid, time.monotonic()) > (
                time.monotonic() - NETWORK_WAIT_MAX
            ):
                log.info("VM %s waits for network %s on this node", look.name, waiting[0])
                return NETWORK_WAIT
            self._network_wait.pop(look.uuid, None)
            if waiting:
                raise InvalidInput(f"network {waiting[0]} was not built on {self.name} in time")
            xml = self.disks.completed(stored)
            self.hypervisor.start(xml, cluster.identity(self.zk))
        except (HypervisorError, InvalidInput, CephError) as exc:
            log.error("VM %s failed to start: %s", look.name, exc.message)
            reason = one_line(exc.message)
            self._set(look, {"domain.state": "fail", "domain.failed_reason": reason})
            return None
        self._marked.add(look.uuid)
        log.info("VM %s started", look.name)
        self._report(look.uuid, "running")
        self._set(look, {"domain.failed_reason": ""})
        return None

    def _without_vm(self, uuid: str) -> None:
        """A domain here whose VM Zookeeper does not know: removed if this cluster's (an
        orphan), else left alone."""
        assert self.hypervisor is not None
        owner = self.hypervisor.owner(uuid)
        if owner is not None and owner == cluster.identity(self.zk):
            log.warning("domain %s is this cluster's but its VM is gone: removing it", uuid)
            self.hypervisor.remove(uuid)
            self._marked.discard(uuid)
        elif uuid not in self._ignored:
            self._ignored.add(uuid)
            whose = "another cluster's" if owner else "not marked as any cluster's"
            log.warning("domain %s is %s: leaving it alone", uuid, whose)

    def _ensure_marked(self, look: Look) -> None:
        """Marks a VM's domain running here as this cluster's, unless known to be already; a
        failure is logged and tried again at the next step (the VM's step goes on)."""
        assert self.hypervisor is not None
        if look.uuid in self._marked:
            return
        identity = cluster.identity(self.zk)
        try:
            if self.hypervisor.owner(look.uuid) != identity:
                self.hypervisor.mark(look.uuid, identity)
                log.info("VM %s: its domain is marked as this cluster's now", look.name)
        except HypervisorError as exc:
            log.warning("VM %s: %s", look.name, exc.message)
            return
        self._marked.add(look.uuid)

    def _resume(self, look: Look) -> None:
        """A VM meant to run here, paused here with no migration of ours in flight: a live
        migration away that failed at its switchover (its target was cut off and fenced, and
        recovery gave the VM back to this node). Its target is off by then, so it runs here."""
        assert self.hypervisor is not None
        log.warning("VM %s is paused here but meant to run here; resuming it", look.name)
        self.hypervisor.resume(look.uuid)

    def _shutdown(self, look: Look, running_here: bool, reported_here: bool) -> float | None:
        """Graceful; at the deadline forced off (shutdown_force), or given up with the reason."""
        if running_here:
            again = self._ask_to_shut_down(look)
            if again is not None:
                return again
            if not self.zk.read(("domain.shutdown_force", look.uuid)):
                timeout = self.config.get("timers.vm_shutdown_timeout")
                reason = f"the guest did not shut down within {timeout:g} s; it still runs"
                log.warning("VM %s: %s", look.name, reason)
                self._set(look, {"domain.state": "start", "domain.failed_reason": reason})
                return None
            self._destroy(look)
        elif reported_here:
            self._report(look.uuid, "shutoff")
            log.info("VM %s is off", look.name)
        self._set(look, {"domain.state": "stop"})
        return None

    def _ask_to_shut_down(self, look: Look) -> float | None:
        """Sends the guest the ACPI request once per request (state version); while it runs
        and its deadline is ahead, the delay after which to look again; None once it passed
        (the request is remembered until the guest is off or the state changes, so a failed
        write at the deadline is tried again, not the whole timeout)."""
        assert self.hypervisor is not None
        now = time.monotonic()
        asked = self._shutdowns.get(look.uuid)
        if asked is None or asked.version != look.version:
            timeout = self.config.get("timers.vm_shutdown_timeout")
            self.hypervisor.shutdown(look.uuid)
            asked = self._shutdowns[look.uuid] = Shutdown(look.version, now + timeout)
            log.info("VM %s: shutdown requested (ACPI); %g s to go off", look.name, timeout)
        if now < asked.deadline:
            return min(POLL, asked.deadline - now)
        return None

    def _destroy(self, look: Look) -> None:
        assert self.hypervisor is not None
        self.hypervisor.destroy(look.uuid)
        self._shutdowns.pop(look.uuid, None)  # off: whatever was asked of it is done
        self._report(look.uuid, "shutoff")
        log.info("VM %s stopped", look.name)

    def _send(self, look: Look, target: str, failed_migration: str | None) -> float | None:
        """Sends the VM to `target`: a live migration on a thread of its own, or (the method
        says shutdown, or the live migration failed) shutdown-and-start."""
        method = self.zk.read(("domain.migration_method", look.uuid)) or "live"
        if method == "live" and failed_migration is None and look.uuid not in self._shutdowns:
            peer_uri, address = self._peer(target)
            migration: Future[str | None] = Future()
            self._migrations[look.uuid] = migration
            migration.add_done_callback(lambda _: self.enqueue(look.uuid))
            threading.Thread(
                target=self._migrate,
                args=(migration, look, target, peer_uri, address),
                name=f"vm-migrate-{look.uuid[:8]}",
                daemon=True,
            ).start()
            return None
        again = self._ask_to_shut_down(look)
        if again is not None:
            return again
        self._destroy(look)
        return None

    def _migrate(
        self,
        migration: Future[str | None],
        look: Look,
        target: str,
        peer_uri: str,
        address: str | None,
    ) -> None:
        """One live migration, on a thread of its own; `migration` ends with its error message,
        or None if the VM moved."""
        assert self.hypervisor is not None
        downtime = self.config.get("vm.migration_max_downtime")
        try:
            with self._migration_slots:
                started = time.monotonic()
                self.hypervisor.migrate(look.uuid, peer_uri, address, downtime)
            seconds = time.monotonic() - started
            log.info("VM %s migrated live to %s in %.1f s", look.name, target, seconds)
            migration.set_result(None)
        except HypervisorError as exc:
            log.warning("VM %s: %s; shutting it down to start it there", look.name, exc.message)
            migration.set_result(exc.message)
        except Exception as exc:  # the step that looks at the result logs and retries it
            migration.set_exception(exc)

    def _peer(self, node: str) -> tuple[str, str | None]:
        static = self.zk.read(("node.static", node)) or {}
        return static.get("libvirt_uri") or f"qemu+tcp://{node}/system", static.get("address")

    def _report(self, uuid: str, state: str) -> None:
        """Records what runs here; a "shutoff" replaces only this node's own report."""
        observed, version = self.zk.read_versioned(("domain.observed", uuid))
        observed = observed or {}
        if observed.get("node") == self.name and observed.get("state") == state:
            return
        if state not in RUNNING and observed.get("node") not in (None, self.name):
            return  # another node reports it: that report stands
        report = {"node": self.name, "state": state, "at": round(time.time(), 3)}
        self.zk.write(
            {("domain.observed", uuid): report}, expect={("domain.observed", uuid): version}
        )

    def _set(self, look: Look, values: dict[str, Any]) -> None:
        """Writes VM keys, guarded by the state this step acted on: if a user changed the state
        meanwhile, nothing is written and the VM is looked at again."""
        expect = {("domain.state", look.uuid): look.version}
        self.zk.write({(key, look.uuid): value for key, value in values.items()}, expect=expect)

    # --- figures for the keepalive -----------------------------------------------------------

    def figures(self) -> dict[str, int]:
        """What runs here (libvirt) and what is assigned here (Zookeeper), for the keepalive."""
        if self.hypervisor is None:
            return {}
        known = set(self.view.children("base.domains"))
        running = [
            uuid
            for uuid, state in self.hypervisor.domains().items()
            if state in RUNNING and uuid in known  # pvc's VMs only
        ]
        assigned = [uuid for uuid, node in list(self._assigned.items()) if node == self.name]
        keys = ("domain.memory", "domain.vcpus")
        values = self.view.read_many([(key, uuid) for uuid in running for key in keys])
        provisioned = self.view.read_many([("domain.memory", uuid) for uuid in assigned])
        return {
            "vms_running": len(running),
            "vms_total": len(assigned),
            "mem_allocated": sum(value or 0 for value in values[0::2]),
            "vcpus_allocated": sum(value or 0 for value in values[1::2]),
            "mem_provisioned": sum(value or 0 for value in provisioned),
        }


def tail(path: str, lines: int) -> str | None:
    """The last `lines` lines of a file (reading at most 256 KiB from its end)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 262144))
            data = handle.read()
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace").replace("\r", "")
    return "\n".join(text.splitlines()[-lines:])
