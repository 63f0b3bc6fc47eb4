"""This node's OSDs: every OSD recorded as this node's is activated and its daemon runs.

A node-wide controller (pvc.node.controller) started by a daemon with `ceph.enabled`. Keys are
OSD ids: the mirror queues one when its record changes, and a resync every keepalive interval
names every OSD of this node. The step on an OSD of this node whose
daemon does not run: activate its disk here (the tmpfs folder lives in this daemon's mount
namespace, so a new daemon activates again) and start it through the process seam
(pvc.drivers.osd_process), listening on this node's storage address, in its CRUSH host.
An OSD that dies is started again at the next look, with a backoff (2 s doubling to 5 min)
while it keeps dying within HEALTHY_RUN seconds of its start.

OSDs held by a job (an add before its record exists, a remove while it stops the daemon:
`holding`) are left alone. (The address Ceph sees this node's clients come from is published
as `node.storage_address` by pvc.node.storage_client; `pvc storage osd add` requires it.)
At the daemon's stop, supervised OSDs stop with it (the seam's `stop_all`).
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pvc.drivers.contracts import CephDriver, OsdDeviceDriver, OsdProcessDriver
from pvc.errors import PvcError
from pvc.node.controller import Controller
from pvc.zk.cache import CachedView
from pvc.zk.handler import resolve

log = logging.getLogger("pvc.node.osds")
HEALTHY_RUN = 60.0
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0


class OsdController:
    def __init__(
        self,
        view: CachedView,
        name: str,
        ceph: CephDriver,
        devices: OsdDeviceDriver,
        processes: OsdProcessDriver,
        interval: float,
    ):
        self.view = view
        self.name = name
        self.ceph = ceph
        self.devices = devices
        self.processes = processes
        self._address: str | None = None
        self._held: set[int] = set()
        self._started: dict[int, float] = {}  # OSD id -> when this daemon last started it
        self._failures: dict[int, int] = {}
        self._not_before: dict[int, float] = {}
        self._lock = threading.Lock()
        self._root = resolve("base.ceph.osds")[0] + "/"
        self.controller = Controller(
            "osds", self._step, resync=self._every_osd, resync_interval=interval
        )

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
        self.processes.stop_all()

    # --- what jobs use ------------------------------------------------------------------------

    @contextmanager
    def holding(self, osd_id: int) -> Iterator[None]:
        """Leaves the OSD to the caller (a job) while the block runs."""
        with self._lock:
            self._held.add(osd_id)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(osd_id)
            self.controller.enqueue(str(osd_id))

    def address(self) -> str:
        """The address this node reaches Ceph from (what its OSDs listen on)."""
        if self._address is None:
            self._address = self.ceph.client_address()
        return self._address

    # --- feeding ------------------------------------------------------------------------------

    def _every_osd(self) -> list[str]:
        ids = self.view.children("base.ceph.osds")
        return [i for i in ids if self.view.read(("osd.node", i)) == self.name]

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        if path.startswith(self._root):
            self.controller.enqueue(path[len(self._root) :].split("/", 1)[0])

    # --- the step -----------------------------------------------------------------------------

    def _step(self, key: str) -> float | None:
        if not key.isdigit():
            return None
        osd_id = int(key)
        node, device, fsid = self.view.read_many(
            [("osd.node", key), ("osd.device", key), ("osd.fsid", key)]
        )
        with self._lock:
            if node != self.name or osd_id in self._held or not device or not fsid:
                return None
        if self.processes.running(osd_id):
            return None
        wait = self._backoff(osd_id)
        if wait > 0:
            return wait
        try:
            self.devices.activate(device, osd_id, fsid)
            self.processes.start(osd_id, self.name, self.address())
        except PvcError as exc:
            log.warning("osd.%d could not start: %s", osd_id, exc.message)
            self._started[osd_id] = time.monotonic()
            return self._backoff(osd_id)
        self._started[osd_id] = time.monotonic()
        return None

    def _backoff(self, osd_id: int) -> float:
        """Seconds before the OSD may start again (0: now). A start that did not last
        HEALTHY_RUN seconds doubles the wait; one that did resets it."""
        now = time.monotonic()
        started = self._started.pop(osd_id, None)
        if started is not None:
            if now - started < HEALTHY_RUN:
                failures = self._failures[osd_id] = self._failures.get(osd_id, 0) + 1
                delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (failures - 1))
                self._not_before[osd_id] = now + delay
                log.warning(
                    "osd.%d stopped after %.0f s; next start in %g s", osd_id, now - started, delay
                )
            else:
                self._failures.pop(osd_id, None)
                log.warning("osd.%d stopped; starting it again", osd_id)
        return max(0.0, self._not_before.get(osd_id, 0.0) - now)
