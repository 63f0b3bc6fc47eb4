"""`pvc vm flush-locks`: breaks the RBD locks on a VM's volumes, for an administrator.

After a storage fence a recovered VM takes its volumes' exclusive locks by itself (librbd
breaks a dead owner's lock); this is for what is left over: a lock an owner holds that is
gone without a fence, or an advisory lock of an older tool. Refused (409) while the VM runs,
or is meant to, on any node: breaking the lock of a live writer would let two write. A volume
of the VM's XML that Ceph does not have is reported, not an error.
"""

import errno
from typing import Any

from pvc.config import Config
from pvc.drivers import ceph, rbd_locks
from pvc.drivers.ceph import CephError
from pvc.errors import Conflict
from pvc.ops import vm as vm_ops
from pvc.zk.store import Store


def flush_locks(store: Store, config: Config, vm: str) -> dict[str, Any]:
    """Breaks every lock on each of the VM's volumes, through this process's Ceph connection
    for `config` (CephUnavailable, 503, without one); {name, uuid, message, volumes:
    [{volume, broken: [owner], missing}]}."""
    uuid = vm_ops.find(store, vm)
    record = vm_ops.read_record(store, uuid, vm)
    name = record["name"]
    if vm_ops.is_running(record):
        where = (record["observed"] or {}).get("node") or record["node"]
        raise Conflict(
            f"VM '{name}' is {record['state']} on {where}: its locks are its own; stop it first"
        )
    connection = ceph.shared(config)
    volumes = []
    for volume in record["volumes"]:
        pool, _, image = volume.partition("/")
        try:
            broken = rbd_locks.break_locks(connection, pool, image)
            volumes.append({"volume": volume, "broken": broken, "missing": False})
        except CephError as exc:
            if exc.errno != errno.ENOENT:
                raise
            volumes.append({"volume": volume, "broken": [], "missing": True})
    count = sum(len(entry["broken"]) for entry in volumes)
    message = f"VM '{name}': {count} lock(s) broken on {len(volumes)} volume(s)"
    return {"name": name, "uuid": uuid, "message": message, "volumes": volumes}
