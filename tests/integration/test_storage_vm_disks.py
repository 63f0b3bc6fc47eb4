"""VM disks on RBD, the real path: two node daemons with their own libvirtds in their own
namespaces and the session's Ceph. Each daemon defines the cluster's Ceph secret in its
libvirtd; a tiny TCG guest defined with a bare `rbd` disk (no hosts, no auth: its node
completes them) boots, writes its ticks to the disk, live-migrates and keeps writing; the
data from before and after the migration is on the volume (read from the host with librbd).
`vm define`/`modify` refuse a VM whose volumes pvc does not know; `vm info` lists them."""

import contextlib
import json
import re
import urllib.error
import uuid
from collections.abc import Iterator

import pytest
import rados
import rbd

from pvc.drivers.ceph import client_key
from pvc.ops import rbd_disks
from pvc.zk.handler import ZKHandler
from tests.conftest import free_port
from tests.integration import test_vm_real
from tests.integration.test_vm_real import until
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.local_cluster import LocalCluster

POOL = "vmdisks"
SECTOR = 512


class Rbd:
    """The host's own librbd client of the session's Ceph, for setting up and reading volumes."""

    def __init__(self, ceph_service):
        self.cluster = rados.Rados(conffile=str(ceph_service.conf), name="client.admin",
                                   conf={"keyring": str(ceph_service.keyring)})  # fmt: skip
        self.cluster.connect(timeout=10)
        self.ioctx = self.cluster.open_ioctx(POOL)

    def create(self, name: str, size: int = 64 << 20) -> None:
        rbd.RBD().create(self.ioctx, name, size)

    def remove(self, name: str) -> None:
        rbd.RBD().remove(self.ioctx, name)

    def sectors(self, name: str, count: int = 4096) -> list[str]:
        """The text at the start of each of the first `count` sectors (read-only handle)."""
        with rbd.Image(self.ioctx, name, read_only=True) as image:
            data = image.read(0, count * SECTOR)
        return [
            data[i : i + SECTOR].split(b"\0", 1)[0].decode(errors="replace").strip()
            for i in range(0, len(data), SECTOR)
        ]

    def close(self) -> None:
        self.ioctx.close()
        self.cluster.shutdown()


def disk_ticks(sectors: list[str]) -> dict[str, list[int]]:
    """boot id -> the ticks it wrote to the disk, in sector order."""
    found: dict[str, list[int]] = {}
    for text in sectors:
        match = re.fullmatch(r"boot (\w+) tick (\d+)", text)
        if match:
            found.setdefault(match.group(1), []).append(int(match.group(2)))
    return found


def rbd_disk(source: str, target: str = "vda") -> str:
    """A bare RBD disk, as a user writes it: the node adds the monitors and the auth."""
    return (
        "<disk type='network' device='disk'><driver name='qemu' type='raw' cache='writeback'/>"
        f"<source protocol='rbd' name='{source}'/><target dev='{target}' bus='virtio'/></disk>"
    )


def guest_xml(name: str, console_log, disks: list[str]) -> str:
    xml = linux_domain_xml(name, str(uuid.uuid4()), build_guest(), console_log)
    return xml.replace("<devices>", "<devices>" + "".join(disks), 1)


def add_volume(zk, volumes: Rbd, name: str, size: int = 64 << 20) -> None:
    """A real image and the record pvc keeps of it (as `pvc storage volume add` writes it)."""
    volumes.create(name, size)
    zk.write({("volume", POOL, name): "", ("volume.stats", POOL, name): {"size": size}})


@pytest.fixture(scope="module")
def rig(tmp_path_factory, ceph_service) -> Iterator[tuple[LocalCluster, Rbd, ZKHandler]]:
    ceph_service.ceph("osd", "pool", "create", POOL, "8")
    ceph_service.ceph("osd", "pool", "application", "enable", POOL, "rbd")
    workdir = tmp_path_factory.mktemp("rbdvm")  # short: it holds the libvirtd sockets
    local = LocalCluster(workdir, 2, prefix="pvcd", subnet="10.219.0", zk_port=free_port())
    libvirt = LibvirtNodes(workdir / "libvirt")
    volumes = None
    try:
        local.up()
        local.use_libvirt(libvirt.start_cluster(local))
        local.use_ceph(ceph_service)
        local.start_all()
        volumes = Rbd(ceph_service)
        zk = local.running_observer(60)
        yield local, volumes, zk
        zk.close()
    finally:
        local.down()
        libvirt.stop()
        if volumes is not None:
            volumes.close()
        ceph_service.ceph("osd", "pool", "delete", POOL, POOL, "--yes-i-really-really-mean-it",
                          check=False)  # fmt: skip


def console(cluster: LocalCluster, name: str) -> list[str]:
    return api(cluster, "GET", f"/vm/{name}/console?lines=1000")["lines"]


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def api(cluster: LocalCluster, method: str, path: str, params: dict | None = None):
    """One API call; Refused with the API's status and message when it says no."""
    try:
        return test_vm_real.api(cluster, method, path, params)
    except urllib.error.HTTPError as error:
        raise Refused(error.code, json.loads(error.read())["message"]) from None


def refusal(
    cluster: LocalCluster, method: str, path: str, params: dict | None = None
) -> tuple[int, str]:
    """The HTTP status and message of a request the API refuses."""
    try:
        api(cluster, method, path, params)
    except Refused as refused:
        return refused.status, refused.message
    raise AssertionError(f"{method} {path} was not refused")


def test_every_node_defines_the_clusters_ceph_secret(rig, ceph_service):
    import libvirt

    cluster, _, zk = rig
    secret = rbd_disks.secret_uuid(zk.read("base.config.cluster_uuid"))
    for name in cluster.names:
        conn = libvirt.open(cluster.libvirt[name]["uri"])
        try:
            found = conn.secretLookupByUUIDString(secret)
            assert found.usageType() == libvirt.VIR_SECRET_USAGE_TYPE_CEPH
            assert "private='yes'" in found.XMLDesc(0).replace('"', "'")
            with pytest.raises(libvirt.libvirtError):
                found.value()  # private: libvirt never gives the key back
        finally:
            conn.close()
    logs = "".join((cluster.workdir / name / "pvc.log").read_text() for name in cluster.names)
    assert "secret" in logs and client_key(str(ceph_service.keyring), "admin") not in logs


def test_define_refuses_unknown_volumes_and_info_lists_them(rig, tmp_path):
    cluster, volumes, zk = rig
    add_volume(zk, volumes, "known")
    disks = [rbd_disk(f"{POOL}/known"), rbd_disk(f"{POOL}/missing", "vdb")]
    xml = guest_xml("refused", tmp_path / "c.log", disks)
    assert refusal(cluster, "POST", "/vm", {"xml": xml}) == (
        404,
        f"no such volume: {POOL}/missing (create it with pvc storage volume add)",
    )
    bad_name = xml.replace(f"{POOL}/missing", f"{POOL}/-dash")
    status, message = refusal(cluster, "POST", "/vm", {"xml": bad_name})
    assert status == 400 and "POOL/VOLUME" in message
    plain = guest_xml("plain", tmp_path / "l.log", [])
    api(cluster, "POST", "/vm", {"xml": plain})
    assert api(cluster, "GET", "/vm/plain")["volumes"] == []
    with_missing = plain.replace("<devices>", "<devices>" + rbd_disk(f"{POOL}/gone"), 1)
    assert refusal(cluster, "PUT", "/vm/plain", {"xml": with_missing})[0] == 404
    with_known = plain.replace("<devices>", "<devices>" + rbd_disk(f"{POOL}/known"), 1)
    api(cluster, "PUT", "/vm/plain", {"xml": with_known})
    assert api(cluster, "GET", "/vm/plain")["volumes"] == [f"{POOL}/known"]
    api(cluster, "DELETE", "/vm/plain")


def test_an_rbd_backed_guest_writes_migrates_live_and_keeps_its_data(rig, tmp_path):
    cluster, volumes, zk = rig
    add_volume(zk, volumes, "disk0")
    name = "rbdguest"
    xml = guest_xml(name, tmp_path / "console.log", [rbd_disk(f"{POOL}/disk0")])
    api(cluster, "POST", "/vm", {"xml": xml, "node": "node1"})
    assert api(cluster, "GET", f"/vm/{name}")["volumes"] == [f"{POOL}/disk0"]
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})

    def disk_lines() -> list[int]:
        return [int(line.split()[2]) for line in console(cluster, name)
                if line.startswith("disk tick ")]  # fmt: skip

    until(lambda: len(disk_lines()) >= 3, 90, "the guest to write its disk")
    before = disk_lines()[-1]
    api(cluster, "POST", f"/vm/{name}/node", {"action": "migrate", "node": "node2"})

    def migrated():
        observed = api(cluster, "GET", f"/vm/{name}")["observed"] or {}
        return observed.get("node") == "node2" and observed.get("state") == "running"

    until(migrated, 90, "the live migration")
    log = (cluster.workdir / "node1" / "pvc.log").read_text()
    assert "shutting it down to start it there" not in log  # live, no fallback
    until(lambda: disk_lines()[-1] >= before + 3, 60, "disk writes after the migration")
    assert not [line for line in console(cluster, name) if "disk write failed" in line]
    after = disk_lines()[-1]

    written = disk_ticks(volumes.sectors("disk0"))
    assert len(written) == 1  # one boot: the guest never restarted
    (ticks,) = written.values()
    assert ticks[: after + 1] == list(range(after + 1))  # before and after, none lost
    api(cluster, "POST", f"/vm/{name}/state", {"state": "stop"})
    until(lambda: api(cluster, "GET", f"/vm/{name}")["state"] == "stop", 30, "the stop")


def test_flush_locks_breaks_what_a_gone_owner_left_and_only_on_a_vm_that_runs_nowhere(
    rig, tmp_path, ceph_service
):
    cluster, volumes, zk = rig
    add_volume(zk, volumes, "locked")
    add_volume(zk, volumes, "legacy")
    name = "locker"
    disks = [rbd_disk(f"{POOL}/locked"), rbd_disk(f"{POOL}/legacy", "vdb")]
    api(
        cluster, "POST", "/vm", {"xml": guest_xml(name, tmp_path / "c.log", disks), "node": "node2"}
    )
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})
    until(lambda: any(line.startswith("disk tick") for line in console(cluster, name)), 90,
          "the guest to write")  # fmt: skip
    status, message = refusal(cluster, "POST", f"/vm/{name}/locks")
    assert status == 409 and "stop it first" in message
    api(cluster, "POST", f"/vm/{name}/state", {"state": "stop"})
    until(lambda: (api(cluster, "GET", f"/vm/{name}")["observed"] or {}).get("state")
          == "shutoff", 30, "the stop")  # fmt: skip

    # owners gone without a fence: an exclusive lock on the disk the guest wrote (the killed
    # QEMU's, or a client's that never hands it over), an older tool's advisory lock on the
    # other
    owner = Rbd(ceph_service)
    images = [rbd.Image(owner.ioctx, "locked"), rbd.Image(owner.ioctx, "legacy")]
    with contextlib.suppress(rbd.ImageBusy):  # busy: the killed QEMU's lock is still there
        images[0].lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)  # managed: never handed over
    images[1].lock_exclusive("old-tool")
    answer = api(cluster, "POST", f"/vm/{name}/locks")
    for image in images:
        with contextlib.suppress(rbd.Error):  # blocklisted by the break, as a dead owner is
            image.close()
    broken = {entry["volume"]: entry["broken"] for entry in answer["volumes"]}
    assert [kind.split()[0] for kind in broken[f"{POOL}/locked"]] == ["exclusive"]
    assert [kind.split()[:3] for kind in broken[f"{POOL}/legacy"]] == [
        ["advisory", f"client.{owner.cluster.get_instance_id()}", "old-tool"]
    ]
    assert "2 lock(s) broken on 2 volume(s)" in answer["message"]
    for volume in ("locked", "legacy"):
        with rbd.Image(volumes.ioctx, volume) as check:
            assert list(check.lock_get_owners()) == [] and not check.list_lockers()
    owner.close()
    # the VM starts again and takes its lock cleanly: its new boot writes its disk
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})

    def written_since_boot() -> int:
        lines = "\n".join(console(cluster, name)).split("pvc-guest booted")
        return len(lines) >= 3 and lines[-1].count("disk tick")

    until(lambda: written_since_boot() >= 2, 90, "the restarted guest to write")
    api(cluster, "POST", f"/vm/{name}/state", {"state": "stop"})


def test_a_volume_grown_under_a_running_guest_reaches_it(rig, tmp_path):
    import libvirt

    cluster, volumes, zk = rig
    add_volume(zk, volumes, "growing", 64 << 20)
    name = "grower"
    xml = guest_xml(name, tmp_path / "console.log", [rbd_disk(f"{POOL}/growing")])
    api(cluster, "POST", "/vm", {"xml": xml, "node": "node1"})
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})
    until(lambda: any(line.startswith("disk tick") for line in console(cluster, name)), 90,
          "the guest to write")  # fmt: skip
    uuid = api(cluster, "GET", f"/vm/{name}")["uuid"]
    # what `pvc storage volume resize` does: the image grows, then its record
    with rbd.Image(volumes.ioctx, "growing") as image:
        image.resize(96 << 20)
    zk.write({("volume.stats", POOL, "growing"): {"size": 96 << 20}})
    conn = libvirt.open(cluster.libvirt["node1"]["uri"])
    try:
        domain = conn.lookupByUUIDString(uuid)
        until(lambda: domain.blockInfo("vda", 0)[0] == 96 << 20, 30, "the guest's disk to grow")
    finally:
        conn.close()
    log = (cluster.workdir / "node1" / "pvc.log").read_text()
    assert f"disk {POOL}/growing grown to {96 << 20} bytes" in log
    api(cluster, "POST", f"/vm/{name}/state", {"state": "stop"})
