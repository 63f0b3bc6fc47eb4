"""choose_target_node, the memory checks and the load tally, on plain figures."""

import pytest

from pvc.errors import InvalidInput
from pvc.ops.placement import (
    LoadTally,
    NodeLoad,
    choose_target_node,
    overcommit_complaint,
    survives_largest_node_loss,
)


def nodes():
    return {
        "a": NodeLoad("a", mem_total=8000, mem_free=1000, load=0.5),
        "b": NodeLoad("b", mem_total=8000, mem_free=6000, load=2.0),
        "c": NodeLoad("c", mem_total=16000, mem_free=3000, load=1.0),
    }


def add_vm(tally: LoadTally, uuid: str, node: str, state: str, memory: int, vcpus: int) -> None:
    for field, value in (("node", node), ("state", state), ("memory", memory), ("vcpus", vcpus)):
        tally.set_vm(uuid, field, value)


def tallied() -> LoadTally:
    """The nodes of `nodes()` and five VMs, one on a node that no longer exists."""
    tally = LoadTally()
    for node in nodes().values():
        tally.set_node(node.name)
        tally.set_node(node.name, "daemon_state", "run")
        tally.set_node(node.name, "domain_state", "ready")
        stats = {"mem_total": node.mem_total, "mem_free": node.mem_free, "load": node.load}
        tally.set_node(node.name, "stats", stats)
    add_vm(tally, "vm1", "a", "start", 1000, 2)
    add_vm(tally, "vm2", "b", "start", 2000, 4)
    add_vm(tally, "vm3", "b", "stop", 4000, 1)
    add_vm(tally, "vm4", "c", "stop", 500, 1)
    add_vm(tally, "vm5", "gone", "start", 999, 9)  # ignored
    return tally


def loaded():
    return tallied().loads()


@pytest.mark.parametrize(
    "selector, expected",
    [("mem", "b"), ("memprov", "c"), ("load", "a"), ("vcpus", "c"), ("vms", "a")],
)
def test_each_selector(selector, expected):
    assert choose_target_node(loaded().values(), selector) == expected


def test_allocated_and_provisioned_figures():
    found = loaded()
    assert (found["b"].mem_allocated, found["b"].mem_provisioned) == (2000, 6000)
    assert (found["b"].vcpus_allocated, found["b"].vms) == (4, 2)


def test_limit_exclude_and_unusable_nodes():
    found = loaded()
    assert choose_target_node(found.values(), "mem", limit=["a", "c"]) == "c"
    assert choose_target_node(found.values(), "mem", exclude=["b"]) == "c"
    found["b"].domain_state = "flushed"
    found["c"].daemon_state = "dead"
    assert choose_target_node(found.values(), "mem") == "a"
    assert choose_target_node(found.values(), "mem", exclude=["a"]) is None


def test_unknown_selector_is_refused():
    with pytest.raises(InvalidInput, match="unknown node selector 'best'"):
        choose_target_node(nodes().values(), "best")


def test_overcommit_complaint_gives_the_numbers():
    node = loaded()["a"]
    assert overcommit_complaint(node, 7000, 1.0) is None
    assert overcommit_complaint(node, 7001, 1.0) == (
        "node a would have 8001 MiB allocated to VMs, more than its 8000 MiB x 1 = 8000 MiB"
    )
    assert overcommit_complaint(node, 7001, 1.5) is None


def test_n_plus_one():
    found = loaded()
    report = survives_largest_node_loss(found.values(), 1.0)
    assert report == {
        "ok": True,
        "allocated": 3000,
        "capacity_without_largest": 16000,
        "largest_node": "c",
    }
    tally = tallied()
    add_vm(tally, "huge", "a", "start", 14000, 1)
    assert survives_largest_node_loss(tally.loads().values(), 1.0)["ok"] is False


def figures(load: NodeLoad) -> tuple[int, int, int, int]:
    return load.mem_allocated, load.mem_provisioned, load.vcpus_allocated, load.vms


def test_the_tally_follows_a_vm_through_changes():
    tally = tallied()
    tally.set_vm("vm3", "state", "start")  # b: 4000 MiB and 1 vCPU more in use
    assert figures(tally.loads()["b"]) == (6000, 6000, 5, 2)
    tally.set_vm("vm3", "node", "c")  # moved: off b, onto c
    assert figures(tally.loads()["b"]) == (2000, 2000, 4, 1)
    assert figures(tally.loads()["c"]) == (4000, 4500, 1, 2)
    tally.set_vm("vm3", "memory", 3000)
    assert figures(tally.loads()["c"]) == (3000, 3500, 1, 2)
    tally.drop_vm("vm3")
    assert figures(tally.loads()["c"]) == (0, 500, 0, 1)


def test_the_tally_counts_a_change_seen_twice_once():
    tally = tallied()
    tally.set_vm("vm1", "state", "stop")
    tally.set_vm("vm1", "state", "stop")
    assert figures(tally.loads()["a"]) == (0, 1000, 0, 1)


def test_the_tally_forgets_a_removed_node_and_its_keys_going_away():
    tally = tallied()
    tally.drop_node("c")
    tally.set_node("c", "stats", None)  # its keys' removals arrive after the node's
    tally.set_vm("vm4", "node", None)
    assert sorted(tally.loads()) == ["a", "b"]
    tally.drop_vm("vm1")
    tally.set_vm("vm1", "memory", None)  # a removed VM's keys going away
    assert figures(tally.loads()["a"]) == (0, 0, 0, 0)


def test_a_node_without_figures_is_unknown_and_empty():
    tally = LoadTally()
    tally.set_node("new")
    load = tally.loads()["new"]
    assert (load.daemon_state, load.mem_total, load.usable) == ("unknown", 0, False)
