"""`pvc provisioner create` refuses bad requests at once, through the CLI and the API, before
any task exists: a bad or taken name, a missing profile or record, a missing pool, source
volume or network, a volume that exists, a MAC in use, bad arguments, a pool without room,
a runner that cannot run it. A good request answers 202 with a queued task that carries the
merged arguments. Records are written with the record store (as the record verbs do)."""

import json
import uuid as uuid_module

import pytest

from pvc.ops import jobs
from pvc.ops import provisioner_store as records
from pvc.zk import schema
from tests.conftest import fails, ok
from tests.provision_rig import MIB, add_network, add_profile, disk, task_of
from tests.storage_rig import storage  # noqa: F401 (a fixture)


def create(storage, *args: str):  # noqa: F811
    return storage.pvc("provisioner", "create", *args)


def refused(storage, *args: str, code: int = 1) -> str:  # noqa: F811
    return fails(create(storage, *args), code).strip()


def queued_provisions(storage) -> list[dict]:  # noqa: F811
    return [j for j in jobs.list_jobs(storage.zk, kind="provision")]


def test_bad_requests_are_refused_before_any_task(storage):  # noqa: F811
    zk, pool = storage.zk, storage.pool
    add_network(zk, 100)
    add_profile(zk, "good", [disk("vda", pool)], networks=[100])
    assert "profile 'nosuch' does not exist" in refused(storage, "vm1", "nosuch")
    assert "invalid VM name" in refused(storage, "bad$name", "good")
    assert "form of a UUID" in refused(storage, str(uuid_module.uuid4()), "good")
    zk.write({("name.domain", "taken"): storage.use(name="taken")})
    assert "a VM named 'taken' already exists" in refused(storage, "taken", "good")
    add_profile(zk, "nopool", [disk("vda", "nosuchpool")])
    assert "pool 'nosuchpool' does not exist" in refused(storage, "vm1", "nopool")
    add_profile(zk, "nosource", [disk("vda", pool, None, source_volume="ghost")])
    assert f"volume '{pool}/ghost' does not exist" in refused(storage, "vm1", "nosource")
    add_profile(zk, "nosize", [disk("vda", pool, None)])
    assert "disk vda has neither a size nor a source volume" in refused(storage, "vm1", "nosize")
    add_profile(zk, "nonet", [disk("vda", pool)], networks=[100, 4242])
    assert "network 4242 does not exist (network template 'nonet')" in refused(
        storage, "vm1", "nonet"
    )
    ok(storage.pvc("storage", "volume", "add", pool, "vmx_vda", "8M"))
    assert f"volume '{pool}/vmx_vda' exists already" in refused(storage, "vmx", "good")
    records.remove(zk, "profile", "good")
    records.remove(zk, "system", "good")
    records.add(zk, "profile", "nosystem", {
        "type": "provisioner", "system_template": None, "network_template": None,
        "storage_template": None, "userdata": None, "script": None, "ova": None,
        "arguments": {},
    })  # fmt: skip
    assert "profile 'nosystem' names no system template" in refused(storage, "vm1", "nosystem")
    records.add(zk, "profile", "lost", {
        "type": "provisioner", "system_template": "gone", "network_template": None,
        "storage_template": None, "userdata": None, "script": None, "ova": None,
        "arguments": {},
    })  # fmt: skip
    assert "system template 'gone' does not exist" in refused(storage, "vm1", "lost")
    add_profile(zk, "args", [disk("vda", pool)])
    assert "not K=V" in refused(storage, "vm1", "args", "--arg", "novalue", code=2)
    assert "invalid script argument '1x=2'" in refused(storage, "vm1", "args", "--arg", "1x=2")
    assert "node 'nosuchnode' does not exist" in refused(
        storage, "vm1", "args", "--runner", "nosuchnode"
    )
    zk.write({("node", "bare"): "hypervisor"})
    assert "node 'bare' does not use Ceph" in refused(storage, "vm1", "args", "--runner", "bare")
    zk.write({"base.config.primary_node": "bare"})
    assert "the primary, node 'bare', does not use Ceph" in refused(storage, "vm1", "args")
    zk.write({"base.config.primary_node": "none", ("node.storage_address", "bare"): "10.0.0.9"})
    assert "node 'bare' is not running" in refused(storage, "vm1", "args", "--runner", "bare")
    add_profile(zk, "huge", [disk("vda", pool, 1 << 50)])
    message = refused(storage, "vm1", "huge")
    assert f"pool '{pool}' would be" in message and "max_fill_ratio" in message
    assert queued_provisions(storage) == []


def test_a_mac_in_use_or_shared_by_two_nics_is_refused(storage):  # noqa: F811
    pytest.importorskip("pvc.ops.provisioner_templates", reason="H1's MAC templates")
    zk, pool = storage.zk, storage.pool
    add_network(zk, 101)
    add_network(zk, 102)
    add_profile(zk, "same", [disk("vda", pool)], networks=[101, 102],
                mac_template="{prefix}:00:00:00")  # fmt: skip
    assert "is given to two NICs" in refused(storage, "vm1", "same")
    add_profile(zk, "fixed", [disk("vda", pool)], networks=[101],
                mac_template="{prefix}:0a:0b:{vmid}")  # fmt: skip
    mac = "52:54:00:0a:0b:07"
    zk.write({("network.reservation", "101", schema.mac_component(mac)): {"ip": "10.0.0.7"}})
    assert "has a DHCP reservation on network 101" in refused(storage, "web07", "fixed")


def test_a_good_request_queues_a_task_with_the_merged_arguments(storage):  # noqa: F811
    zk, pool = storage.zk, storage.pool
    add_profile(zk, "ok", [disk("vda", pool, 16 * MIB)], arguments={"a": "1", "b": "2"})
    out = ok(create(storage, "vm2", "ok", "--arg", "b=3", "--arg", "c=x=y", "--no-start"))
    task = task_of(out)
    record = zk.read(("job", task))
    assert record["kind"] == "provision" and record["state"] == "queued"
    assert record["runner"] == "primary"
    assert record["args"] == {"name": "vm2", "profile": "ok", "define_only": False,
                              "start": False, "arguments": {"b": "3", "c": "x=y"}}  # fmt: skip
    assert f"VM 'vm2' is being provisioned already (task {task})" in refused(storage, "vm2", "ok")


def test_a_vm_being_provisioned_refuses_every_change_but_a_removal(storage, tmp_path):  # noqa: F811
    zk = storage.zk
    uuid = storage.use(name="building", state="provision")
    zk.write({("name.domain", "building"): uuid, ("domain.node", uuid): "node1"})
    xml_file = tmp_path / "building.xml"
    xml_file.write_text(zk.read(("domain.xml", uuid)))
    for args in (("start",), ("stop",), ("shutdown",), ("restart",), ("disable",),
                 ("migrate", "node2"), ("move", "node2"), ("rename", "other"),
                 ("modify", str(xml_file))):  # fmt: skip
        result = storage.pvc("vm", args[0], "building", *args[1:])
        assert fails(result) == "pvc: VM 'building' is being provisioned", args
    listed = json.loads(ok(storage.pvc("vm", "list", "--state", "provision", "-f", "json")))
    assert [vm["name"] for vm in listed] == ["building"]


def test_a_provision_vm_is_removed_only_once_no_task_builds_it(storage):  # noqa: F811
    """A provision task ended without undoing (cancelled while queued, or its runner declared
    dead): its VM stays in state provision, and removing it (with the disks made) cleans up."""
    zk, pool = storage.zk, storage.pool
    ok(storage.pvc("storage", "volume", "add", pool, "orphan_vda", "8M"))
    made, never_made = f"{pool}/orphan_vda", f"{pool}/orphan_vdb"
    uuid = storage.use(made, never_made, name="orphan", state="provision")
    zk.write({("name.domain", "orphan"): uuid, ("domain.node", uuid): "node1"})
    args = {"name": "orphan", "profile": "p", "define_only": False, "start": True,
            "arguments": {}}  # fmt: skip
    task, values = jobs.creation("provision", args, "primary")
    zk.write(values)
    refusal = (
        f"pvc: VM 'orphan' is being provisioned (task {task}): wait for the task to end, or "
        f"cancel it (pvc cluster task cancel {task}); it removes what it made"
    )
    for remove in (("remove", "--yes", "--delete-disks"), ("undefine",)):
        assert fails(storage.pvc("vm", remove[0], "orphan", *remove[1:])) == refusal, remove
    ok(storage.pvc("cluster", "task", "cancel", task))  # queued: cancelled at once, no undo
    out = ok(storage.pvc("vm", "remove", "orphan", "--yes", "--delete-disks"))
    assert f"with its volumes {pool}/orphan_vda" in out and "NOT removed" not in out, out
    assert zk.read(("name.domain", "orphan")) is None and not zk.exists(("domain", uuid))
    assert not zk.exists(("volume", pool, "orphan_vda"))
    assert "orphan_vda" not in storage.ceph.rbd("ls", pool).stdout
    bare = storage.use(name="bare", state="provision")
    zk.write({("name.domain", "bare"): bare, ("domain.node", bare): "node1"})
    ok(storage.pvc("vm", "undefine", "bare"))
    assert not zk.exists(("domain", bare))
