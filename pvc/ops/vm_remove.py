"""Removing a VM with its disks (`pvc vm remove VM --delete-disks`, DELETE /vm/<vm>?delete_
disks=true): the definition goes first, in its own transaction (pvc.ops.vm.undefine), then each
of its RBD volumes, with their snapshots (pvc.ops.storage_volume.remove).

Refused before anything changes: a VM that runs (its volumes are open: stop it first), a VM
sharing a volume with another VM (that VM still needs it), and a VM a provision task still
builds (pvc.ops.vm.running_for_removal); one in state `provision` that no task builds any more
goes with those of its volumes that were made. A volume that cannot be removed after the
definition is gone is named in the answer, so the administrator can remove it.
"""

from typing import Any

from pvc.config import Config
from pvc.errors import Conflict, PvcError
from pvc.ops import storage_volume, vm, vm_volumes
from pvc.zk.handler import ZKHandler


def remove_with_disks(zk: ZKHandler, config: Config, name: str) -> dict[str, Any]:
    uuid = vm.find(zk, name)
    record = vm.read_record(zk, uuid, name)
    if vm.running_for_removal(zk, record):
        raise Conflict(f"VM '{record['name']}' is running; stop it before deleting its disks")
    volumes = vm_volumes.volumes_of(zk.read(("domain.xml", uuid)))
    if record["state"] == vm.PROVISIONING:  # its task may have ended before making them all
        volumes = [v for v in volumes if zk.exists(("volume", *v.split("/", 1)))]
    for volume in volumes:
        pool, _, image = volume.partition("/")
        shared = [user for user in vm_volumes.users(zk, pool, image) if user != record["name"]]
        if shared:
            raise Conflict(f"volume '{volume}' is also used by VM(s) {', '.join(shared)}")
    answer = vm.undefine(zk, name)
    removed, left = [], []
    for volume in volumes:
        pool, _, image = volume.partition("/")
        try:
            storage_volume.remove(zk, config, pool, image)
            removed.append(volume)
        except PvcError as exc:
            left.append(f"{volume} ({exc.message})")
    answer["volumes_removed"] = removed
    if left:
        answer["message"] += f"; volumes NOT removed: {'; '.join(left)}"
    elif removed:
        answer["message"] += f" with its volumes {', '.join(removed)}"
    return answer
