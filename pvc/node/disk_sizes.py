"""Guests see their RBD volumes grow: the node tells QEMU (libvirt `blockResize`) when a
volume a VM running here uses is larger than the disk the guest has.

A node-wide controller (pvc.node.controller) keyed by "pool/volume", started with the VM
controller on a node with `ceph.enabled`. A change of a volume's `volume.stats` (its `size`,
written by `pvc storage volume resize`) queues it; a resync every keepalive interval names
every volume of the VMs running here (so a VM that arrives after a resize, or a step that
failed, is caught up). Its step asks libvirt to grow each disk backed by the volume in each
VM running here to the recorded size (`grow_disk`: only ever larger; a disk already that size
is left alone), once per VM and size: the size each VM was given is kept in memory, so the
resync does not query QEMU every interval (a daemon that restarts asks once more).
"""

import logging

from pvc.errors import PvcError
from pvc.node.controller import Controller
from pvc.node.vms import RUNNING, VmController
from pvc.ops import vm_volumes
from pvc.zk.handler import resolve

log = logging.getLogger("pvc.node.disks")


class DiskSizes:
    def __init__(self, vms: VmController, interval: float):
        self.vms = vms
        self.view = vms.view
        self._volumes_root = resolve("base.ceph.volumes")[0]
        # (VM, volume) -> the size QEMU was last told; read and written by the one worker
        self._applied: dict[tuple[str, str], int] = {}
        self.controller = Controller(
            "disk-sizes", self._step, resync=self._resync, resync_interval=interval
        )

    def start(self) -> None:
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        root, _, rest = path.partition(self._volumes_root + "/")
        parts = rest.split("/")
        if not root and data is not None and len(parts) == 3 and parts[2] == "stats":
            self.controller.enqueue(f"{parts[0]}/{parts[1]}")

    def _running_here(self) -> dict[str, tuple[str, ...]]:
        """UUID -> the volumes of each pvc VM running here."""
        hypervisor = self.vms.hypervisor
        if hypervisor is None:
            return {}
        found = {}
        for uuid, state in hypervisor.domains().items():
            if state in RUNNING:
                found[uuid] = vm_volumes.volumes_of(self.view.read(("domain.xml", uuid)))
        return found

    def _resync(self) -> set[str]:
        try:
            return {volume for used in self._running_here().values() for volume in used}
        except PvcError as exc:
            log.warning("disk sizes: %s", exc.message)
            return set()

    def _step(self, volume: str) -> float | None:
        pool, _, name = volume.partition("/")
        size = (self.view.read(("volume.stats", pool, name)) or {}).get("size")
        hypervisor = self.vms.hypervisor
        if not isinstance(size, int) or hypervisor is None:
            return None
        running = self._running_here()
        for uuid, used in running.items():
            if volume not in used or self._applied.get((uuid, volume)) == size:
                continue  # asked QEMU already: a resync does not ask it again every interval
            try:
                if hypervisor.grow_disk(uuid, volume, size):
                    log.info("VM %s: disk %s grown to %d bytes", uuid, volume, size)
                self._applied[(uuid, volume)] = size
            except PvcError as exc:
                log.warning("VM %s: %s", uuid, exc.message)  # the next resync tries again
        for key in [key for key in self._applied if key[0] not in running]:
            del self._applied[key]  # gone from here: asked again if it comes back
        return None
