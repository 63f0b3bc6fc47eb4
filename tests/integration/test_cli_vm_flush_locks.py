"""`pvc vm flush-locks` through the built dist/pvc and a real API, without Ceph (its work on a
real Ceph is in test_storage_vm_disks.py): an unknown VM, a running VM (409) and an API
without Ceph (503) each get one line and exit 1; `vm info` shows the VM's volumes."""

import json

from pvc.ops import cluster
from tests.conftest import fails, ok
from tests.integration.test_cli_vm import UUID1, observe, pvc, vm1  # noqa: F401


def test_flush_locks_refusals_are_one_line(pvc, vm1, zk):  # noqa: F811
    message = fails(pvc("vm", "flush-locks", "nosuch"))
    assert "nosuch" in message and "\n" not in message.strip()
    zk.write({("domain.state", UUID1): "start"})
    observe(zk)
    message = fails(pvc("vm", "flush-locks", "vm1"))
    assert "running" in message or "start" in message
    assert "stop it first" in message
    zk.write({("domain.state", UUID1): "stop"})
    observe(zk, "shutoff")
    message = fails(pvc("vm", "flush-locks", "vm1"))
    assert "Ceph is not configured" in message and "\n" not in message.strip()
    assert cluster.is_initialized(zk)


def test_vm_info_lists_volumes(pvc, tmp_path, zk):  # noqa: F811
    zk.write({("volume", "pool1", "disk1"): ""})
    path = tmp_path / "disky.xml"
    path.write_text(
        "<domain type='qemu'><name>disky</name><uuid>0b6b2f34-7c55-4f43-9a0e-2f6a43f1d0aa</uuid>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type>hvm</type></os><devices><disk type='network' device='disk'>"
        "<source protocol='rbd' name='pool1/disk1'/><target dev='vda' bus='virtio'/></disk>"
        "</devices></domain>"
    )
    ok(pvc("vm", "define", str(path)))
    assert json.loads(ok(pvc("vm", "info", "disky", "-f", "json")))["volumes"] == ["pool1/disk1"]
    assert "pool1/disk1" in ok(pvc("vm", "info", "disky"))
