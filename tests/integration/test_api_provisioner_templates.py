"""The provisioner template endpoints over real HTTP (dist/pvc api serve) on a real Zookeeper:
every endpoint, and refusals as 4xx naming the reason, with nothing written."""

import pytest

from pvc.ops import cluster, provisioner_store
from tests.integration.test_api import call
from tests.integration.test_provisioner_templates import unchanged

T = "/provisioner/template"


@pytest.fixture
def api(api_server, zk):
    cluster.initialize(zk)
    return api_server


def test_system_templates(api, zk):
    body = {"name": "small", "vcpus": 2, "memory": 1024, "node_limit": "n1, n2", "vnc": True,
            "vnc_bind": "0.0.0.0", "node_selector": "mem"}  # fmt: skip
    assert call(api, "POST", f"{T}/system", body) == (
        200, {"message": "system template 'small' added", "name": "small"}
    )  # fmt: skip
    status, small = call(api, "GET", f"{T}/system/small")
    assert status == 200 and small == {
        "name": "small", "vcpus": 2, "memory": 1024, "serial": False, "vnc": True,
        "vnc_bind": "0.0.0.0", "node_limit": ["n1", "n2"], "node_selector": "mem",
        "node_autostart": False, "migration_method": "live", "profiles": [],
    }  # fmt: skip
    status, answer = call(api, "PUT", f"{T}/system/small?vcpus=4&node_limit=&vnc_bind=")
    assert (status, answer["message"]) == (200, "system template 'small' modified")
    small = call(api, "GET", f"{T}/system/small")[1]
    assert (small["vcpus"], small["node_limit"], small["vnc_bind"]) == (4, [], None)
    assert call(api, "POST", f"{T}/system", {"name": "big", "vcpus": 8, "memory": 8192})[0] == 200
    assert [t["name"] for t in call(api, "GET", f"{T}/system")[1]] == ["big", "small"]
    assert [t["name"] for t in call(api, "GET", f"{T}/system?limit=bi")[1]] == ["big"]
    assert call(api, "DELETE", f"{T}/system/big") == (
        200, {"message": "system template 'big' removed", "name": "big"}
    )  # fmt: skip
    assert call(api, "GET", f"{T}/system/big") == (
        404, {"message": "system template 'big' does not exist"}
    )  # fmt: skip


def test_network_templates(api):
    body = {"name": "lan", "mac_template": "{prefix}:ff:{vmid}:{netid}", "networks": "100, 200"}
    assert call(api, "POST", f"{T}/network", body)[0] == 200
    assert call(api, "GET", f"{T}/network/lan/net") == (200, [{"vni": 100}, {"vni": 200}])
    assert call(api, "POST", f"{T}/network/lan/net", {"vni": 300}) == (
        200, {"message": "network 300 added to network template 'lan' (NIC 3)", "name": "lan"}
    )  # fmt: skip
    status, answer = call(api, "DELETE", f"{T}/network/lan/net/100")
    assert (status, answer["message"]) == (200, "network 100 removed from network template 'lan'")
    status, lan = call(api, "GET", f"{T}/network/lan")
    assert status == 200 and lan["networks"] == [200, 300] and lan["profiles"] == []
    assert call(api, "POST", f"{T}/network", {"name": "plain"})[0] == 200
    assert [t["name"] for t in call(api, "GET", f"{T}/network")[1]] == ["lan", "plain"]
    assert call(api, "DELETE", f"{T}/network/plain")[0] == 200


def test_storage_templates(api):
    assert call(api, "POST", f"{T}/storage", {"name": "web"})[0] == 200
    disk = {"disk_id": "vda", "pool": "vms", "source_volume": "base", "mountpoint": "/"}
    assert call(api, "POST", f"{T}/storage/web/disk", disk) == (
        200, {"message": "disk vda added to storage template 'web'", "name": "web"}
    )  # fmt: skip
    disk = {"disk_id": "vdb", "pool": "vms", "size": "2G", "filesystem": "ext4",
            "filesystem_args": " -L  data ", "mountpoint": "/srv"}  # fmt: skip
    assert call(api, "POST", f"{T}/storage/web/disk", disk)[0] == 200
    status, disks = call(api, "GET", f"{T}/storage/web/disk")
    assert status == 200 and [d["disk_id"] for d in disks] == ["vda", "vdb"]
    assert disks[1]["size"] == 2 << 30 and disks[1]["filesystem_args"] == ["-L", "data"]
    assert call(api, "GET", f"{T}/storage/web")[1]["disks"] == disks
    status, answer = call(api, "DELETE", f"{T}/storage/web/disk/vda")
    assert (status, answer["message"]) == (200, "disk vda removed from storage template 'web'")
    assert call(api, "DELETE", f"{T}/storage/web")[0] == 200
    assert call(api, "GET", f"{T}/storage") == (200, [])


def test_every_template_in_one_list(api):
    call(api, "POST", f"{T}/system", {"name": "web-s", "vcpus": 1, "memory": 256})
    call(api, "POST", f"{T}/network", {"name": "web-n"})
    call(api, "POST", f"{T}/storage", {"name": "db"})
    status, listed = call(api, "GET", f"{T}?limit=web")
    assert status == 200
    assert {kind: [t["name"] for t in found] for kind, found in listed.items()} == {
        "system": ["web-s"], "network": ["web-n"], "storage": []
    }  # fmt: skip


@pytest.mark.parametrize(
    "method, path, body, status, reason",
    [
        ("POST", f"{T}/system", {"name": "small", "vcpus": 1, "memory": 64}, 409,
         "system template 'small' already exists"),
        ("POST", f"{T}/system", {"name": "x", "vcpus": 0, "memory": 64}, 400,
         "parameter 'vcpus' must be at least 1 and at most 256"),
        ("POST", f"{T}/system", {"name": "x", "vcpus": 1}, 400, "parameter 'memory' is required"),
        ("POST", f"{T}/system", {"name": "x", "vcpus": 1, "memory": 64, "vnc_bind": "host"}, 400,
         "invalid VNC bind address 'host': an IP address"),
        ("POST", f"{T}/system", {"name": "x", "vcpus": 1, "memory": 64, "node_selector": "x"},
         400, "parameter 'node_selector' must be one of"),
        ("PUT", f"{T}/system/small", {}, 400, "nothing to change"),
        ("PUT", f"{T}/system/nosuch", {"vcpus": 2}, 404, "system template 'nosuch' does not exist"),
        ("DELETE", f"{T}/system/used", None, 409, "system template 'used' is used by profile web"),
        ("GET", f"{T}/system/a.b.c", None, 404, "system template 'a.b.c' does not exist"),
        ("POST", f"{T}/network", {"name": "lan"}, 409, "network template 'lan' already exists"),
        ("POST", f"{T}/network", {"name": "x", "mac_template": "{prefix}:{vmid}"}, 400,
         "MAC template '{prefix}:{vmid}' gives '52:54:00:00'"),
        ("POST", f"{T}/network", {"name": "x", "networks": "100,100"}, 400,
         "network 100 is given twice"),
        ("POST", f"{T}/network", {"name": "x", "networks": "100;200"}, 400,
         "invalid VNI list '100;200': comma-separated VNIs"),
        ("POST", f"{T}/network/lan/net", {"vni": 100}, 409,
         "network 100 is in network template 'lan' already"),
        ("POST", f"{T}/network/lan/net", {"vni": 0}, 400, "parameter 'vni' must be at least 1"),
        ("POST", f"{T}/network/nosuch/net", {"vni": 7}, 404,
         "network template 'nosuch' does not exist"),
        ("DELETE", f"{T}/network/lan/net/200", None, 404,
         "network 200 is not in network template 'lan'"),
        ("DELETE", f"{T}/network/lan/net/x", None, 400, "invalid network's VNI 'x': a number"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "vda", "pool": "vms", "size": "1G"}, 409,
         "storage template 'web' has a disk vda already"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "sda", "pool": "vms", "size": "1G"}, 400,
         "invalid disk id 'sda': vd and a letter"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "vdb", "pool": "vms"}, 400,
         "disk vdb: give a size (a new volume) or a source volume (a clone)"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "vdb", "pool": "vms", "size": "1G",
                                           "mountpoint": "/x/../y"}, 400,
         "invalid mountpoint '/x/../y': an absolute path"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "vdb", "pool": "vms", "size": "1G",
                                           "filesystem": "zfs"}, 400,
         "parameter 'filesystem' must be one of ext2, ext3, ext4, xfs, vfat, btrfs"),
        ("POST", f"{T}/storage/web/disk", {"disk_id": "vdb", "pool": "vms", "size": "1G",
                                           "filesystem_args": "-L x"}, 400,
         "disk vdb: filesystem arguments need a filesystem"),
        ("DELETE", f"{T}/storage/web/disk/vdz", None, 404,
         "storage template 'web' has no disk 'vdz'"),
        ("DELETE", f"{T}/storage/nosuch", None, 404, "storage template 'nosuch' does not exist"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason_and_change_nothing(api, zk, method, path, body, status, reason):
    call(api, "POST", f"{T}/system", {"name": "small", "vcpus": 1, "memory": 64})
    call(api, "POST", f"{T}/system", {"name": "used", "vcpus": 1, "memory": 64})
    provisioner_store.add(zk, "profile", "web", {"type": "provisioner", "system_template": "used"})
    call(api, "POST", f"{T}/network", {"name": "lan", "networks": "100"})
    call(api, "POST", f"{T}/storage", {"name": "web"})
    call(api, "POST", f"{T}/storage/web/disk", {"disk_id": "vda", "pool": "vms", "size": "1G"})
    with unchanged(zk):
        answer = call(api, method, path, body)
    assert answer[0] == status and reason in answer[1]["message"], answer


def test_an_uninitialised_cluster_has_no_templates(api_server):
    status, answer = call(api_server, "GET", T)
    assert status == 404 and "not initialised" in answer["message"]
