"""The VM controller: makes libvirt on this node match what Zookeeper says about its VMs.

Changes seen in the daemon's mirror of Zookeeper (a VM's state, node or observed report, its
removal) and libvirt lifecycle events put VM UUIDs on a queue, for VMs that are, or were, assigned
here; a resync every `timers.keepalive_interval` puts every VM assigned or running here there.
Workers take one UUID at a time (never the same one on two workers) and take one idempotent
step:

- assigned here, state start: running here -> report it; not here -> start it from the XML in
  Zookeeper, unless another node still reports it running (a migration not finished).
- assigned here, state migrate (receiving): running here -> the migration landed, state start;
  not here and the sender reports it off -> start it here.
- assigned elsewhere, running here, state migrate (sending): live migration to the target
  (unless the method is shutdown), falling back to shutdown-and-start unless the migration
  method forbids it; the receiver starts it only after this node reports it off.
- assigned elsewhere, running here, any other state: a stray; destroy it.
- restart, shutdown (graceful, then error or forced off after `vm_shutdown_timeout`), stop and
  disable act on a VM running here.

The handshake between sender and receiver is `observed` ({node, state}): a node reports
"running" for what runs on it, and "shutoff" only if the report was still its own, so the
receiver never starts a VM its sender has not let go of. A VM is never started on two nodes.
"""

import logging
import queue
import threading
import time
from typing import Any

from pvc.config import Config
from pvc.errors import ConcurrentChange, PvcError
from pvc.ops import vm as vm_ops
from pvc.zk import schema
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler, resolve

log = logging.getLogger("pvc.node.vms")
RUNNING = vm_ops.RUNNING
# A VM's keys whose change may concern this node (their last path component).
WATCHED_KEYS = {
    schema.KEYS[key][0].rsplit("/", 1)[1]
    for key in ("domain.node", "domain.state", "domain.observed")
}
WORKERS = 4


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
        self.hypervisor: Any = None
        self._queue: queue.Queue[str] = queue.Queue()
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._lock = threading.Lock()
        self._removed: set[str] = set()  # VMs undefined while this daemon ran
        self._assigned: dict[str, str] = {}  # VM -> its node, kept from the mirror
        self._assigned_lock = threading.Lock()
        self._ignored: set[str] = set()  # libvirt domains that are not pvc's
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._steps = threading.local()  # per worker: the state version its step acts on

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        for uuid in self.view.children("base.domains"):
            self._on_change(uuid)
        for index in range(WORKERS):
            thread = threading.Thread(target=self._work, name=f"vm-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for target, name in ((self._resync_loop, "vm-resync"), (self._console_loop, "vm-console")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        if self.hypervisor is not None:
            self.hypervisor.close()

    def _connect(self) -> bool:
        if self.hypervisor is not None:
            return True
        from pvc.drivers.libvirt import Hypervisor

        try:
            self.hypervisor = Hypervisor(self.config.get("libvirt.uri"), self.enqueue)
            log.info("connected to libvirt at %s", self.hypervisor.uri)
            return True
        except PvcError as exc:
            log.error("%s; VMs on this node wait until libvirt answers", exc.message)
            return False

    # --- feeding the queue ------------------------------------------------------------------

    def enqueue(self, uuid: str) -> None:
        self._queue.put(uuid)

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        parts = path.split("/")  # /domains/<uuid>[/<key>]
        if len(parts) < 3 or resolve("base.domains")[0] != f"/{parts[1]}":
            return
        uuid = parts[2]
        if len(parts) == 3:
            if data is None:  # removed: destroy it if it runs here
                self._removed.add(uuid)
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

    def _resync_loop(self) -> None:
        interval = self.config.get("timers.keepalive_interval")
        while not self._stop.wait(interval):
            if not self._connect():
                continue
            try:
                # what is assigned here or runs here: the others are other nodes' business
                mine = {uuid for uuid, node in list(self._assigned.items()) if node == self.name}
                uuids = mine | set(self.hypervisor.domains())
            except PvcError as exc:
                log.warning("VM resync: %s", exc.message)
                continue
            for uuid in uuids:
                self.enqueue(uuid)

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

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                uuid = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            with self._lock:
                if uuid in self._busy:
                    self._again.add(uuid)  # its worker runs it once more when done
                    continue
                self._busy.add(uuid)
            try:
                while True:
                    self._step(uuid)
                    with self._lock:
                        if uuid not in self._again:
                            self._busy.discard(uuid)
                            break
                        self._again.discard(uuid)
            except Exception:
                with self._lock:
                    self._busy.discard(uuid)
                    self._again.discard(uuid)
                log.exception("VM %s: reconcile failed; will retry", uuid)

    # --- one step ---------------------------------------------------------------------------

    def _step(self, uuid: str) -> None:
        if not self._connect():
            return
        try:
            self.reconcile(uuid)
        except ConcurrentChange:
            self.enqueue(uuid)
        except PvcError as exc:
            log.warning("VM %s: %s", uuid, exc.message)

    def reconcile(self, uuid: str) -> None:
        here = self.hypervisor.state(uuid)
        state, version = self.zk.read_versioned(("domain.state", uuid))
        name, node, observed = self.zk.read_many(
            [("domain", uuid), ("domain.node", uuid), ("domain.observed", uuid)]
        )
        self._steps.version = version
        running_here = here in RUNNING
        if name is None:
            if running_here and uuid in self._removed:
                log.info("VM %s was removed; destroying it here", uuid)
                self.hypervisor.destroy(uuid)
            elif running_here and uuid not in self._ignored:
                self._ignored.add(uuid)
                log.warning("domain %s is not a pvc VM; leaving it alone", uuid)
            return
        observed = observed or {}
        if node != self.name:
            if running_here:
                if state == "migrate":
                    self._send(uuid, name, node)
                else:
                    log.warning("VM %s runs here but belongs on %s; destroying it", name, node)
                    self._off(uuid, name, destroy=True)
            elif observed.get("node") == self.name and observed.get("state") == "running":
                self._report(uuid, "shutoff")  # it stopped here while assigned elsewhere
            return
        if state == "migrate" and here == "paused":
            return  # an incoming live migration: it has arrived only once it runs here
        if state in ("start", "migrate"):
            if running_here:
                self._report(uuid, "running")
                if state == "migrate":
                    self._set(uuid, {"domain.state": "start"})
                    log.info("VM %s arrived", name)
            elif observed.get("node") not in (None, self.name) and observed.get("state") in RUNNING:
                return  # the sender still runs it; its report will wake us
            else:
                self._start(uuid, name)
        elif state == "restart":
            if running_here:
                self._graceful_off(uuid, name, force=True)
            self._start(uuid, name)
            self._set(uuid, {"domain.state": "start"})
        elif state == "shutdown":
            if running_here:
                self._shutdown(uuid, name)
            else:
                self._set(uuid, {"domain.state": "stop"})
        elif state in ("stop", "disable", "fail"):
            if running_here:
                self._off(uuid, name, destroy=True)
            elif observed.get("node") == self.name and observed.get("state") in RUNNING:
                self._report(uuid, "shutoff")

    # --- actions ----------------------------------------------------------------------------

    def _start(self, uuid: str, name: str) -> None:
        from pvc.drivers.libvirt import HypervisorError

        if not self.registered.is_set():
            log.info("VM %s waits: this daemon is not registered in its session yet", name)
            return  # the resync comes back to it
        xml = self.zk.read(("domain.xml", uuid))
        try:
            self.hypervisor.start(xml)
        except HypervisorError as exc:
            log.error("VM %s failed to start: %s", name, exc.message)
            self._set(uuid, {"domain.state": "fail", "domain.failed_reason": exc.message})
            return
        log.info("VM %s started", name)
        self._report(uuid, "running")
        self._set(uuid, {"domain.failed_reason": ""})

    def _shutdown(self, uuid: str, name: str) -> None:
        force = bool(self.zk.read(("domain.shutdown_force", uuid)))
        if self._graceful_off(uuid, name, force):
            self._set(uuid, {"domain.state": "stop"})
        else:
            timeout = self.config.get("timers.vm_shutdown_timeout")
            reason = f"the guest did not shut down within {timeout:g} s; it still runs"
            self._set(uuid, {"domain.state": "start", "domain.failed_reason": reason})

    def _graceful_off(self, uuid: str, name: str, force: bool) -> bool:
        """ACPI shutdown, waiting up to vm_shutdown_timeout; then destroy if `force`."""
        timeout = self.config.get("timers.vm_shutdown_timeout")
        self.hypervisor.shutdown(uuid)
        deadline = time.monotonic() + timeout
        while self.hypervisor.state(uuid) in RUNNING and time.monotonic() < deadline:
            if self._stop.wait(0.5):
                break
        if self.hypervisor.state(uuid) in RUNNING:
            if not force:
                return False
            self.hypervisor.destroy(uuid)
        self._report(uuid, "shutoff")
        log.info("VM %s is off", name)
        return True

    def _off(self, uuid: str, name: str, destroy: bool) -> None:
        if destroy:
            self.hypervisor.destroy(uuid)
        self._report(uuid, "shutoff")
        log.info("VM %s stopped", name)

    def _send(self, uuid: str, name: str, target: str) -> None:
        from pvc.drivers.libvirt import HypervisorError

        method = self.zk.read(("domain.migration_method", uuid)) or "live"
        if method == "live":
            peer_uri, address = self._peer(target)
            started = time.monotonic()
            try:
                self.hypervisor.migrate(
                    uuid, peer_uri, address, self.config.get("vm.migration_max_downtime")
                )
                log.info(
                    "VM %s migrated live to %s in %.1f s", name, target, time.monotonic() - started
                )
                return
            except HypervisorError as exc:
                log.warning("VM %s: %s; shutting it down to start it there", name, exc.message)
        self._graceful_off(uuid, name, force=True)

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

    def _set(self, uuid: str, values: dict[str, Any]) -> None:
        """Writes VM keys, guarded by the state this step acted on: if a user changed the state
        meanwhile, nothing is written and the VM is looked at again."""
        expect = {("domain.state", uuid): self._steps.version}
        self.zk.write({(key, uuid): value for key, value in values.items()}, expect=expect)

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
