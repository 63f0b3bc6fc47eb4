"""What this node's VMs need to reach their RBD disks (a node daemon with `ceph.enabled`).

- `define_secret`: the cluster's libvirt Ceph secret (pvc.ops.rbd_disks.secret_uuid) in this
  node's libvirtd, holding the key of `ceph.client` read from `ceph.keyring`; called when the
  VM controller opens libvirt. The key is never logged (a failure names the secret only).
- `completed`: a VM's XML with its RBD disks completed (monitor hosts from `ceph.config_file`,
  the auth with that secret; pvc.ops.rbd_disks) before it starts here.
Without Ceph, both leave things as they are.
"""

import logging

from pvc.config import Config
from pvc.drivers import ceph
from pvc.drivers.contracts import HypervisorDriver
from pvc.errors import PvcError
from pvc.ops import cluster, rbd_disks
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.vms")


class VmDisks:
    def __init__(self, zk: ZKHandler, config: Config):
        self.zk = zk
        self.enabled = bool(config.get("ceph.enabled"))
        self.client = config.get("ceph.client")
        self.keyring = config.get("ceph.keyring")
        self.config_file = config.get("ceph.config_file")

    def define_secret(self, hypervisor: HypervisorDriver) -> None:
        if not self.enabled:
            return
        try:
            identity = cluster.identity(self.zk)
            usage = rbd_disks.secret_usage(identity, self.client)
            secret = rbd_disks.secret_uuid(identity)
            hypervisor.define_ceph_secret(secret, usage, ceph.client_key(self.keyring, self.client))
            log.info("libvirt secret %s for client.%s defined", secret, self.client)
        except PvcError as exc:
            log.error("RBD disks cannot start here: %s", exc.message)

    def completed(self, xml: str) -> str:
        if not self.enabled or "rbd" not in xml:
            return xml
        hosts = rbd_disks.monitor_hosts(ceph.mon_host(self.config_file))
        secret = rbd_disks.secret_uuid(cluster.identity(self.zk))
        return rbd_disks.completed(xml, hosts, self.client, secret)
