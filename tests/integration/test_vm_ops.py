"""pvc.ops.vm on a real Zookeeper: defining and changing VMs, placement, state changes, moves.

Node records are written as the node daemons would; no daemon acts on the VMs, so a state
written by a verb stays as written (tests play the daemon where they need one).
"""

import json
import threading
import time
import uuid as uuid_module

import pytest

from pvc.errors import Conflict, InvalidInput, NotFound, PvcError
from pvc.ops import cluster, placement, vm, vm_move, vm_state
from tests.integration.test_node_ops import add_node

POLICY = placement.Policy("mem", 1.0)
MEM_TOTAL = 4096


def domain_xml(name: str, uuid: str | None = None, memory: int = 128, vcpus: int = 1) -> str:
    """A minimal valid libvirt domain."""
    uuid = uuid or str(uuid_module.uuid4())
    return (
        f"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>"
        f"<memory unit='MiB'>{memory}</memory><vcpu>{vcpus}</vcpu>"
        "<os><type>hvm</type></os></domain>"
    )


def add_hypervisor(
    zk, name, mem_free=MEM_TOTAL, mem_total=MEM_TOTAL, load=0.0, daemon="run", domain="ready"
):
    """A live hypervisor node with the figures placement reads."""
    stats = {"mem_total": mem_total, "mem_free": mem_free, "load": load}
    add_node(zk, name, mode="hypervisor", daemon=daemon, stats=stats, **{"state.domain": domain})


@pytest.fixture
def nodes(zk):
    """An initialised cluster of three hypervisors; node1 has the most free memory."""
    cluster.initialize(zk)
    add_hypervisor(zk, "node1", mem_free=3000)
    add_hypervisor(zk, "node2", mem_free=2000)
    add_hypervisor(zk, "node3", mem_free=1000)
    return zk


def define(zk, name, policy=POLICY, memory=128, vcpus=1, **options):
    """Defines a VM; returns its UUID."""
    return vm.define(zk, policy, domain_xml(name, memory=memory, vcpus=vcpus), **options)["uuid"]


def set_state(zk, name, state):
    """Writes a VM's state directly, as its node daemon would."""
    zk.write({("domain.state", vm.find(zk, name)): state})


def snapshot(zk) -> dict:
    """Every key under /domains and /names with its value and version."""
    found = {}

    def walk(path):
        if zk.client.exists(path) is None:
            return
        data, stat = zk.client.get(path)
        found[path] = (data, stat.version)
        for child in zk.client.get_children(path):
            walk(f"{path}/{child}")

    walk("/domains")
    walk("/names")
    return found


# --- define ----------------------------------------------------------------------------------


def test_define_writes_a_stopped_vm(nodes):
    uuid = str(uuid_module.uuid4())
    xml = domain_xml("vm1", uuid, memory=512, vcpus=2)
    answer = vm.define(nodes, POLICY, xml, autostart=True, tags=["web", "prod", "web"])
    assert answer == {
        "message": "VM 'vm1' defined on node1", "name": "vm1", "uuid": uuid, "node": "node1",
    }  # fmt: skip
    record = vm.info(nodes, "vm1")
    assert record == {
        "name": "vm1", "uuid": uuid, "state": "stop", "node": "node1", "lastnode": "",
        "node_limit": [], "node_selector": None, "node_autostart": True,
        "migration_method": "live", "memory": 512, "vcpus": 2, "tags": ["prod", "web"],
        "failed_reason": None, "observed": None,
    }  # fmt: skip
    assert vm.dump(nodes, "vm1") == {"name": "vm1", "uuid": uuid, "xml": xml}
    assert vm.dump(nodes, uuid) == vm.dump(nodes, "vm1")
    assert vm.info(nodes, uuid) == record
    assert vm.info(nodes, uuid.upper()) == record
    assert nodes.read(("name.domain", "vm1")) == uuid


def test_define_keeps_limit_selector_and_method(nodes):
    define(nodes, "vm1", limit=["node2", "node3"], selector="vms", migration_method="shutdown")
    record = vm.info(nodes, "vm1")
    assert record["node_limit"] == ["node2", "node3"]
    assert (record["node_selector"], record["migration_method"]) == ("vms", "shutdown")
    assert record["node"] == "node2"


EXISTING_UUID = "6f3c1a52-0e0b-4a8e-9a53-3c1d2b7e9f10"


@pytest.mark.parametrize(
    "xml, options, error, message",
    [
        ("<domain><name>vm2</name>", {}, InvalidInput, "the XML does not parse: no element found"),
        ("<domain type='qemu'><name>vm2</nome></domain>", {}, InvalidInput,
         "the XML does not parse: mismatched tag: line 1, column"),
        ("<network><name>vm2</name></network>", {}, InvalidInput, "its root is 'network'"),
        (domain_xml("vm2").replace("<name>vm2</name>", ""), {}, InvalidInput, "has no <name>"),
        (domain_xml("vm2").replace("<uuid>", "<x>").replace("</uuid>", "</x>"), {},
         InvalidInput, "has no <uuid>"),
        (domain_xml("vm2").replace("memory", "mem"), {}, InvalidInput, "has no <memory>"),
        (domain_xml("vm2").replace("vcpu", "cpu"), {}, InvalidInput, "has no <vcpu>"),
        (domain_xml("vm2", uuid="not-a-uuid"), {}, InvalidInput, "<uuid> is not a UUID"),
        (domain_xml("vm2", memory=0), {}, InvalidInput, "at least 1 MiB of memory and 1 vCPU"),
        (domain_xml("a/b"), {}, InvalidInput, "invalid VM name 'a/b'"),
        (domain_xml("vm1"), {}, Conflict, "a VM named 'vm1' already exists"),
        (domain_xml("vm2", uuid=EXISTING_UUID), {}, Conflict,
         f"a VM with UUID {EXISTING_UUID} already exists"),
        (domain_xml("vm2"), {"node": "ghost"}, NotFound, "node 'ghost' does not exist"),
        (domain_xml("vm2"), {"node": "node1", "limit": ["node2"]}, InvalidInput,
         r"node node1 is outside the VM's node limit \(node2\)"),
        (domain_xml("vm2"), {"node": "init1"}, InvalidInput,
         "node init1 cannot take VMs: daemon init, domain state ready"),
        (domain_xml("vm2"), {"node": "flushed1"}, InvalidInput,
         "node flushed1 cannot take VMs: daemon run, domain state flushed"),
        (domain_xml("vm2"), {"limit": ["init1", "flushed1"]}, InvalidInput,
         "no node in run and ready state can take the VM"),
        (domain_xml("vm2"), {"limit": ["a b"]}, InvalidInput, "invalid node name"),
        (domain_xml("vm2"), {"selector": "random"}, InvalidInput, "unknown node selector"),
        (domain_xml("vm2"), {"migration_method": "teleport"}, InvalidInput,
         "migration method must be one of live, shutdown, none"),
    ],
)  # fmt: skip
def test_define_refusals_leave_nothing_behind(nodes, xml, options, error, message):
    vm.define(nodes, POLICY, domain_xml("vm1", uuid=EXISTING_UUID))
    add_hypervisor(nodes, "init1", daemon="init")
    add_hypervisor(nodes, "flushed1", domain="flushed")
    before = snapshot(nodes)
    with pytest.raises(error, match=message):
        vm.define(nodes, POLICY, xml, **options)
    assert snapshot(nodes) == before


def test_define_refuses_a_bad_tag(nodes):
    with pytest.raises(InvalidInput, match="invalid tag"):
        define(nodes, "vm1", tags=["a,b"])


def test_an_uninitialised_cluster_says_so(zk):
    with pytest.raises(NotFound, match="not initialised"):
        vm.define(zk, POLICY, domain_xml("vm1"))
    with pytest.raises(NotFound, match="not initialised"):
        vm.list_vms(zk)


@pytest.mark.parametrize("name", ["ghost", "a b", str(uuid_module.uuid4())])
def test_an_unknown_vm_is_not_found(nodes, name):
    for call in (
        vm.info,
        vm.dump,
        vm.undefine,
        vm_state.stop,
        lambda zk, n: vm_state.start(zk, POLICY, n),
    ):
        with pytest.raises(NotFound, match=f"VM '{name}' does not exist"):
            call(nodes, name)


# --- placement -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector, figures, expected",
    [
        ("mem", {}, "node1"),  # most free memory
        ("load", {"node1": {"load": 2.0}, "node2": {"load": 0.5}, "node3": {"load": 1.0}}, "node2"),
        ("memprov", {"node3": {"mem_total": 8192}}, "node3"),  # most memory not provisioned
    ],
)
def test_the_selector_picks_the_node(nodes, selector, figures, expected):
    for name, values in figures.items():
        add_hypervisor(nodes, name, **{"mem_free": 1000} | values)
    define(nodes, "vm1", selector=selector)
    assert vm.info(nodes, "vm1")["node"] == expected


def test_the_policy_selector_applies_when_the_vm_has_none(nodes):
    define(nodes, "vm1", policy=placement.Policy("memprov"))
    define(nodes, "vm2", policy=placement.Policy("memprov"))
    assert [r["node"] for r in vm.list_vms(nodes)] == ["node1", "node2"]


def test_defining_several_vms_spreads_them_by_count(nodes):
    for index in range(6):
        define(nodes, f"vm{index}", selector="vms")
    placed = [record["node"] for record in vm.list_vms(nodes)]
    assert placed == ["node1", "node2", "node3"] * 2


def test_vcpus_counts_only_running_vms(nodes):
    define(nodes, "big", node="node1", vcpus=8)
    define(nodes, "small", node="node2", vcpus=2)
    define(nodes, "idle", node="node3", vcpus=16)  # stopped: allocates nothing
    set_state(nodes, "big", "start")
    set_state(nodes, "small", "start")
    define(nodes, "new", selector="vcpus")
    assert vm.info(nodes, "new")["node"] == "node3"


def test_nodes_not_ready_are_skipped(nodes):
    add_hypervisor(nodes, "node1", mem_free=3000, domain="flush")
    define(nodes, "vm1")
    assert vm.info(nodes, "vm1")["node"] == "node2"


# --- start, stop and friends -----------------------------------------------------------------


def test_start_and_the_other_state_changes(nodes):
    uuid = define(nodes, "vm1")
    vm1 = {"name": "vm1", "uuid": uuid}
    assert vm_state.start(nodes, POLICY, "vm1") == vm1 | {"message": "VM 'vm1' starting on node1"}
    assert vm.info(nodes, "vm1")["state"] == "start"
    assert vm_state.restart(nodes, "vm1") == vm1 | {"message": "VM 'vm1' restarting"}
    set_state(nodes, "vm1", "start")
    assert vm_state.shutdown(nodes, "vm1", force=True) == vm1 | {
        "message": "VM 'vm1' shutting down"
    }
    assert nodes.read(("domain.shutdown_force", uuid)) is True
    assert vm_state.stop(nodes, "vm1")["message"] == "VM 'vm1' stopping (forced off)"
    assert vm_state.disable(nodes, "vm1")["message"].startswith("VM 'vm1' disabled")
    assert vm.info(nodes, "vm1")["state"] == "disable"


@pytest.mark.parametrize(
    "state, verb, message",
    [
        ("start", "start", "VM 'vm1' is already running; nothing changed"),
        ("restart", "start", "VM 'vm1' is already restarting; nothing changed"),
        ("migrate", "start", "VM 'vm1' is already migrating; nothing changed"),
        ("stop", "stop", "VM 'vm1' is already stopped; nothing changed"),
        ("stop", "shutdown", "VM 'vm1' is already stopped; nothing changed"),
        ("disable", "stop", "VM 'vm1' is already disabled (and so off); nothing changed"),
        ("disable", "shutdown", "VM 'vm1' is already disabled (and so off); nothing changed"),
        ("disable", "disable", "VM 'vm1' is already disabled; nothing changed"),
        ("shutdown", "shutdown", "VM 'vm1' is already shutting down; nothing changed"),
        ("restart", "restart", "VM 'vm1' is already restarting; nothing changed"),
    ],
)
def test_a_vm_already_there_is_left_alone(nodes, state, verb, message):
    """Asking for what already holds is a no-op answer (200), the same for every verb; a
    disabled VM stays disabled (stop and shutdown do not turn it into a merely stopped one)."""
    uuid = define(nodes, "vm1")
    set_state(nodes, "vm1", state)
    before = snapshot(nodes)
    verbs = {"start": lambda: vm_state.start(nodes, POLICY, uuid),
             "stop": lambda: vm_state.stop(nodes, uuid),
             "shutdown": lambda: vm_state.shutdown(nodes, uuid, force=True),
             "restart": lambda: vm_state.restart(nodes, uuid),
             "disable": lambda: vm_state.disable(nodes, uuid)}  # fmt: skip
    assert verbs[verb]() == {"name": "vm1", "uuid": uuid, "message": message}
    assert snapshot(nodes) == before


def test_stop_and_disable_from_the_other_states(nodes):
    define(nodes, "vm1")
    for state in ("start", "restart", "shutdown", "migrate", "fail"):
        set_state(nodes, "vm1", state)
        assert vm_state.stop(nodes, "vm1")["message"] == "VM 'vm1' stopping (forced off)"
        assert vm.info(nodes, "vm1")["state"] == "stop"
    vm_state.disable(nodes, "vm1")  # a stopped VM becomes disabled: kept off on purpose
    assert vm.info(nodes, "vm1")["state"] == "disable"


@pytest.mark.parametrize(
    "verb, state",
    [
        (vm_state.restart, "stop"),
        (vm_state.restart, "fail"),
        (vm_state.restart, "disable"),
        (vm_state.shutdown, "fail"),
    ],
)
def test_restart_and_shutdown_need_a_running_vm(nodes, verb, state):
    uuid = define(nodes, "vm1")
    set_state(nodes, "vm1", state)
    with pytest.raises(Conflict, match=f"VM 'vm1' is in state {state}; cannot"):
        verb(nodes, uuid)  # the message names the VM, not the UUID it was given
    assert vm.info(nodes, "vm1")["state"] == state


def test_a_disabled_vm_starts_only_with_force(nodes):
    define(nodes, "vm1")
    vm_state.disable(nodes, "vm1")
    with pytest.raises(Conflict, match="VM 'vm1' is disabled; use force"):
        vm_state.start(nodes, POLICY, vm.find(nodes, "vm1"))
    assert vm.info(nodes, "vm1")["state"] == "disable"
    vm_state.start(nodes, POLICY, "vm1", force=True)
    assert vm.info(nodes, "vm1")["state"] == "start"


def test_start_clears_the_failed_reason(nodes):
    uuid = define(nodes, "vm1")
    nodes.write({("domain.state", uuid): "fail", ("domain.failed_reason", uuid): "no disk"})
    vm_state.start(nodes, POLICY, "vm1")
    assert vm.info(nodes, "vm1")["failed_reason"] is None


def test_start_refuses_to_over_commit_memory(nodes):
    add_hypervisor(nodes, "node1", mem_total=1024)
    define(nodes, "vm1", memory=768, node="node1")
    define(nodes, "vm2", memory=512, node="node1")
    vm_state.start(nodes, POLICY, "vm1")
    message = (
        r"refused: node node1 would have 1280 MiB allocated to VMs, more than its "
        r"1024 MiB x 1 = 1024 MiB"
    )
    with pytest.raises(Conflict, match=message):
        vm_state.start(nodes, POLICY, "vm2")
    assert vm.info(nodes, "vm2")["state"] == "stop"
    vm_state.start(nodes, placement.Policy("mem", 1.5), "vm2")
    assert vm.info(nodes, "vm2")["state"] == "start"


# --- moves -----------------------------------------------------------------------------------


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


# --- changes of the definition ---------------------------------------------------------------


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
    with pytest.raises(InvalidInput, match="nothing to change"):
        vm.set_meta(nodes, "vm1")
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


def test_list_filters(nodes):
    for name, node in [("web1", "node1"), ("web2", "node2"), ("db1", "node1"), ("web10", "node3")]:
        define(nodes, name, node=node)
    set_state(nodes, "web2", "start")

    def names(**filters):
        return [record["name"] for record in vm.list_vms(nodes, **filters)]

    assert names() == ["db1", "web1", "web10", "web2"]
    assert names(node="node1") == ["db1", "web1"]
    assert names(state="start") == ["web2"]
    assert names(state="stop", node="node1") == ["db1", "web1"]
    assert names(node="ghost") == []


def test_a_name_pattern_is_a_glob_unless_regex_is_asked_for(nodes):
    """One rule: a shell glob matched against the whole name ('.' and every other character
    but * ? [ are literal); with regex, a regular expression searched in the name."""
    for name in ("web1", "web2", "db1", "web10", "web.1", "webx1"):
        define(nodes, name)

    def names(match, regex=False, **filters):
        listed = json.loads(vm.list_matching_json(nodes, match=match, regex=regex, **filters))
        return [r["name"] for r in listed]

    assert names("web?") == ["web1", "web2"]
    assert names("web[12]*") == ["web1", "web10", "web2"]
    assert names("web.1") == ["web.1"]  # not webx1: '.' is a dot
    assert names("web[.]1") == ["web.1"]
    assert names("web[!.]1") == ["webx1"]
    assert names("eb") == [] and names("1$") == []  # a glob matches the whole name
    assert names("web1") == ["web1"]
    assert names("web1", node="node2") == []
    assert names("1$", regex=True) == ["db1", "web.1", "web1", "webx1"]
    assert names("eb", regex=True) == ["web.1", "web1", "web10", "web2", "webx1"]
    assert names(r"^web\.", regex=True) == ["web.1"]
    assert names(None) == names(None, regex=False) == [r["name"] for r in vm.list_vms(nodes)]
    for bad in ("web(", "[a", "*"):
        with pytest.raises(InvalidInput, match="invalid regular expression '.*': "):
            names(bad, regex=True)
    with pytest.raises(InvalidInput, match="regex applies only to a name pattern"):
        names(None, regex=True)


def test_console_log(nodes):
    uuid = define(nodes, "vm1")
    assert vm.console_log(nodes, uuid, 10) == {"name": "vm1", "uuid": uuid, "lines": []}
    nodes.write({("domain.console_log", uuid): "one\ntwo\nthree\n"})
    assert vm.console_log(nodes, "vm1", 2)["lines"] == ["two", "three"]
    with pytest.raises(InvalidInput, match="lines must be 1 or more"):
        vm.console_log(nodes, "vm1", 0)


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


# --- waiting ---------------------------------------------------------------------------------


def later(seconds: float, action) -> threading.Thread:
    """Runs `action()` after `seconds` on a thread (a node daemon's part)."""

    def run():
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_a_start_needs_the_node_to_report_it(nodes):
    uuid = define(nodes, "vm1", node="node2")
    vm_state.start(nodes, POLICY, "vm1")
    report = {("domain.observed", uuid): {"node": "node2", "state": "running"}}
    daemon = later(0.3, lambda: nodes.write(report))
    record = vm_state.wait_for(nodes, "vm1", ("start",), timeout=10)
    daemon.join()
    assert record["observed"] == {"node": "node2", "state": "running"}


def test_wait_for_returns_a_failure(nodes):
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    failure = {("domain.state", uuid): "fail", ("domain.failed_reason", uuid): "no such disk"}
    later(0.2, lambda: nodes.write(failure))
    record = vm_state.wait_for(nodes, "vm1", ("start",), timeout=10)
    assert (record["state"], record["failed_reason"]) == ("fail", "no such disk")


def test_wait_for_times_out_with_the_record(nodes):
    """A wait that ends before the VM got there is not a conflict: the verb was accepted and
    the VM is still on its way (the API answers 202 with the record)."""
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    started = time.monotonic()
    with pytest.raises(vm_state.StillGoing) as raised:
        vm_state.wait_for(nodes, uuid, ("start",), timeout=0.3)
    assert time.monotonic() - started < 2
    assert raised.value.http_status == 202 and raised.value.exit_code == 1
    assert raised.value.message == (
        "VM 'vm1' is still on its way to start after 0.3 s (now: state start, no node "
        "reports it yet)"
    )
    assert raised.value.record == vm.info(nodes, "vm1")


def test_wait_for_a_stop_needs_the_node_to_report_it_off(nodes):
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    nodes.write({("domain.observed", uuid): {"node": "node1", "state": "running"}})
    vm_state.stop(nodes, "vm1")
    message = r"to stop after 0.3 s \(now: state stop, node1 reports it running\)"
    with pytest.raises(vm_state.StillGoing, match=message):
        vm_state.wait_for(nodes, "vm1", ("stop", "disable"), timeout=0.3, goal="stop")


def test_starting_a_vm_whose_node_is_gone_says_so(nodes):
    define(nodes, "vm1", node="node3")
    nodes.delete(("node", "node3"))
    with pytest.raises(PvcError, match="node3"):
        vm_state.start(nodes, POLICY, "vm1")
