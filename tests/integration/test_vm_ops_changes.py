"""pvc.ops.vm on a real Zookeeper: changes of a VM's definition (rename, modify, metadata,
tags) and undefining it."""

# the fixtures imported from test_vm_ops (nodes) are the tests' parameters
# ruff: noqa: F811

import uuid as uuid_module

import pytest

from pvc.errors import Conflict, InvalidInput
from pvc.ops import placement, vm, vm_move, vm_state
from tests.integration.test_vm_ops import (  # noqa: F401 (nodes: a fixture)
    POLICY,
    add_hypervisor,
    define,
    domain_xml,
    nodes,
    set_state,
    snapshot,
)


def test_rename_a_stopped_vm(nodes):
    uuid = define(nodes, "vm1")
    define(nodes, "vm2")
    answer = vm.rename(nodes, uuid, "web1")
    assert answer == {"message": "VM 'vm1' renamed to 'web1'", "name": "web1", "uuid": uuid}
    assert vm.info(nodes, "web1")["uuid"] == uuid
    assert "<name>web1</name>" in vm.dump(nodes, uuid)["xml"]
    assert nodes.read(("name.domain", "vm1")) is None
    with pytest.raises(Conflict, match="a VM named 'vm2' already exists"):
        vm.rename(nodes, "web1", "vm2")
    with pytest.raises(InvalidInput, match="invalid VM name 'a b'"):
        vm.rename(nodes, "web1", "a b")
    set_state(nodes, "web1", "start")
    before = snapshot(nodes)
    with pytest.raises(Conflict, match=r"VM 'web1' must be stopped to be renamed \(it is start\)"):
        vm.rename(nodes, "web1", "web2")
    assert snapshot(nodes) == before


def test_modify_replaces_the_xml(nodes):
    uuid = define(nodes, "vm1")
    xml = domain_xml("vm1", uuid, memory=1024, vcpus=4)
    answer = vm.modify(nodes, POLICY, uuid, xml, restart=True)
    assert answer == {"message": "VM 'vm1' modified", "name": "vm1", "uuid": uuid}
    record = vm.info(nodes, "vm1")
    assert (record["memory"], record["vcpus"], record["state"]) == (1024, 4, "stop")
    assert vm.dump(nodes, "vm1")["xml"] == xml
    set_state(nodes, "vm1", "start")
    answer = vm.modify(nodes, POLICY, "vm1", xml, restart=True)
    assert answer["message"] == "VM 'vm1' modified, restarting it"
    assert vm.info(nodes, "vm1")["state"] == "restart"


def test_modify_refuses_a_new_name(nodes):
    """A rename hidden in a modify would bypass rename's rules (stopped VM, /names index):
    modify keeps the name and says to use rename."""
    uuid = define(nodes, "vm1")
    define(nodes, "vm2")
    for state in ("stop", "start"):
        set_state(nodes, "vm1", state)
        before = snapshot(nodes)
        for name in ("web1", "vm2"):
            with pytest.raises(Conflict, match=f"the XML names the VM '{name}', not 'vm1'.*rename"):
                vm.modify(nodes, POLICY, uuid, domain_xml(name, uuid), restart=True)
        assert snapshot(nodes) == before
    assert vm.find(nodes, "vm1") == uuid and nodes.read(("name.domain", "web1")) is None


def test_modify_with_restart_checks_memory_as_start_does(nodes):
    add_hypervisor(nodes, "node1", mem_total=1024)
    uuid = define(nodes, "vm1", memory=512, node="node1")
    define(nodes, "vm2", memory=256, node="node1")
    vm_state.start(nodes, POLICY, "vm1")
    vm_state.start(nodes, POLICY, "vm2")
    bigger = domain_xml("vm1", uuid, memory=1024)
    before = snapshot(nodes)
    message = (
        r"refused: node node1 would have 1280 MiB allocated to VMs, more than its "
        r"1024 MiB x 1 = 1024 MiB"
    )
    with pytest.raises(Conflict, match=message):
        vm.modify(nodes, POLICY, "vm1", bigger, restart=True)
    assert snapshot(nodes) == before
    vm.modify(nodes, POLICY, "vm1", domain_xml("vm1", uuid, memory=768), restart=True)  # fits
    assert vm.info(nodes, "vm1")["state"] == "restart"
    set_state(nodes, "vm1", "start")
    vm.modify(nodes, placement.Policy("mem", 2.0), "vm1", bigger, restart=True)
    assert vm.info(nodes, "vm1")["memory"] == 1024


def test_modify_keeps_the_uuid(nodes):
    uuid = define(nodes, "vm1")
    other = str(uuid_module.uuid4())
    before = snapshot(nodes)
    with pytest.raises(InvalidInput, match=f"the new XML has UUID {other}, not the VM's {uuid}"):
        vm.modify(nodes, POLICY, "vm1", domain_xml("vm1", other))
    with pytest.raises(InvalidInput, match="does not parse"):
        vm.modify(nodes, POLICY, "vm1", "<domain>")
    assert snapshot(nodes) == before


def test_meta(nodes):
    uuid = define(nodes, "vm1")
    assert vm.set_meta(nodes, "vm1")["message"] == "VM 'vm1': nothing to change"
    answer = vm.set_meta(nodes, uuid, limit=["node1"], selector="load", autostart=True,
                         migration_method="none")  # fmt: skip
    assert answer == {"message": "VM 'vm1' metadata updated", "name": "vm1", "uuid": uuid}
    record = vm.info(nodes, "vm1")
    assert (record["node_limit"], record["node_selector"]) == (["node1"], "load")
    assert (record["node_autostart"], record["migration_method"]) == (True, "none")
    vm.set_meta(nodes, "vm1", limit=[], autostart=False)
    record = vm.info(nodes, "vm1")
    assert (record["node_limit"], record["node_autostart"]) == ([], False)
    with pytest.raises(InvalidInput, match="unknown node selector 'random'.*or default"):
        vm.set_meta(nodes, "vm1", selector="random")


@pytest.mark.parametrize("default", ["default", ""])
def test_the_selector_goes_back_to_the_cluster_default(nodes, default):
    """'default' (or empty) clears the VM's selector: the cluster's vm.default_selector then
    applies, as for a VM defined without one."""
    define(nodes, "vm1", selector="vms")
    vm.set_meta(nodes, "vm1", selector=default)
    assert vm.info(nodes, "vm1")["node_selector"] is None
    define(nodes, "vm2", selector=default, policy=placement.Policy("memprov"))
    assert vm.info(nodes, "vm2")["node_selector"] is None
    set_state(nodes, "vm1", "start")
    vm_move.migrate(nodes, placement.Policy("load"), "vm1", None)
    assert vm.info(nodes, "vm1")["node"] == "node2"  # equal loads; "vms" would pick node3


def test_tags(nodes):
    uuid = define(nodes, "vm1", tags=["a"])
    answer = vm.set_tags(nodes, uuid, ["c", "b"], ["a"])
    assert answer == {"name": "vm1", "uuid": uuid, "tags": ["b", "c"]}
    assert vm.set_tags(nodes, "vm1", [], ["b", "x"])["tags"] == ["c"]
    with pytest.raises(InvalidInput, match="invalid tag 'a,b'"):
        vm.set_tags(nodes, "vm1", ["a,b"], [])
    assert vm.info(nodes, "vm1")["tags"] == ["c"]


def test_undefine(nodes):
    uuid = define(nodes, "vm1")
    define(nodes, "vm2")
    set_state(nodes, "vm1", "start")
    before = snapshot(nodes)
    with pytest.raises(Conflict, match="VM 'vm1' is running; stop it first or use force"):
        vm.undefine(nodes, "vm1")
    assert snapshot(nodes) == before
    answer = vm.undefine(nodes, uuid, force=True)
    assert answer == {"message": "VM 'vm1' removed", "name": "vm1", "uuid": uuid}
    assert not any(uuid in path or path.endswith("/vm1") for path in snapshot(nodes))
    assert vm.undefine(nodes, "vm2")["message"] == "VM 'vm2' removed"
    assert nodes.children("base.domains") == []
    assert [path for path in snapshot(nodes) if path.startswith("/names/domains/")] == []


def test_a_vm_stopped_but_observed_running_is_running(nodes):
    uuid = define(nodes, "vm1")
    nodes.write({("domain.observed", uuid): {"node": "node1", "state": "running"}})
    with pytest.raises(Conflict, match="is running"):
        vm.undefine(nodes, "vm1")
