"""The storage fence test (issue 11, item 9), on real daemons, libvirtds, BMCs and Ceph: a node
whose daemon and guest are frozen is fenced, its RBD-backed VM recovered on the other node;
then the frozen guest is thawed: its writes fail (its node's address is blocklisted) while the
recovered VM's data stays intact, checked by content on the volume. Once the node runs again
and its old QEMU is gone, its daemon lifts the fence.

How the frozen guest survives its fence: the victim's BMC (ipmi_sim) runs `true` for power
off and on, so IPMI reports the chassis off (the fence succeeds and the VM is recovered) while
nothing is killed, as if the machine's power were cut but its storage client, somehow, were
not: exactly what the storage fence must make harmless. The whole node is frozen (SIGSTOP of
every process in its namespace: daemon, watchdog, libvirtd, QEMU), so its watchdog cannot
self-fence the guest either; then only its QEMU is thawed (SIGCONT), so neither its daemon nor
its watchdog destroys the guest before it tries to write.
"""

import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from pvc.ops import storage_fence
from tests.chaos.node_faults import NodeFaults, _argv, processes_in
from tests.conftest import free_port
from tests.integration.test_storage_vm_disks import (
    POOL,
    Rbd,
    add_volume,
    api,
    disk_ticks,
    rbd_disk,
)
from tests.integration.test_vm_real import until
from tests.ipmi_bmcs import Bmcs
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.local_cluster import LocalCluster


@pytest.fixture
def rig(tmp_path_factory, ceph_service) -> Iterator[tuple]:
    ceph_service.ceph("osd", "pool", "create", POOL, "8")
    ceph_service.ceph("osd", "pool", "application", "enable", POOL, "rbd")
    workdir = tmp_path_factory.mktemp("rbdfence")  # short: it holds the libvirtd sockets
    # timers that a machine loaded by other tests does not mistake for a death; detection
    # speed is not what this test is about
    cluster = LocalCluster(workdir, 2, prefix="pvcf", subnet="10.221.0", zk_port=free_port(),
                           session_timeout=6.0)  # fmt: skip
    libvirt = LibvirtNodes(workdir / "libvirt")
    bmcs = Bmcs(workdir / "bmc")
    faults = NodeFaults(cluster, libvirt)
    volumes = zk = None
    try:
        cluster.up()
        cluster.use_libvirt(libvirt.start_cluster(cluster))
        cluster.use_ceph(ceph_service)
        cluster.settings["timers"] = {"fence_intervals": 8, "suicide_intervals": 12}
        cluster.settings["fencing"] = {"failed_fence": "migrate"}
        for name in cluster.names:
            # power off and on succeed and kill nothing (see the module docstring)
            bmc = bmcs.start(name, "true", "true", address=f"{cluster.subnet}.1")
            ipmi = {"host": bmc.host, "port": bmc.port, "user": bmc.user, "password": bmc.password}
            cluster.node_settings[name] = {"ipmi": ipmi}
            cluster.write_config(name)
        cluster.start_all()
        volumes = Rbd(ceph_service)
        zk = cluster.running_observer(60)
        yield cluster, volumes, zk, faults
    finally:
        for name in cluster.names:
            faults.thaw(name)
        if zk is not None:
            zk.close()
        faults.close()
        cluster.down()
        libvirt.stop()
        bmcs.stop()
        if volumes is not None:
            volumes.close()
        ceph_service.ceph("osd", "pool", "delete", POOL, POOL, "--yes-i-really-really-mean-it",
                          check=False)  # fmt: skip


def qemu_pids(cluster: LocalCluster, node: str) -> list[int]:
    return [
        pid
        for pid in processes_in(cluster.namespace(node))
        if b"qemu-system" in b" ".join(_argv(pid)[:1])
    ]


def test_a_frozen_node_is_fenced_and_its_thawed_guest_cannot_write(rig, tmp_path):
    cluster, volumes, zk, faults = rig
    primary = zk.read("base.config.primary_node")
    victim = next(name for name in cluster.names if name != primary)
    add_volume(zk, volumes, "fenced")
    console_log = tmp_path / "console.log"  # both guests append to it (each node's QEMU)
    xml = linux_domain_xml("fencee", str(uuid.uuid4()), build_guest(), console_log)
    xml = xml.replace("<devices>", "<devices>" + rbd_disk(f"{POOL}/fenced"), 1)
    api(cluster, "POST", "/vm", {"xml": xml, "node": victim})
    api(cluster, "POST", "/vm/fencee/state", {"state": "start"})

    def console() -> str:
        return console_log.read_text(errors="replace") if console_log.exists() else ""

    until(lambda: console().count("disk tick") >= 3, 120, "the guest to write its disk")
    address = zk.read(("node.storage_address", victim))
    assert address == f"{cluster.subnet}.{10 + cluster.names.index(victim) + 1}"

    frozen = faults.freeze(victim, whole=True)  # daemon, watchdog, libvirtd, QEMU
    assert qemu_pids(cluster, victim)
    old = disk_ticks(volumes.sectors("fenced"))
    (old_boot,) = old
    # fenced (IPMI says off), storage fenced, recovered on the primary, where it boots again
    until(lambda: (api(cluster, "GET", "/vm/fencee")["observed"] or {}).get("node") == primary
          and api(cluster, "GET", "/vm/fencee")["observed"]["state"] == "running", 90,
          "the recovery")  # fmt: skip
    events = [entry["event"] for entry in zk.read(("node.fence_log", victim))]
    assert events[-3:] == ["fenced", "storage-fence", "fence-complete"], events
    entry = storage_fence.entry_for(address)
    assert zk.read(("node.storage_fence", victim))["addr"] == entry

    def new_ticks() -> list[int]:
        return [ticks for boot, ticks in disk_ticks(volumes.sectors("fenced")).items()
                if boot != old_boot] or [[]]  # fmt: skip

    until(lambda: len(new_ticks()[0]) >= 3, 120, "the recovered guest to write its disk")

    # thaw the old guest only: it runs on, and every write it tries fails
    for pid in qemu_pids(cluster, victim):
        os.kill(pid, signal.SIGCONT)
    until(lambda: "disk write failed" in console(), 60, "the thawed guest to try a write")
    time.sleep(3)  # a few more of its ticks try
    after = disk_ticks(volumes.sectors("fenced"))
    assert after[old_boot] == old[old_boot]  # not one sector more from the fenced guest
    (recovered,) = [ticks for boot, ticks in after.items() if boot != old_boot]
    assert recovered == list(range(len(recovered)))  # intact: every tick, in order
    failed = re.findall(r"disk write failed (\d+)", console())
    assert failed and int(failed[0]) == old[old_boot][-1] + 1  # right where it stopped

    # the node comes back: its daemon destroys the old guest, then lifts the fence
    faults.thaw(victim)
    assert frozen
    until(lambda: zk.read(("node.storage_fence", victim)) is None, 90, "the fence to be lifted")
    assert entry not in [item["addr"] for item in volumes_blocklist(volumes)]
    assert not qemu_pids(cluster, victim)
    assert (api(cluster, "GET", "/vm/fencee")["observed"] or {}).get("node") == primary
    api(cluster, "POST", "/vm/fencee/state", {"state": "stop"})


def volumes_blocklist(volumes: Rbd) -> list[dict]:
    code, out, _ = volumes.cluster.mon_command(
        json.dumps({"prefix": "osd blocklist ls", "format": "json"}), b"", timeout=10
    )
    assert code == 0
    return json.JSONDecoder().raw_decode(out.decode())[0]
