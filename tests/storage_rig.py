"""What the storage tests share: an API on a Zookeeper chroot that uses the session's real
Ceph, the built dist/pvc against it, a pool of the test's own (removed afterwards, with
whatever the test left in it), and VM records that use volumes."""

import json
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

import pytest

from pvc import config as pvc_config
from pvc.ops import cluster
from tests.conftest import ok


@dataclass
class Storage:
    pvc: Any  # runs dist/pvc with the API's configuration
    api: Any  # the ApiServer
    ceph: Any  # the CephService
    zk: Any
    pool: str

    def json(self, *args: str) -> Any:
        return json.loads(ok(self.pvc(*args, "-f", "json")))

    def rbd_info(self, volume: str, pool: str | None = None) -> dict[str, Any] | None:
        result = self.ceph.rbd("info", f"{pool or self.pool}/{volume}", "--format", "json")
        return json.loads(result.stdout) if result.returncode == 0 else None

    def rbd_ls(self, pool: str | None = None) -> list[str]:
        result = self.ceph.rbd("ls", pool or self.pool, "--format", "json")
        return json.loads(result.stdout or "[]")

    def use(self, *volumes: str, state: str = "start", name: str = "vm1") -> str:
        """A VM record whose XML has RBD disks on `volumes` ("pool/volume"), in `state`."""
        vm_uuid = str(uuid_module.uuid4())
        disks = "".join(
            f"<disk type='network' device='disk'><source protocol='rbd' name='{v}'/>"
            "<target dev='vda' bus='virtio'/></disk>"
            for v in volumes
        )
        xml = (
            f"<domain type='kvm'><name>{name}</name><uuid>{vm_uuid}</uuid>"
            f"<memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
            f"<devices>{disks}</devices></domain>"
        )
        self.zk.write(
            {("domain", vm_uuid): name, ("domain.xml", vm_uuid): xml,
             ("domain.state", vm_uuid): state}
        )  # fmt: skip
        return vm_uuid


def ceph_config(ceph_service, **sections: dict) -> pvc_config.Config:
    """A node configuration that uses the session's Ceph (for ops and daemon parts run here),
    with more `sections` if given."""
    return pvc_config.from_dict(
        {"node": {"name": "node1"}, "cluster": {"coordinators": ["node1"]},
         "zookeeper": {"hosts": "127.0.0.1:2181"}, "ceph": ceph_service.settings(),
         "api": {"authentication": {"enabled": False}}, **sections}
    )  # fmt: skip


def remove_ceph_pool(ceph, pool: str) -> None:
    ceph.ceph("osd", "pool", "delete", pool, pool, "--yes-i-really-really-mean-it", check=False)


@pytest.fixture
def storage(ceph_service, start_api, run_pvc, zk):
    """An initialised cluster's API using the real Ceph, and a pool (1 copy) of the test's."""
    cluster.initialize(zk)
    api = start_api(ceph=ceph_service.settings())
    pool = f"p{uuid_module.uuid4().hex[:8]}"

    def pvc(*args: str, **kwargs):
        return run_pvc("--config", str(api.config_path), *args, **kwargs)

    ok(pvc("storage", "pool", "add", pool, "8", "--copies", "1", "--mincopies", "1"))
    yield Storage(pvc, api, ceph_service, zk, pool)
    for name in ceph_service.ceph("osd", "pool", "ls"):
        if name == pool or name.startswith(pool):
            remove_ceph_pool(ceph_service, name)
