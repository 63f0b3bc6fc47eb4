"""pvc.ops.provisioner_templates on a real Zookeeper: every verb of the system, network and
storage templates, and every refusal with its reason, leaving /provisioner exactly as it was
(same keys, values, versions)."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound
from pvc.ops import cluster, provisioner_store
from pvc.ops import provisioner_templates as templates
from pvc.ops.provisioner_template_checks import MEMORY_MAX, NETWORKS_MAX
from tests.integration.test_vm_ops import snapshot

GIB = 1 << 30


def tree(zk) -> dict:
    return snapshot(zk, ("/provisioner",))


@contextmanager
def unchanged(zk) -> Iterator[None]:
    """Asserts that what runs inside changes nothing under /provisioner."""
    before = tree(zk)
    yield
    assert tree(zk) == before


def refused(zk, error, verb, *args, **kwargs) -> str:
    """The message of a verb refused with `error`, which changed nothing."""
    with unchanged(zk), pytest.raises(error) as caught:
        verb(zk, *args, **kwargs)
    return caught.value.message


@pytest.fixture
def store(zk):
    cluster.initialize(zk)
    return zk


def use(store, **fields) -> None:
    """A profile naming the templates in `fields` (the profile verbs are pvc.ops.
    provisioner_records'; the store writes one as they do)."""
    name = fields.pop("name", "web")
    provisioner_store.add(store, "profile", name, {"type": "provisioner", "arguments": {}} | fields)


def test_system_templates_are_added_changed_listed_and_removed(store):
    answer = templates.add_system(store, "small", 2, 1024)
    assert answer == {"message": "system template 'small' added", "name": "small"}
    assert templates.info(store, "system", "small") == {
        "name": "small", "vcpus": 2, "memory": 1024, "serial": False, "vnc": False,
        "vnc_bind": None, "node_limit": [], "node_selector": None, "node_autostart": False,
        "migration_method": "live", "profiles": [],
    }  # fmt: skip
    templates.add_system(
        store, "big", 16, 65536, serial=True, vnc=True, vnc_bind="::", node_limit=["n1", "n2"],
        node_selector="load", node_autostart=True, migration_method="shutdown",
    )  # fmt: skip
    big = templates.info(store, "system", "big")
    assert (big["vnc_bind"], big["node_limit"], big["node_selector"]) == (
        "::",
        ["n1", "n2"],
        "load",
    )
    assert [t["name"] for t in templates.list_templates(store, "system")] == ["big", "small"]
    assert [t["name"] for t in templates.list_templates(store, "system", "sma")] == ["small"]

    answer = templates.modify_system(store, "big", vcpus=4, vnc_bind="0.0.0.0", node_limit=[])
    assert answer["message"] == "system template 'big' modified"
    big = templates.info(store, "system", "big")
    changed = (big["vcpus"], big["memory"], big["vnc_bind"], big["node_limit"])
    assert changed == (4, 65536, "0.0.0.0", [])
    templates.modify_system(store, "big", vnc_bind="", node_selector="default")
    big = templates.info(store, "system", "big")
    assert (big["vnc_bind"], big["node_selector"], big["serial"]) == (None, None, True)

    use(store, system_template="small")
    assert templates.info(store, "system", "small")["profiles"] == ["web"]
    message = refused(store, Conflict, templates.remove, "system", "small")
    assert message == "system template 'small' is used by profile web"
    assert templates.remove(store, "system", "big")["message"] == "system template 'big' removed"
    assert [t["name"] for t in templates.list_templates(store, "system")] == ["small"]


@pytest.mark.parametrize(
    "args, settings, error, reason",
    [
        (("small", 2, 512), {}, Conflict, "system template 'small' already exists"),
        (("a/b", 2, 512), {}, InvalidInput, "invalid system template name 'a/b'"),
        (("x", 0, 512), {}, InvalidInput, "invalid vCPU count 0: from 1 to 256"),
        (("x", 257, 512), {}, InvalidInput, "invalid vCPU count 257"),
        (("x", True, 512), {}, InvalidInput, "invalid vCPU count True"),
        (("x", 1, 15), {}, InvalidInput, "invalid memory (MiB) 15: from 16 to"),
        (("x", 1, MEMORY_MAX + 1), {}, InvalidInput, "invalid memory (MiB)"),
        (("x", 1, 512), {"vnc_bind": "localhost"}, InvalidInput,
         "invalid VNC bind address 'localhost': an IP address"),
        (("x", 1, 512), {"vnc_bind": "1.2.3.256"}, InvalidInput, "invalid VNC bind address"),
        (("x", 1, 512), {"node_limit": ["n1", "a b"]}, InvalidInput,
         "invalid node name in the node limit 'a b'"),
        (("x", 1, 512), {"node_selector": "fastest"}, InvalidInput,
         "unknown node selector 'fastest' (use mem, memprov, load, vcpus, vms, or default)"),
        (("x", 1, 512), {"migration_method": "teleport"}, InvalidInput,
         "invalid migration method 'teleport': one of live, shutdown, none"),
        (("x", 1, 512), {"serial": "yes"}, InvalidInput, "invalid serial 'yes': true or false"),
        (("x", 1, 512), {"colour": "red"}, InvalidInput,
         "a system template has no setting 'colour'"),
    ],
)  # fmt: skip
def test_bad_system_templates_are_refused(store, args, settings, error, reason):
    templates.add_system(store, "small", 2, 1024)
    assert reason in refused(store, error, templates.add_system, *args, **settings)


def test_system_changes_are_checked_and_need_a_template(store):
    templates.add_system(store, "small", 2, 1024)
    message = refused(store, InvalidInput, templates.modify_system, "small")
    assert message.startswith("nothing to change: give one of vcpus, memory, serial")
    assert "invalid vCPU count 300" in refused(
        store, InvalidInput, templates.modify_system, "small", vcpus=300
    )
    message = refused(store, NotFound, templates.modify_system, "nosuch", vcpus=2)
    assert message == "system template 'nosuch' does not exist"
    for verb, args in ((templates.info, ("system", "nosuch")),
                       (templates.remove, ("system", "nosuch"))):  # fmt: skip
        assert refused(store, NotFound, verb, *args) == "system template 'nosuch' does not exist"
    assert "unknown template kind 'ova'" in refused(store, InvalidInput, templates.info, "ova", "x")


def test_a_change_made_meanwhile_is_not_lost(store):
    """Two changes read the same version: the second write is refused, not applied over the
    first (provisioner_store.replace's version guard)."""
    templates.add_network(store, "lan", networks=[100])
    record, version = provisioner_store.read_versioned(store, "network", "lan")
    templates.add_network_vni(store, "lan", 200)
    with pytest.raises(ConcurrentChange):
        provisioner_store.replace(store, "network", "lan", record | {"networks": []}, version)
    assert templates.networks_of(store, "lan") == [{"vni": 100}, {"vni": 200}]


def test_network_templates_keep_their_networks_in_order(store):
    answer = templates.add_network(store, "lan", "{prefix}:ff:{vmid}:{netid}", ["100", 200])
    assert answer["message"] == "network template 'lan' added"
    assert templates.info(store, "network", "lan") == {
        "name": "lan", "mac_template": "{prefix}:ff:{vmid}:{netid}", "networks": [100, 200],
        "profiles": [],
    }  # fmt: skip
    answer = templates.add_network_vni(store, "lan", 50)
    assert answer["message"] == "network 50 added to network template 'lan' (NIC 3)"
    assert templates.networks_of(store, "lan") == [{"vni": 100}, {"vni": 200}, {"vni": 50}]
    answer = templates.remove_network_vni(store, "lan", "200")
    assert answer["message"] == "network 200 removed from network template 'lan'"
    assert templates.networks_of(store, "lan") == [{"vni": 100}, {"vni": 50}]
    templates.add_network(store, "plain")
    assert templates.info(store, "network", "plain")["mac_template"] is None
    assert [t["name"] for t in templates.list_all(store)["network"]] == ["lan", "plain"]

    use(store, network_template="lan", name="p2")
    use(store, network_template="lan", name="p1")
    message = refused(store, Conflict, templates.remove, "network", "lan")
    assert message == "network template 'lan' is used by profiles p1, p2"
    assert templates.remove(store, "network", "plain")["message"] == (
        "network template 'plain' removed"
    )


@pytest.mark.parametrize(
    "mac_template, networks, reason",
    [
        ("{prefix}:{vmid}:{netid}", [], "gives '52:54:00:00:00' for vmid 0 and netid 0: invalid "
         "MAC address"),
        ("{vmid}:{netid}:00:00:00:02", [], "gives '01:00:00:00:00:02' for vmid 1 and netid 0: "
         "MAC address 01:00:00:00:00:02 is a multicast address"),
        ("{prefix}:{host}:00:00", [], "unknown placeholder '{host}'"),
        ("{prefix:x}:00:00:00", [], "unknown placeholder '{prefix:x}'"),
        ("{prefix}:00:00:{vmid", [], "invalid MAC template '{prefix}:00:00:{vmid': expected"),
        ("x" * 65, [], "at most 64 characters"),
        ("{prefix}:ff:ff:{vmid}", [100, 200], "has no {netid}: a VM's NICs would all get one "
         "MAC address"),
        (None, [100, 0], "invalid VNI 0: a number from 1 to 16777215"),
        (None, ["1e3"], "invalid VNI '1e3'"),
        (None, [100, 200, 100], "network 100 is given twice"),
        (None, list(range(1, NETWORKS_MAX + 2)), f"at most {NETWORKS_MAX} networks"),
    ],
)  # fmt: skip
def test_bad_network_templates_are_refused(store, mac_template, networks, reason):
    assert reason in refused(store, InvalidInput, templates.add_network, "lan", mac_template,
                             networks)  # fmt: skip


def test_network_changes_are_refused_with_the_reason(store):
    templates.add_network(store, "lan", networks=[100])
    templates.add_network(store, "one", "{prefix}:ff:ff:{vmid}", [100])
    message = refused(store, Conflict, templates.add_network_vni, "lan", 100)
    assert (
        message == "network 100 is in network template 'lan' already: a VM has one NIC per network"
    )
    assert "invalid VNI 0" in refused(store, InvalidInput, templates.add_network_vni, "lan", 0)
    message = refused(store, Conflict, templates.add_network_vni, "one", 200)
    assert "has no {netid}: a VM's NICs would all get one MAC address" in message
    message = refused(store, NotFound, templates.remove_network_vni, "lan", "200")
    assert message == "network 200 is not in network template 'lan'"
    message = refused(store, NotFound, templates.add_network_vni, "nosuch", 100)
    assert message == "network template 'nosuch' does not exist"
    for vni in range(101, 100 + NETWORKS_MAX):
        templates.add_network_vni(store, "lan", vni)
    message = refused(store, Conflict, templates.add_network_vni, "lan", 1)
    assert message == f"network template 'lan' has {NETWORKS_MAX} networks, the most it may have"


def test_storage_templates_hold_disks_in_target_order(store):
    assert templates.add_storage(store, "web")["message"] == "storage template 'web' added"
    answer = templates.add_disk(store, "web", "vdb", "vms", size="10G", filesystem="xfs",
                                filesystem_args=["-L", "data"], mountpoint="/srv")  # fmt: skip
    assert answer["message"] == "disk vdb added to storage template 'web'"
    templates.add_disk(store, "web", "vda", "vms", source_volume="base", mountpoint="/")
    templates.add_disk(store, "web", "vdc", "vms", size="512M")
    assert templates.disks_of(store, "web") == [
        {"disk_id": "vda", "pool": "vms", "size": None, "source_volume": "base",
         "filesystem": None, "filesystem_args": [], "mountpoint": "/"},
        {"disk_id": "vdb", "pool": "vms", "size": 10 * GIB, "source_volume": None,
         "filesystem": "xfs", "filesystem_args": ["-L", "data"], "mountpoint": "/srv"},
        {"disk_id": "vdc", "pool": "vms", "size": 512 << 20, "source_volume": None,
         "filesystem": None, "filesystem_args": [], "mountpoint": None},
    ]  # fmt: skip
    answer = templates.remove_disk(store, "web", "vdb")
    assert answer["message"] == "disk vdb removed from storage template 'web'"
    assert [d["disk_id"] for d in templates.disks_of(store, "web")] == ["vda", "vdc"]
    assert templates.info(store, "storage", "web")["profiles"] == []
    use(store, storage_template="web")
    message = refused(store, Conflict, templates.remove, "storage", "web")
    assert message == "storage template 'web' is used by profile web"
    templates.add_storage(store, "empty")
    assert templates.remove(store, "storage", "empty")["name"] == "empty"


@pytest.mark.parametrize(
    "disk_id, disk, reason",
    [
        ("sda", {"size": "1G"}, "invalid disk id 'sda': vd and a letter"),
        ("vdaa", {"size": "1G"}, "invalid disk id 'vdaa'"),
        ("vdb", {}, "disk vdb: give a size (a new volume) or a source volume (a clone)"),
        ("vdb", {"size": "10"}, "invalid size '10': give a whole number and a unit"),
        ("vdb", {"size": "0G"}, "a size must be more than zero"),
        ("vdb", {"source_volume": "a/b"}, "invalid source volume name 'a/b'"),
        ("vdb", {"size": "1G", "filesystem": "ntfs"},
         "unknown filesystem 'ntfs' for disk vdb (use ext2, ext3, ext4, xfs, vfat, btrfs)"),
        ("vdb", {"size": "1G", "filesystem_args": ["-L"]},
         "disk vdb: filesystem arguments need a filesystem"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "filesystem_args": ["-L", "my disk"]},
         "invalid filesystem arguments"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "filesystem_args": ["-d", "/etc"]},
         "invalid filesystem arguments ['-d', '/etc']: letters, digits and '_=,.:^+@%-' (no '/')"),
        ("vdb", {"source_volume": "base", "filesystem": "ext4"},
         "disk vdb: a copy of a volume keeps its own filesystem (a new one would wipe it)"),
        ("vdb", {"size": "1G", "mountpoint": "/srv"}, "disk vdb: a mountpoint needs a filesystem"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "mountpoint": "srv"},
         "invalid mountpoint 'srv'"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "mountpoint": "/srv/../etc"},
         "invalid mountpoint '/srv/../etc': an absolute path"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "mountpoint": "/srv/"}, "invalid mountpoint"),
        ("vdb", {"size": "1G", "filesystem": "ext4", "mountpoint": "/a//b"}, "invalid mountpoint"),
    ],
)  # fmt: skip
def test_bad_disks_are_refused(store, disk_id, disk, reason):
    templates.add_storage(store, "web")
    assert reason in refused(store, InvalidInput, templates.add_disk, "web", disk_id, "vms", **disk)


def test_disk_changes_are_refused_with_the_reason(store):
    templates.add_storage(store, "web")
    templates.add_disk(store, "web", "vda", "vms", size="1G", filesystem="ext4", mountpoint="/")
    message = refused(store, Conflict, templates.add_disk, "web", "vda", "vms", size="2G")
    assert message == "storage template 'web' has a disk vda already"
    message = refused(store, Conflict, templates.add_disk, "web", "vdb", "vms",
                      source_volume="base", mountpoint="/")  # fmt: skip
    assert message == "storage template 'web' mounts disk vda at / already"
    assert "invalid pool name 'a b'" in refused(
        store, InvalidInput, templates.add_disk, "web", "vdb", "a b", size="1G"
    )
    message = refused(store, NotFound, templates.remove_disk, "web", "vdz")
    assert message == "storage template 'web' has no disk 'vdz'"
    message = refused(store, NotFound, templates.add_disk, "nosuch", "vda", "vms", size="1G")
    assert message == "storage template 'nosuch' does not exist"
    assert "already exists" in refused(store, Conflict, templates.add_storage, "web")


def test_lists_of_every_kind(store):
    assert templates.list_all(store) == {"system": [], "network": [], "storage": []}
    templates.add_system(store, "web-sys", 1, 256)
    templates.add_network(store, "web-net")
    templates.add_storage(store, "db-disk")
    listed = templates.list_all(store, "web")
    assert {kind: [t["name"] for t in found] for kind, found in listed.items()} == {
        "system": ["web-sys"], "network": ["web-net"], "storage": []
    }  # fmt: skip
    assert "at most 256 are accepted" in refused(store, InvalidInput, templates.list_all, "x" * 300)
