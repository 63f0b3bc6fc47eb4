"""pvc.ops.vm on a real Zookeeper: defining VMs, where they are placed, reading them back.

Node records are written as the node daemons would; no daemon acts on the VMs, so a state
written by a verb stays as written (tests play the daemon where they need one). The helpers
and the `nodes` fixture here serve the other VM operation tests too (test_vm_ops_*.py):
state changes, moves, changes of the definition and lists.
"""

import uuid as uuid_module

import pytest

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import cluster, placement, vm, vm_state
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


def snapshot(zk, roots=("/domains", "/names")) -> dict:
    """Every key under `roots` (/domains and /names) with its value and version."""
    found = {}

    def walk(path):
        if zk.client.exists(path) is None:
            return
        data, stat = zk.client.get(path)
        found[path] = (data, stat.version)
        for child in zk.client.get_children(path):
            walk(f"{path}/{child}")

    for root in roots:
        walk(root)
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
        "failed_reason": None, "observed": None, "volumes": [], "nics": [],
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


# --- console log -----------------------------------------------------------------------------


def test_console_log(nodes):
    uuid = define(nodes, "vm1")
    assert vm.console_log(nodes, uuid, 10) == {"name": "vm1", "uuid": uuid, "lines": []}
    nodes.write({("domain.console_log", uuid): "one\ntwo\nthree\n"})
    assert vm.console_log(nodes, "vm1", 2)["lines"] == ["two", "three"]
    with pytest.raises(InvalidInput, match="lines must be 1 or more"):
        vm.console_log(nodes, "vm1", 0)


def test_a_define_right_after_another_sessions_registration_finds_the_node(zk):
    """The API places a VM from its in-memory copy, which may not show a node another session
    registered just before (as a test, or a daemon coming up, does): a refusal is made only
    after catching up (CI once got "no node in run and ready state" this way)."""
    from pvc.zk.cache import CachedView, open_mirror
    from pvc.zk.handler import ZKHandler
    from tests.conftest import ZK_SECRET

    cluster.initialize(zk)
    view = CachedView(zk, open_mirror(zk))
    other = ZKHandler(zk.hosts, secret=ZK_SECRET).connect()
    try:
        for index in range(60):
            add_hypervisor(other, f"n{index}")
            answer = vm.define(view, POLICY, domain_xml(f"vm{index}"), node=f"n{index}")
            assert answer["node"] == f"n{index}", index
    finally:
        other.close()
        view.mirror.close()
