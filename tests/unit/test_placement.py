"""choose_target_node and the memory checks, on plain figures."""

import pytest

from pvc.errors import InvalidInput
from pvc.ops.placement import (
    NodeLoad,
    VmLoad,
    add_vm_loads,
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


def loaded():
    found = nodes()
    add_vm_loads(
        found,
        [
            VmLoad("a", "start", 1000, 2),
            VmLoad("b", "start", 2000, 4),
            VmLoad("b", "stop", 4000, 1),
            VmLoad("c", "stop", 500, 1),
            VmLoad("gone", "start", 999, 9),  # on a node that no longer exists: ignored
        ],
    )
    return found


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
    add_vm_loads(found, [VmLoad("a", "start", 14000, 1)])
    assert survives_largest_node_loss(found.values(), 1.0)["ok"] is False
