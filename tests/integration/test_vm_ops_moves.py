"""pvc.ops.vm_move on a real Zookeeper: migrate, unmigrate and move, and what they refuse."""

# the fixtures imported from test_vm_ops (nodes) are the tests' parameters
# ruff: noqa: F811

import pytest

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import vm, vm_move
from tests.integration.test_vm_ops import POLICY, add_hypervisor, define, nodes, set_state, snapshot  # noqa: F401


def test_migrate_unmigrate_and_move(nodes):
    uuid = define(nodes, "vm1", node="node1")
    set_state(nodes, "vm1", "start")
    answer = vm_move.migrate(nodes, POLICY, uuid, "node3")
    assert answer == {
        "message": "VM 'vm1' migrating from node1 to node3", "name": "vm1", "uuid": uuid,
        "node": "node3",
    }  # fmt: skip
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"], record["state"]) == ("node3", "node1", "migrate")
    set_state(nodes, "vm1", "start")  # the daemons finished the migration
    with pytest.raises(Conflict, match=r"already migrated \(from node1\); use force"):
        vm_move.migrate(nodes, POLICY, "vm1", "node2")
    assert vm.info(nodes, "vm1")["node"] == "node3"
    vm_move.migrate(nodes, POLICY, "vm1", "node2", force=True)
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"]) == ("node2", "node1")  # home stays node1
    set_state(nodes, "vm1", "start")
    answer = vm_move.unmigrate(nodes, POLICY, "vm1")
    assert answer["message"] == "VM 'vm1' returning from node2 to node1"
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"], record["state"]) == ("node1", "", "migrate")
    with pytest.raises(InvalidInput, match="VM 'vm1' is not migrated"):
        vm_move.unmigrate(nodes, POLICY, "vm1")
    set_state(nodes, "vm1", "start")
    vm_move.migrate(nodes, POLICY, "vm1", "node2")
    set_state(nodes, "vm1", "start")
    assert vm_move.move(nodes, POLICY, "vm1", "node3")["message"].startswith("VM 'vm1' moving")
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"]) == ("node3", "")


def test_a_forced_migration_back_home_clears_lastnode(nodes):
    define(nodes, "vm1", node="node1")
    set_state(nodes, "vm1", "start")
    vm_move.migrate(nodes, POLICY, "vm1", "node3")
    set_state(nodes, "vm1", "start")
    vm_move.migrate(nodes, POLICY, "vm1", None, force=True)  # the selector picks node1
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"]) == ("node1", "")


def test_moving_a_stopped_vm_only_reassigns_it(nodes):
    define(nodes, "vm1", node="node1")
    answer = vm_move.migrate(nodes, POLICY, "vm1", "node2")
    assert answer["message"].endswith("(it is not running: only its assignment changes)")
    record = vm.info(nodes, "vm1")
    assert (record["node"], record["lastnode"], record["state"]) == ("node2", "node1", "stop")


@pytest.mark.parametrize(
    "target, options, error, message",
    [
        ("node1", {}, InvalidInput, "the VM is already on node node1"),
        ("ghost", {}, NotFound, "node 'ghost' does not exist"),
        ("node3", {"limit": ["node1", "node2"]}, InvalidInput, "outside the VM's node limit"),
        (None, {"limit": ["node1"]}, InvalidInput, "no node in run and ready state"),
    ],
)
def test_move_refusals_change_nothing(nodes, target, options, error, message):
    define(nodes, "vm1", node="node1", **options)
    before = snapshot(nodes)
    with pytest.raises(error, match=message):
        vm_move.move(nodes, POLICY, "vm1", target)
    assert snapshot(nodes) == before


def test_migrating_a_running_vm_checks_the_target_memory(nodes):
    add_hypervisor(nodes, "node2", mem_total=1024)
    define(nodes, "vm1", node="node1", memory=2048)
    set_state(nodes, "vm1", "start")
    with pytest.raises(Conflict, match="node node2 would have 2048 MiB allocated"):
        vm_move.migrate(nodes, POLICY, "vm1", "node2")
    assert vm.info(nodes, "vm1")["node"] == "node1"
