"""This node as a Ceph client: its storage address, and the lifting of its storage fence.

A node-wide controller (pvc.node.controller) with one key, the node's name, run by a daemon
with `ceph.enabled`; a resync every keepalive interval and changes to the node's fence record
or daemon state queue it. Its step, never on the keepalive's thread (a Ceph call may take up
to `ceph.timeout`):
- publishes the address Ceph sees this node's clients come from (`Ceph.client_address()`) in
  `node.storage_address`, once per daemon run (again if it changed): what the fence monitor
  blocklists when this node is declared dead (pvc.ops.storage_fence);
- lifts this node's storage fence (`node.storage_fence`) once the daemon is in `run` again
  and none of its old QEMU processes is left (`leftovers()`: the VM controller destroys what
  runs here but belongs elsewhere). Until then a librbd client of this node could still
  write with its old handles, were it unblocked; after it, new clients start clean.
A Ceph that does not answer fails the step; the resync tries again.
"""

import logging
from collections.abc import Callable

from pvc.drivers.contracts import CephDriver
from pvc.errors import PvcError
from pvc.node.controller import Controller
from pvc.ops import storage_fence
from pvc.zk.cache import CachedView
from pvc.zk.handler import ZKHandler, resolve

log = logging.getLogger("pvc.node.storage")


class StorageClient:
    """See the module docstring. `leftovers()` names the domains running here that pvc does
    not want here (None: not known now, e.g. libvirt does not answer)."""

    def __init__(
        self,
        zk: ZKHandler,
        view: CachedView,
        name: str,
        ceph: CephDriver,
        leftovers: Callable[[], list[str] | None],
        interval: float,
    ):
        self.zk = zk
        self.view = view
        self.name = name
        self.ceph = ceph
        self.leftovers = leftovers
        self.interval = interval
        self._published: str | None = None
        self._watched = {
            resolve(("node.storage_fence", name))[0],
            resolve(("node.state.daemon", name))[0],
        }
        self.controller = Controller(
            "storage-client", self._step, resync=lambda: [name], resync_interval=interval
        )

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        if path in self._watched:
            self.controller.enqueue(self.name)

    def _step(self, _key: str) -> float | None:
        try:
            self._publish_address()
            return self._lift_fence()
        except PvcError as exc:
            log.warning("storage client: %s", exc.message)
            return self.interval

    def _publish_address(self) -> None:
        if self._published is not None:
            return
        address = self.ceph.client_address()
        if self.zk.read(("node.storage_address", self.name)) != address:
            self.zk.write({("node.storage_address", self.name): address})
        self._published = address
        log.info("storage address %s published", address)

    def _lift_fence(self) -> float | None:
        if not self.zk.exists(("node.storage_fence", self.name)):
            return None
        if self.zk.read(("node.state.daemon", self.name)) != "run":
            return None  # its change queues this again
        leftovers = self.leftovers()
        if leftovers is None or leftovers:
            log.info("storage fence stays: old VM processes still here (%s)", leftovers)
            return self.interval
        done = storage_fence.lift(self.zk, self.ceph, self.name)
        if done:
            log.warning("%s", done)
        return None
